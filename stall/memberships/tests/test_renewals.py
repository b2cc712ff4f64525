"""Renewals over time (time-machine): the right dates, once per period, from the wallet or the
saved card, and dunning: past_due, retries at 2, 7 and 14 days with an email each, then ended."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from stall.accounts.services import buyer_for_email
from stall.integrations.models import Event
from stall.memberships.models import PeriodStatus, Subscription, SubscriptionPeriod
from stall.memberships.renewals import renewals_group, renewals_run, subscriptions_due
from stall.memberships.services import (
    subscription_cancel,
    subscription_change,
    subscription_join,
    subscription_pause,
    subscription_pay_with_set,
)
from stall.memberships.tiers import tier_create
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.payments.rails.wallet import wallet_get
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def at(y, m, d, h=12):
    return datetime(y, m, d, h, 0, tzinfo=UTC)


def _balance(buyer) -> int:
    return wallet_get(buyer=buyer, currency="USD").account.balance


def _ends(sub) -> list[datetime]:
    return [p.end for p in SubscriptionPeriod.objects.filter(subscription=sub).order_by("number")]


RENEWALS_FROM_JAN_31_2028 = [
    at(2028, 2, 29), at(2028, 3, 31), at(2028, 4, 30), at(2028, 5, 31), at(2028, 6, 30), at(2028, 7, 31),
    at(2028, 8, 31), at(2028, 9, 30), at(2028, 10, 31), at(2028, 11, 30), at(2028, 12, 31), at(2029, 1, 31),
    at(2029, 2, 28),
]


def test_a_monthly_member_renews_across_month_ends_and_years(store):
    """Joined Jan 31: renewed on Feb 29 (leap year), Mar 31, Apr 30 ... Feb 28 of the next year,
    once each however often the task runs."""
    with time_machine.travel(at(2028, 1, 31), tick=False) as clock:
        buyer = buyer_for_email(email="m@example.com")
        wallet_top_up(buyer=buyer, amount=5000, currency="USD", payment_method="sandbox_visa")
        tier = tier_create(store=store, name="Monthly", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
        for day in RENEWALS_FROM_JAN_31_2028:
            clock.move_to(day - timedelta(hours=1))
            assert renewals_run() == {}  # not due yet
            clock.move_to(day + timedelta(minutes=5))
            assert renewals_run() == {"renewed": 1}
            assert renewals_run() == {}  # a second run the same day charges nothing
    assert _ends(sub) == [*RENEWALS_FROM_JAN_31_2028, at(2029, 3, 31)]
    assert Order.objects.filter(email="m@example.com").count() == 1 + 13
    assert _balance(buyer) == 5000 - 14 * 300
    assert Subscription.objects.get(pk=sub.pk).status == "active"


def test_a_run_after_a_gap_renews_one_period_per_run(store, reader):
    """A task that did not run for months catches up period by period, each charged once."""
    with time_machine.travel(at(2027, 1, 15), tick=False) as clock:
        tier = tier_create(store=store, name="Gap", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
        clock.move_to(at(2027, 4, 20))
        assert [renewals_run() for _ in range(4)] == [{"renewed": 1}] * 3 + [{}]
    assert _ends(sub) == [at(2027, 2, 15), at(2027, 3, 15), at(2027, 4, 15), at(2027, 5, 15)]


def test_a_yearly_member_renews_on_feb_28_after_a_leap_day_join(store):
    with time_machine.travel(at(2028, 2, 29), tick=False) as clock:
        buyer = buyer_for_email(email="y@example.com")
        wallet_top_up(buyer=buyer, amount=10000, currency="USD", payment_method="sandbox_visa")
        tier = tier_create(store=store, name="Yearly", prices=[{"interval": "year", "amount": 3000}])
        sub = subscription_join(tier=tier, method="wallet", buyer=buyer, interval="year").subscription
        for day in [at(2029, 2, 28), at(2030, 2, 28), at(2031, 2, 28)]:
            clock.move_to(day + timedelta(hours=1))
            renewals_run()
    assert _ends(sub) == [at(2029, 2, 28), at(2030, 2, 28), at(2031, 2, 28), at(2032, 2, 29)]


def test_a_card_member_renews_on_the_saved_card_with_a_membership_order(store):
    with time_machine.travel(at(2027, 5, 10), tick=False) as clock:
        tier = tier_create(store=store, name="Card", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="card", email="c@example.com", payment_method="sandbox_visa").subscription
        clock.move_to(at(2027, 6, 10, 13))
        assert renewals_run() == {"renewed": 1}
    period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
    assert (period.status, period.paid_with, period.order.amount_total) == (PeriodStatus.PAID, "card", 300)
    assert period.order.lines.get().product_id == tier.prices.get().product_id
    assert "subscription.renewed" in set(Event.objects.values_list("type", flat=True))


def test_an_empty_wallet_falls_back_to_the_saved_card_when_allowed(store):
    with time_machine.travel(at(2027, 5, 10), tick=False) as clock:
        buyer = buyer_for_email(email="f@example.com")
        wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
        tier = tier_create(store=store, name="T", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=buyer, card_fallback=True, payment_method="sandbox_visa").subscription
        clock.move_to(at(2027, 6, 10, 13))
        assert renewals_run() == {"renewed": 1}
    assert _balance(buyer) == 200  # the wallet was not touched by the renewal
    assert SubscriptionPeriod.objects.get(subscription=sub, number=1).paid_with == "card"


def test_a_declining_card_walks_past_due_then_ended_on_schedule_with_emails(store, django_capture_on_commit_callbacks):
    with time_machine.travel(at(2027, 3, 1), tick=False) as clock:
        tier = tier_create(store=store, name="Dunning", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="card", email="d@example.com", payment_method="sandbox_visa").subscription
        subscription_pay_with_set(subscription=sub, pay_with="card", payment_method="sandbox_declined")
        mail.outbox.clear()
        steps = []
        for moment in [at(2027, 4, 1, 13), at(2027, 4, 3, 12), at(2027, 4, 3, 14), at(2027, 4, 8, 14), at(2027, 4, 15, 14)]:
            clock.move_to(moment)
            with django_capture_on_commit_callbacks(execute=True):
                renewals_run()
            current = Subscription.objects.get(pk=sub.pk)
            steps.append((current.status, current.retries, current.next_retry_at))
    assert steps == [
        ("past_due", 0, at(2027, 4, 3, 13)),
        ("past_due", 0, at(2027, 4, 3, 13)),  # not yet time for the first retry
        ("past_due", 1, at(2027, 4, 8, 13)),
        ("past_due", 2, at(2027, 4, 15, 13)),
        ("ended", 3, None),
    ]
    subjects = [m.subject for m in mail.outbox]
    assert subjects == ["Your Dunning membership payment failed"] * 3 + ["Your Dunning membership has ended"]
    assert all("d@example.com" in m.to for m in mail.outbox)
    assert Payment.objects.filter(status="failed").count() == 4
    assert Order.objects.count() == 1  # the join only
    assert sorted(e for e in Event.objects.values_list("type", flat=True) if e.startswith("subscription.")) == [
        "subscription.created", "subscription.ended", "subscription.past_due", "subscription.updated",
    ]


def test_fixing_the_card_during_grace_renews_and_keeps_the_member(store):
    with time_machine.travel(at(2027, 3, 1), tick=False) as clock:
        tier = tier_create(store=store, name="Fix", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="card", email="x@example.com", payment_method="sandbox_visa").subscription
        subscription_pay_with_set(subscription=sub, pay_with="card", payment_method="sandbox_declined")
        clock.move_to(at(2027, 4, 1, 13))
        renewals_run()
        clock.move_to(at(2027, 4, 5))
        subscription_pay_with_set(subscription=sub, pay_with="card", payment_method="sandbox_visa")
        assert renewals_run() == {"renewed": 1}
    current = Subscription.objects.get(pk=sub.pk)
    assert (current.status, current.retries, current.next_retry_at, current.current_period_end) == (
        "active", 0, None, at(2027, 5, 1)
    )
    assert SubscriptionPeriod.objects.get(subscription=sub, number=1).attempts == 2


def test_cancel_at_period_end_ends_without_charging(store, reader):
    with time_machine.travel(at(2027, 3, 1), tick=False) as clock:
        tier = tier_create(store=store, name="C", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
        subscription_cancel(subscription=sub)
        clock.move_to(at(2027, 4, 1, 13))
        assert renewals_run() == {"ended": 1}
    assert Order.objects.filter(email=reader.email).count() == 1


def test_a_pause_skips_periods_without_charging_then_renews(store, reader):
    with time_machine.travel(at(2027, 3, 1), tick=False) as clock:
        tier = tier_create(store=store, name="P", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
        subscription_pause(subscription=sub, periods=1)
        clock.move_to(at(2027, 4, 1, 13))
        assert renewals_run() == {"paused": 1}
        assert Subscription.objects.get(pk=sub.pk).status == "paused"
        clock.move_to(at(2027, 5, 1, 13))
        assert renewals_run() == {"renewed": 1}
    assert Subscription.objects.get(pk=sub.pk).status == "active"
    assert Order.objects.filter(email=reader.email).count() == 2


def test_a_downgrade_applies_at_renewal_and_an_upgrade_charges_the_difference_now(store, reader):
    with time_machine.travel(at(2027, 4, 1), tick=False) as clock:
        low = tier_create(store=store, name="Low", prices=[{"interval": "month", "amount": 300}])
        high = tier_create(store=store, name="High", prices=[{"interval": "month", "amount": 900}])
        sub = subscription_join(tier=tier_create(store=store, name="Mid", prices=[{"interval": "month", "amount": 600}]),
                                method="wallet", buyer=reader).subscription
        clock.move_to(at(2027, 4, 16))  # half of April's 30 days left
        subscription_change(subscription=sub, tier=high)
        upgraded = Subscription.objects.get(pk=sub.pk)
        assert (upgraded.tier_id, Order.objects.filter(email=reader.email).latest("pk").amount_total) == (high.pk, 150)
        subscription_change(subscription=upgraded, tier=low)
        assert Subscription.objects.get(pk=sub.pk).tier_id == high.pk  # until the renewal
        clock.move_to(at(2027, 5, 1, 13))
        renewals_run()
    renewed = Subscription.objects.get(pk=sub.pk)
    assert (renewed.tier_id, renewed.pending_price_id) == (low.pk, None)
    assert Order.objects.filter(email=reader.email).latest("pk").amount_total == 300


def test_a_member_who_cancels_after_the_task_read_their_row_is_not_charged(store):
    """The task renews from the rows it streamed: a cancellation made after the read (the row's
    updated_at moved) rolls the wallet renewal back, and the fresh read ends the membership."""
    with time_machine.travel(at(2027, 1, 10), tick=False) as clock:
        buyer = buyer_for_email(email="late@example.com")
        wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
        tier = tier_create(store=store, name="Monthly", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
        clock.move_to(at(2027, 2, 10, 13))
        streamed = list(subscriptions_due(now=at(2027, 2, 10, 13)))
        subscription_cancel(subscription=sub, at_period_end=True)
        before = _balance(buyer)
        assert [s.pk for s in streamed] == [sub.pk]
        assert renewals_group(streamed, now=at(2027, 2, 10, 13)) == (0, streamed)  # stale: rolled back
        assert _balance(buyer) == before
        assert renewals_run() == {"ended": 1}
    assert _balance(buyer) == before
    assert Order.objects.filter(email=buyer.email).count() == 1  # the join only
    assert not SubscriptionPeriod.objects.filter(subscription=sub, number=1).exists()
