"""Arrears invoices paid by a saved card: the wallet first when allowed, the card for the whole
invoice otherwise, once per attempt, with dunning after a decline; a small invoice carried to the
next one; and the bad input around saving the card."""

from datetime import timedelta

import pytest
from django.utils import timezone

from stall.core.errors import InvalidRequest
from stall.integrations.models import Event
from stall.metering.billing import periods_close, subscription_period_close
from stall.metering.errors import UsageSubscriptionInvalid
from stall.metering.invoicing import CARD_RETRY_DAYS, card_retry_at, invoice_settle
from stall.metering.models import InvoiceStatus, LineKind, UsageInvoice, UsageSubscription
from stall.metering.periods import locked
from stall.metering.services import (
    plan_create,
    usage_subscription_card_set,
    usage_subscription_create,
)
from stall.payments.models import OffSessionCharge, Payment, PaymentStatus, SavedPaymentMethod

from .conftest import send

pytestmark = pytest.mark.django_db


def _wallet(buyer):
    from stall.wallets.selectors import wallet_get

    return wallet_get(buyer=buyer, currency="USD").account.balance


@pytest.fixture
def plan(store, calls):
    return plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "2"}])  # 2¢ a call


DAY = 24 * 60  # minutes


def period_set(sub, *, days_ago: float, until_days_ago: float = 0):
    """Move the subscription's current period to [now - days_ago, now - until_days_ago), so that
    events can be sent inside it and it can be closed now."""
    now = timezone.now()
    UsageSubscription.objects.filter(pk=sub.pk).update(
        period_start=now - timedelta(days=days_ago), period_end=now - timedelta(days=until_days_ago, seconds=1))
    sub.refresh_from_db()
    return sub


def _arrears(store, customer, plan, **kwargs):
    return usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears", **kwargs)


def test_the_card_pays_the_whole_invoice_when_the_wallet_is_not_first(store, customer, buyer, allowance, plan):
    """wallet_first false: 40 calls at 2¢ are charged 80¢ to the saved test card, off-session,
    with the key naming subscription, period and attempt; the wallet is not touched; a second
    close charges nothing."""
    sub = _arrears(store, customer, plan, payment_method="sandbox_visa", wallet_first=False)
    assert (sub.saved_method.rail, sub.saved_method.method_ref, sub.saved_method.email) == ("sandbox", "sandbox_visa", customer.email)
    send(store, customer, n=40)
    start, end = sub.period_start, sub.period_end
    assert periods_close(now=end + timedelta(minutes=1)) == 1
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (invoice.amount, invoice.status, invoice.paid_with, invoice.attempts) == (80, InvoiceStatus.PAID, "card", 1)
    payment = Payment.objects.get(pk=invoice.charge_id)
    assert (payment.status, payment.amount, payment.rail) == (PaymentStatus.SUCCEEDED, 80, "sandbox")
    assert OffSessionCharge.objects.get(payment=payment).idempotency_key == f"usage:{sub.pk}:{start.isoformat()}:card:1"
    assert _wallet(buyer) == 2000
    sub.refresh_from_db()
    assert (sub.period_start, sub.status) == (end, "active")
    assert periods_close(now=end + timedelta(minutes=2)) == 0
    assert Payment.objects.filter(off_session_charge__isnull=False).count() == 1


def test_the_wallet_pays_first_when_allowed_and_the_card_when_it_refuses(store, customer, buyer, plan):
    """wallet_first (the default): with an allowance the wallet pays the invoice; a customer
    without one (or whose wallet refuses) has the whole invoice charged to the card — never split."""
    from stall.wallets.allowances import allowance_grant, allowance_revoke

    grant = allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
    sub = period_set(_arrears(store, customer, plan, payment_method="sandbox_visa"), days_ago=20, until_days_ago=10)
    send(store, customer, n=40, minutes_ago=15 * DAY)
    assert periods_close() == 1
    first = UsageInvoice.objects.get(subscription=sub)
    assert (first.paid_with, first.charge_id[:3], _wallet(buyer)) == ("wallet", "ch_", 1920)

    allowance_revoke(buyer=buyer, allowance_id=grant.pk)  # the card pays the next invoice, whole
    sub = period_set(sub, days_ago=10)
    send(store, customer, n=30, prefix="b", minutes_ago=5 * DAY)
    assert periods_close() == 1
    second = UsageInvoice.objects.exclude(pk=first.pk).get(subscription=sub)
    assert (second.amount, second.paid_with, _wallet(buyer)) == (60, "card", 1920)
    assert Payment.objects.get(pk=second.charge_id).amount == 60


def test_a_declined_card_makes_the_subscription_past_due_and_is_retried_on_schedule(store, customer, plan):
    """A declined card: past due, usage.payment_failed once, the next try 1 day after the first
    failure and nothing before; the second failure waits until day 3; a new card is tried at
    once and pays, each attempt with its own key, one charge succeeded."""
    sub = period_set(_arrears(store, customer, plan, payment_method="sandbox_declined"), days_ago=10)
    send(store, customer, n=40, minutes_ago=DAY)
    failed_at = timezone.now()
    assert periods_close(now=failed_at) == 0
    sub.refresh_from_db()
    assert (sub.status, sub.card_retries, sub.next_retry_at) == ("past_due", 0, failed_at + timedelta(days=1))
    assert sub.failure_message == "Your card was declined."
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.FAILED, 1)
    assert periods_close(now=failed_at + timedelta(hours=23)) == 0
    assert subscription_period_close(subscription_id=sub.pk, now=failed_at + timedelta(hours=23)) is False
    assert UsageInvoice.objects.get(pk=invoice.pk).attempts == 1  # not tried before its time
    assert periods_close(now=failed_at + timedelta(days=1, minutes=1)) == 0
    sub.refresh_from_db()
    assert (sub.card_retries, sub.next_retry_at) == (1, failed_at + timedelta(days=3))
    assert UsageInvoice.objects.get(pk=invoice.pk).attempts == 2
    events = Event.objects.filter(store=store, type="usage.payment_failed")
    assert [(e.data["object"]["amount"], e.data["object"]["failure_code"]) for e in events] == [(80, "card_declined")]

    sub = usage_subscription_card_set(subscription=sub, payment_method="sandbox_visa")
    assert (sub.status, sub.next_retry_at, sub.card_retries) == ("active", None, 0)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempts, invoice.paid_with) == (InvoiceStatus.PAID, 3, "card")
    keys = sorted(OffSessionCharge.objects.values_list("idempotency_key", flat=True))
    assert [k.rsplit(":", 1)[1] for k in keys] == ["1", "2", "3"]
    assert Payment.objects.filter(status=PaymentStatus.SUCCEEDED, off_session_charge__isnull=False).count() == 1


def test_the_retry_schedule_is_one_three_seven_days_then_weekly():
    since = timezone.now()
    assert CARD_RETRY_DAYS == (1, 3, 7)
    assert [(card_retry_at(since=since, retries=n) - since).days for n in range(5)] == [1, 3, 7, 14, 21]


def test_a_claim_left_charging_is_replayed_with_the_same_key_and_charged_once(store, customer, plan):
    """A worker that claimed the invoice and died before charging leaves it ``charging``; the next
    run charges with the same attempt's key, and a third finds it paid: one card payment."""
    sub = _arrears(store, customer, plan, payment_method="sandbox_visa", wallet_first=False)
    send(store, customer, n=40)
    later = sub.period_end + timedelta(minutes=1)
    from django.db import transaction

    with transaction.atomic():
        claim = invoice_settle(locked(sub.pk), now=later)  # claimed and committed; the card never charged
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (invoice.status, invoice.attempts, claim.attempt) == (InvoiceStatus.CHARGING, 1, 1)
    assert subscription_period_close(subscription_id=sub.pk, now=later) is True
    assert claim.finish(now=later) is False  # the dead worker's own finish, had it woken: nothing
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.PAID, 1)
    assert OffSessionCharge.objects.count() == 1
    assert Payment.objects.filter(status="succeeded", off_session_charge__isnull=False).count() == 1


def test_an_invoice_below_the_card_minimum_is_carried_to_the_next_one(store, customer, plan):
    """10¢ is under the card's 50¢ minimum: not charged, carried; the next period's invoice bills
    it as a line of its own with that period's usage, and the card pays the sum once."""
    sub = period_set(_arrears(store, customer, plan, payment_method="sandbox_visa", wallet_first=False),
                     days_ago=20, until_days_ago=10)
    send(store, customer, n=5, minutes_ago=15 * DAY)  # 10¢
    assert periods_close() == 1
    first = UsageInvoice.objects.get(subscription=sub)
    assert (first.amount, first.status, first.attempts) == (10, InvoiceStatus.CARRIED, 0)
    assert not OffSessionCharge.objects.exists()
    sub = period_set(sub, days_ago=10)
    send(store, customer, n=25, prefix="n", minutes_ago=5 * DAY)
    assert periods_close() == 1
    second = UsageInvoice.objects.exclude(pk=first.pk).get(subscription=sub)
    lines = [(line.kind, line.amount, line.adjusts_period) for line in second.lines.order_by("pk")]
    assert lines == [(LineKind.USAGE, 50, None), (LineKind.CARRIED, 10, first.period_start)]
    assert (second.amount, second.status, OffSessionCharge.objects.get().payment.amount) == (60, InvoiceStatus.PAID, 60)
    first.refresh_from_db()
    assert first.carried_into_id == second.pk


def test_saving_a_card_refuses_bad_input_and_changes_nothing(store, customer, plan, calls):
    with pytest.raises(UsageSubscriptionInvalid, match="live billing charges the wallet") as caught:
        usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, payment_method="sandbox_visa")
    assert caught.value.param == "payment_method"
    with pytest.raises(UsageSubscriptionInvalid, match="^Give a card") as caught:
        _arrears(store, customer, plan, payment_method="wallet")
    assert caught.value.code == "card_required"
    with pytest.raises(InvalidRequest, match="Unknown payment method"):
        _arrears(store, customer, plan, payment_method="sandbox_nope")
    with pytest.raises(UsageSubscriptionInvalid, match="true or false"):
        _arrears(store, customer, plan, wallet_first="yes")
    assert not UsageSubscription.objects.exists() and not SavedPaymentMethod.objects.exists()
    live = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk)
    with pytest.raises(UsageSubscriptionInvalid, match="live billing charges the wallet"):
        usage_subscription_card_set(subscription=live, payment_method="sandbox_visa")
    assert not SavedPaymentMethod.objects.exists()


def test_the_card_api_saves_a_card_and_answers_errors_with_the_error_object(api, store, customer, plan):
    from stall.testing import StoreFactory

    sub = api.post("/usage_subscriptions", {"customer": customer.pk, "plan": plan.pk, "billing": "arrears",
                                            "payment_method": "sandbox_visa", "wallet_first": False}).json()
    assert sub["payment_method"].startswith("spm_") and sub["wallet_first"] is False and sub["next_retry_at"] is None
    changed = api.post(f"/usage_subscriptions/{sub['id']}/payment_method", {"payment_method": "sandbox_declined"})
    assert changed.status_code == 200 and changed.json()["payment_method"] != sub["payment_method"]
    empty = api.post(f"/usage_subscriptions/{sub['id']}/payment_method", {})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "payment_method"
    typed = api.post(f"/usage_subscriptions/{sub['id']}/payment_method", {"wallet_first": "no"})
    assert typed.status_code == 400 and "error" in typed.json()
    other = StoreFactory()
    foreign = usage_subscription_create(store=other, customer_id=_other_customer(other).pk,
                                        plan_id=plan_create(store=other, name="X", prices=[]).pk, billing="arrears")
    missing = api.post(f"/usage_subscriptions/{foreign.pk}/payment_method", {"payment_method": "sandbox_visa"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert UsageSubscription.objects.get(pk=foreign.pk).saved_method_id is None


def _other_customer(store):
    from stall.orders.services import customer_for_email

    return customer_for_email(store_id=store.pk, email="else@example.com")
