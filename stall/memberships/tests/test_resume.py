"""Resuming a paused membership (billing's rule): a pause not started is forgotten; during a paused
period the member has access again at once, pays a full period from that moment, and renews on
that day from then on; a failed payment changes nothing."""

from datetime import UTC, datetime

import pytest
import time_machine

from stall.accounts.services import buyer_for_email
from stall.memberships.errors import SubscriptionStateInvalid
from stall.memberships.models import PeriodStatus, Subscription, SubscriptionPeriod
from stall.memberships.renewals import renewals_run
from stall.memberships.services import (
    subscription_change,
    subscription_join,
    subscription_pause,
    subscription_pay_with_set,
    subscription_resume,
)
from stall.memberships.tiers import tier_create
from stall.orders.models import Order
from stall.payments.errors import PaymentDeclined, WalletEmpty
from stall.payments.rails.wallet import wallet_get
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def at(y, m, d, h=12):
    return datetime(y, m, d, h, 0, tzinfo=UTC)


def _balance(buyer) -> int:
    return wallet_get(buyer=buyer, currency="USD").account.balance


def _paused(store, clock, **join):
    """A $3/month member since Jan 10, 2028, in the first of two paused periods (from Feb 10)."""
    tier = tier_create(store=store, name="Zine club", prices=[{"interval": "month", "amount": 300}])
    sub = subscription_join(tier=tier, **join).subscription
    subscription_pause(subscription=sub, periods=2)
    clock.move_to(at(2028, 2, 10, 13))
    assert renewals_run() == {"paused": 1}
    return Subscription.objects.get(pk=sub.pk)


def test_resuming_in_a_paused_period_restores_access_now_and_moves_renewals_to_that_day(store, reader):
    with time_machine.travel(at(2028, 1, 10), tick=False) as clock:
        sub = _paused(store, clock, method="wallet", buyer=reader)
        assert (sub.status, sub.has_access, sub.current_period_end) == ("paused", False, at(2028, 3, 10))
        clock.move_to(at(2028, 2, 20))
        resumed = subscription_resume(subscription=sub)
        assert (resumed.status, resumed.has_access, resumed.pause_periods) == ("active", True, 0)
        assert (resumed.current_period_start, resumed.current_period_end) == (at(2028, 2, 20), at(2028, 3, 20))
        assert _balance(reader) == 2000 - 300 - 300
        periods = list(SubscriptionPeriod.objects.filter(subscription=sub).order_by("number").values_list(
            "number", "start", "end", "status", "amount"))
        assert periods == [
            (0, at(2028, 1, 10), at(2028, 2, 10), PeriodStatus.PAID, 300),
            (1, at(2028, 2, 10), at(2028, 2, 20), PeriodStatus.FREE, 0),  # the paused days, cut short
            (2, at(2028, 2, 20), at(2028, 3, 20), PeriodStatus.PAID, 300),
        ]
        clock.move_to(at(2028, 3, 10, 13))  # the old paused period's end: nothing due any more
        assert renewals_run() == {}
        clock.move_to(at(2028, 3, 20, 13))
        assert renewals_run() == {"renewed": 1}
    renewed = Subscription.objects.get(pk=sub.pk)
    assert (renewed.status, renewed.current_period_end, _balance(reader)) == ("active", at(2028, 4, 20), 1100)


def test_a_pause_not_started_yet_is_forgotten_without_a_charge(store, reader):
    with time_machine.travel(at(2028, 1, 10), tick=False):
        tier = tier_create(store=store, name="Zine club", prices=[{"interval": "month", "amount": 300}])
        sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
        subscription_pause(subscription=sub, periods=1)
        resumed = subscription_resume(subscription=sub)
    assert (resumed.status, resumed.pause_periods, resumed.current_period_end, _balance(reader)) == (
        "active", 0, at(2028, 2, 10), 1700)
    with pytest.raises(SubscriptionStateInvalid, match="This membership is not paused."):
        subscription_resume(subscription=resumed)


def test_resuming_with_an_empty_wallet_changes_nothing(store):
    with time_machine.travel(at(2028, 1, 10), tick=False) as clock:
        buyer = buyer_for_email(email="short@example.com")  # $5: $2 left after joining
        wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
        sub = _paused(store, clock, method="wallet", buyer=buyer)
        clock.move_to(at(2028, 2, 20))
        with pytest.raises(WalletEmpty):
            subscription_resume(subscription=sub)
    after = Subscription.objects.get(pk=sub.pk)
    assert (after.status, after.pause_periods, after.current_period_end) == ("paused", 1, at(2028, 3, 10))
    assert SubscriptionPeriod.objects.filter(subscription=sub).count() == 2
    assert SubscriptionPeriod.objects.get(subscription=sub, number=1).end == at(2028, 3, 10)
    assert Order.objects.filter(email=buyer.email).count() == 1


def test_resuming_by_card_charges_the_saved_card_and_a_declined_one_leaves_it_paused(store):
    with time_machine.travel(at(2028, 1, 10), tick=False) as clock:
        sub = _paused(store, clock, method="card", email="card@example.com", payment_method="sandbox_visa")
        subscription_pay_with_set(subscription=sub, pay_with="card", payment_method="sandbox_declined")
        clock.move_to(at(2028, 2, 20))
        with pytest.raises(PaymentDeclined):
            subscription_resume(subscription=sub)
        after = Subscription.objects.get(pk=sub.pk)
        assert (after.status, after.pause_periods, after.current_period_end) == ("paused", 1, at(2028, 3, 10))
        assert not SubscriptionPeriod.objects.filter(subscription=sub, number=2).exists()
        subscription_pay_with_set(subscription=after, pay_with="card", payment_method="sandbox_visa")
        resumed = subscription_resume(subscription=after)
    assert (resumed.status, resumed.current_period_end) == ("active", at(2028, 3, 20))
    period = SubscriptionPeriod.objects.get(subscription=sub, number=2)
    assert (period.status, period.paid_with, period.order.amount_total) == (PeriodStatus.PAID, "card", 300)


def test_a_change_chosen_for_the_next_renewal_applies_from_the_resume(store, reader):
    with time_machine.travel(at(2028, 1, 10), tick=False) as clock:
        sub = _paused(store, clock, method="wallet", buyer=reader)
        cheap = tier_create(store=store, name="Postcard", prices=[{"interval": "month", "amount": 100}])
        subscription_change(subscription=sub, tier=cheap)
        clock.move_to(at(2028, 2, 20))
        resumed = subscription_resume(subscription=Subscription.objects.get(pk=sub.pk))
    assert (resumed.tier_id, resumed.pending_price_id, resumed.status) == (cheap.pk, None, "active")
    assert _balance(reader) == 2000 - 300 - 100
