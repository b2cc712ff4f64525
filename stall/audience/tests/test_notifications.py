from datetime import timedelta

from django.core import mail
from django.urls import reverse
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.audience import notifications
from stall.audience.notifications import (
    digests_send,
    notification_settings_update,
    notifications_send,
)
from stall.campaigns.services import campaign_create, campaign_publish, pledge_create
from stall.core.ids import new_id
from stall.integrations.models import Event
from stall.memberships.services import subscription_complimentary_create
from stall.memberships.tiers import tier_create
from stall.orders.refunds import refund_create
from stall.testing import buy
from stall.wallets.services import wallet_top_up


def _later():
    return timezone.now() + timedelta(seconds=10)


def test_the_creator_is_told_of_each_sale_member_and_refund_once(store, zine, creator):
    order = buy(store=store, product=zine, email="ann@example.com")
    tier = tier_create(store=store, name="Friends", prices=[{"interval": "month", "amount": 500}])
    subscription_complimentary_create(tier=tier, email="member@example.com", ends_at=timezone.now() + timedelta(days=30))
    refund_create(store=store, order_id=order.pk, amount=100)
    assert notifications_send(now=_later()) == 3
    subjects = sorted(m.subject for m in mail.outbox)
    assert all(m.to == [creator.email] for m in mail.outbox)
    assert any("New sale: Zine — $3.00 from ann@example.com" in s for s in subjects)
    assert any("New member: member@example.com" in s for s in subjects)
    assert any("Refund: $1.00 to ann@example.com" in s for s in subjects)
    assert notifications_send(now=_later()) == 0  # each event is told once


def test_a_notification_turned_off_is_not_sent(signed_in, store, zine):
    response = signed_in.post(reverse("dashboard:notifications", args=[store.slug]), {"on_tip": "on", "on_member": "on"})
    assert response.status_code == 302
    buy(store=store, product=zine, email="ann@example.com")
    assert notifications_send(now=_later()) == 0
    assert mail.outbox == []


def test_the_daily_digest_goes_once_a_day_to_those_who_asked(store, zine, creator):
    buy(store=store, product=zine, email="ann@example.com")
    tomorrow = timezone.now() + timedelta(days=1)
    assert digests_send(now=tomorrow) == 0
    notification_settings_update(store=store, daily_digest=True)
    assert digests_send(now=tomorrow) == 1
    assert digests_send(now=tomorrow) == 0
    assert "Orders: 1" in mail.outbox[0].body and "Takings: $3.00" in mail.outbox[0].body


def test_event_id_floors_bound_the_ids_made_between_them():
    """The notification windows read events by id range: a floor sorts below every id made after it."""
    from stall.core.ids import id_floor, new_id

    before = id_floor("evt", timezone.now() - timedelta(milliseconds=5))
    made = new_id("evt")
    after = id_floor("evt", timezone.now() + timedelta(milliseconds=5))
    assert before < made < after


def test_the_creator_is_told_of_each_pledge_unless_turned_off(signed_in, store, creator):
    campaign = campaign_publish(campaign=campaign_create(
        store=store, title="Moss", goal=1000, deadline=timezone.now() + timedelta(days=30)))
    backer = buyer_for_email(email="bee@example.com")
    wallet_top_up(buyer=backer, amount=500, currency="USD", payment_method="sandbox_visa")
    pledge_create(campaign=campaign, buyer=backer, amount=25, method="wallet", message="Go on!")
    assert notifications_send(now=_later()) == 1
    assert mail.outbox[-1].to == [creator.email]
    assert "New pledge: $0.25 from bee@example.com: “Go on!”" in mail.outbox[-1].subject

    signed_in.post(reverse("dashboard:notifications", args=[store.slug]), {"on_sale": "on"})
    pledge_create(campaign=campaign, buyer=backer, amount=25, method="wallet")
    assert notifications_send(now=_later() + timedelta(seconds=10)) == 0


def test_a_burst_of_events_sends_a_few_emails_and_one_that_counts_the_rest(store, zine, creator, monkeypatch):
    monkeypatch.setattr(notifications, "EMAILS_PER_RUN", 3)
    monkeypatch.setattr(notifications, "EVENTS_PER_READ", 2)  # the window is read a page at a time
    for i in range(6):
        buy(store=store, product=zine, email=f"fan{i}@example.com")
    # A chargeback among the rest is still told on its own: it has an evidence deadline.
    Event.objects.create(id=new_id("evt"), store=store, type="order.disputed", data={"object": {
        "id": "ord_x", "email": "fan9@example.com", "currency": "USD",
        "dispute": {"amount": 300, "currency": "USD", "reason": "fraudulent"}}})
    buy(store=store, product=zine, email="fan6@example.com")
    assert notifications_send(now=_later()) == 5
    subjects = [m.subject for m in mail.outbox]
    assert sum("New sale: Zine" in s for s in subjects) == 3
    assert sum("Chargeback: fan9@example.com disputed $3.00" in s for s in subjects) == 1
    assert sum(s == f"{store.name}: up to 4 more events" for s in subjects) == 1, subjects
    assert notifications_send(now=_later()) == 0  # the rest are not told again


def test_past_the_cap_a_chargeback_is_told_once_even_with_nothing_else_left(store, zine, creator, monkeypatch):
    monkeypatch.setattr(notifications, "EMAILS_PER_RUN", 1)
    monkeypatch.setattr(notifications, "EVENTS_PER_READ", 2)
    buy(store=store, product=zine, email="fan@example.com")
    for i in range(3):
        Event.objects.create(id=new_id("evt"), store=store, type="order.disputed", data={"object": {
            "id": f"ord_{i}", "email": f"fan{i}@example.com", "currency": "USD",
            "dispute": {"amount": 300, "currency": "USD", "reason": "fraudulent"}}})
    assert notifications_send(now=_later()) == 4
    subjects = sorted(m.subject for m in mail.outbox)
    assert [s for s in subjects if "Chargeback" in s] == [
        f"{store.name}: Chargeback: fan{i}@example.com disputed $3.00 (order ord_{i}, fraudulent)" for i in range(3)]
    assert not any("more events" in s for s in subjects)
