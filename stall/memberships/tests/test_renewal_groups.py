"""Wallet renewals made in groups (renewals.renewals_group, orders.spend_many): a group renews
its members in one transaction of set-based statements; a broke wallet, a member who changed
since the read, a buyer's second membership fall out to the one-by-one path without stopping the
others; a crash mid-group leaves nothing half-done and the next run completes it."""

from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from stall.accounts.services import buyer_for_email
from stall.books.services import books_settings_update, envelope_create
from stall.integrations.models import Event
from stall.ledger.models import Account, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.memberships import renewals
from stall.memberships.models import PeriodStatus, Subscription, SubscriptionPeriod
from stall.memberships.renewals import (
    renewals_group,
    renewals_run,
    subscription_renew,
    subscriptions_due,
)
from stall.memberships.services import subscription_cancel, subscription_join
from stall.memberships.tiers import tier_create
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.payments.rails.wallet import wallet_get
from stall.testing import StoreFactory
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db

JOINED, DUE = datetime(2027, 1, 10, 12, tzinfo=UTC), datetime(2027, 2, 10, 13, tzinfo=UTC)


def _balance(buyer) -> int:
    return wallet_get(buyer=buyer, currency="USD").account.balance


def assert_ledger_balanced():
    """Debits equal credits, and every account's totals are the sums of its transfers."""
    totals = Account.objects.aggregate(d=Sum("debits_posted"), c=Sum("credits_posted"))
    assert totals["d"] == totals["c"]
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


def _members(tier, funded: list[int]):
    """One member joined from the wallet per amount topped up (the join costs $3)."""
    buyers, subs = [], []
    for n, amount in enumerate(funded):
        buyer = buyer_for_email(email=f"g{n}@example.com")
        wallet_top_up(buyer=buyer, amount=amount, currency="USD", payment_method="sandbox_visa")
        subs.append(subscription_join(tier=tier, method="wallet", buyer=buyer).subscription)
        buyers.append(buyer)
    return buyers, subs


def _order_inserts(queries) -> int:
    return sum(1 for q in queries if "INSERT INTO orders_order (" in q["sql"])  # "5 times: INSERT …" for executemany


def test_a_group_renews_its_members_in_one_transaction_of_set_based_statements(store):
    """Five wallet members due together are renewed by one group: one INSERT of the orders for
    all of them, each wallet charged the price once, the ledger balanced, the events recorded."""
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Group", prices=[{"interval": "month", "amount": 300}])
        buyers, subs = _members(tier, [1000] * 5)
        before = [_balance(b) for b in buyers]
        clock.move_to(DUE)
        with CaptureQueriesContext(connection) as queries:
            assert renewals_run() == {"renewed": 5}
    assert _order_inserts(queries.captured_queries) == 1
    assert len(queries.captured_queries) <= 25  # for the group, whatever its size
    assert [_balance(b) for b in buyers] == [b - 300 for b in before]
    assert SubscriptionPeriod.objects.filter(number=1, status=PeriodStatus.PAID, paid_with="wallet").count() == 5
    for sub in Subscription.objects.filter(pk__in=[s.pk for s in subs]):
        period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
        assert (sub.period_number, sub.current_period_start, sub.current_period_end) == (1, period.start, period.end)
        assert period.order.amount_total == 300 and period.order.payment_id == period.payment_id
    assert Event.objects.filter(type="subscription.renewed").count() == 5
    assert Event.objects.filter(type="order.paid").count() == 10  # the joins and the renewals
    assert Transfer.objects.filter(code="wallet_spend").count() == 10
    assert_ledger_balanced()


def test_a_broke_wallet_falls_out_of_its_group_to_dunning_and_the_others_renew(store, django_capture_on_commit_callbacks):
    """One member of the group cannot pay: the others are renewed by the group, the broke one is
    charged nothing and goes to the dunning path (past_due, a failed period, an email)."""
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Broke", prices=[{"interval": "month", "amount": 300}])
        buyers, subs = _members(tier, [1000, 1000, 500, 1000])  # the third keeps $2 after joining
        before = [_balance(b) for b in buyers]
        mail.outbox.clear()
        clock.move_to(DUE)
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            assert renewals_run() == {"renewed": 3, "failed": 1}
    assert _order_inserts(queries.captured_queries) == 1  # the group's, not one per member
    assert [_balance(b) for b in buyers] == [before[0] - 300, before[1] - 300, before[2], before[3] - 300]
    broke = Subscription.objects.get(pk=subs[2].pk)
    assert (broke.status, broke.period_number) == ("past_due", 0)
    assert SubscriptionPeriod.objects.get(subscription=broke, number=1).status == PeriodStatus.FAILED
    assert [m.subject for m in mail.outbox] == ["Your Broke membership payment failed"]
    assert Order.objects.filter(email=buyers[2].email).count() == 1  # the join only
    assert Subscription.objects.filter(status="active", period_number=1).count() == 3
    assert_ledger_balanced()


def test_a_member_who_changed_since_the_read_is_left_out_of_the_group_and_decided_again(store):
    """A member who cancels after the task read the group: the group renews the others (its
    debit of that wallet rolled back to the savepoint), and the fresh read ends the membership."""
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Stale", prices=[{"interval": "month", "amount": 300}])
        buyers, subs = _members(tier, [1000] * 3)
        before = [_balance(b) for b in buyers]
        clock.move_to(DUE)
        streamed = list(subscriptions_due(now=DUE))
        subscription_cancel(subscription=subs[1], at_period_end=True)
        renewed, left = renewals_group(streamed, now=DUE)
        assert (renewed, [s.pk for s in left]) == (2, [subs[1].pk])
        assert not SubscriptionPeriod.objects.filter(subscription=subs[1], number=1).exists()  # its claim went too
        assert renewals_run() == {"ended": 1}
    assert [_balance(b) for b in buyers] == [before[0] - 300, before[1], before[2] - 300]
    assert_ledger_balanced()


def test_a_buyer_with_memberships_at_two_stores_pays_each_once(store, creator):
    """Groups are made per store: a buyer who is a member of two stores, both due, is charged by
    each store's group once."""
    other = StoreFactory(owner=creator)
    with time_machine.travel(JOINED, tick=False) as clock:
        first = tier_create(store=store, name="First", prices=[{"interval": "month", "amount": 300}])
        second = tier_create(store=other, name="Second", prices=[{"interval": "month", "amount": 200}])
        buyer = buyer_for_email(email="both@example.com")
        wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
        subscription_join(tier=first, method="wallet", buyer=buyer)
        subscription_join(tier=second, method="wallet", buyer=buyer)
        before = _balance(buyer)
        clock.move_to(DUE)
        assert renewals_run() == {"renewed": 2}
        assert renewals_run() == {}
    assert _balance(buyer) == before - 500
    assert SubscriptionPeriod.objects.filter(number=1, status=PeriodStatus.PAID).count() == 2
    assert_ledger_balanced()


@override_settings(STALL_PLATFORM_FEE_BPS=500)
def test_a_group_moves_the_same_money_as_a_renewal_made_alone(store):
    """With a platform fee, a tax reserve and an envelope set aside on every sale, and top-up card
    fees owed in the wallets' pools, a member renewed by the group moves exactly the transfers
    (codes and amounts) of an identical member renewed alone, and the books balance."""
    books_settings_update(store=store, tax_rate="25")
    envelope_create(store=store, name="Owner pay", share="10.5")
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Books", prices=[{"interval": "month", "amount": 300}])
        buyers, subs = _members(tier, [1000, 1000, 1000])
        clock.move_to(DUE)
        assert subscription_renew(subscription_id=subs[0].pk, now=DUE) == "renewed"  # alone: the lean spend
        assert renewals_run() == {"renewed": 2}  # the two others: one group

    def moved(sub) -> list[tuple[str, int]]:
        period = SubscriptionPeriod.objects.get(subscription=sub, number=1)
        transfers = Transfer.objects.filter(reference__in=[period.order_id, period.payment_id])
        return sorted(transfers.values_list("code", "amount"))

    alone = moved(subs[0])
    assert {code for code, _ in alone} >= {"wallet_spend", "sale", "platform_fee", "processor_fee", "tax_reserve", "envelope"}
    assert moved(subs[1]) == alone and moved(subs[2]) == alone
    assert_ledger_balanced()


class Crash(BaseException):
    """The worker dies (killed, out of memory): not an error the task could catch."""


def _state():
    return (
        SubscriptionPeriod.objects.count(), Order.objects.count(), Payment.objects.count(), Transfer.objects.count(),
        Event.objects.count(), list(Account.objects.order_by("pk").values_list("pk", "debits_posted", "credits_posted")),
        list(Subscription.objects.order_by("pk").values_list("pk", "period_number", "updated_at")),
    )


def test_a_crash_mid_group_leaves_nothing_half_done_and_the_next_run_completes_it(store):
    """The worker dies after the group's orders are written and before its transfers: nothing of
    the group is left (no claim, order, payment, transfer, event, balance or subscription
    change), and the next run renews every member once."""
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Crash", prices=[{"interval": "month", "amount": 300}])
        buyers, _ = _members(tier, [1000] * 4)
        before = [_balance(b) for b in buyers]
        clock.move_to(DUE)
        state = _state()
        with mock.patch.object(renewals, "_periods_paid", side_effect=Crash), pytest.raises(Crash):
            renewals_run()
        assert _state() == state
        assert renewals_run() == {"renewed": 4}
        assert renewals_run() == {}
    assert [_balance(b) for b in buyers] == [b - 300 for b in before]
    assert Order.objects.count() == 8
    assert_ledger_balanced()


def test_a_group_that_fails_is_rolled_back_and_its_members_renewed_one_by_one(store, caplog):
    """An error inside a group (not a crash) rolls the whole group back; its members are then
    renewed one by one in the same run, each once."""
    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Fallback", prices=[{"interval": "month", "amount": 300}])
        buyers, _ = _members(tier, [1000] * 3)
        before = [_balance(b) for b in buyers]
        clock.move_to(DUE)
        with mock.patch.object(renewals, "_periods_paid", side_effect=RuntimeError("injected")):
            assert renewals_run() == {"renewed": 3}
    assert "renewing its members one by one" in caplog.text
    assert [_balance(b) for b in buyers] == [b - 300 for b in before]
    assert SubscriptionPeriod.objects.filter(number=1, status=PeriodStatus.PAID).count() == 3
    assert Order.objects.count() == 6
    assert_ledger_balanced()


def test_a_groups_events_show_the_subscription_and_the_order_as_the_api_does(store):
    """The webhook payloads are documented API: a group's subscription.renewed and order.paid are
    what ``subscription_out`` and ``order_out`` show of the rows it wrote (the order's lines
    without their id, as a group has always sent them: it inserts them in bulk)."""
    from stall.memberships.schemas import subscription_out
    from stall.orders.schemas import order_out

    with time_machine.travel(JOINED, tick=False) as clock:
        tier = tier_create(store=store, name="Payloads", prices=[{"interval": "month", "amount": 300}])
        _, subs = _members(tier, [1000] * 3)
        clock.move_to(DUE)
        joined = set(Event.objects.values_list("pk", flat=True))
        assert renewals_run() == {"renewed": 3}
    events = Event.objects.exclude(pk__in=joined)
    renewed = {e.data["object"]["id"]: e.data["object"] for e in events if e.type == "subscription.renewed"}
    assert renewed == {s.pk: subscription_out(Subscription.objects.get(pk=s.pk)) for s in subs}
    paid = {e.data["object"]["id"]: e.data["object"] for e in events if e.type == "order.paid"}
    orders = Order.objects.filter(pk__in=paid)
    expected = {o.pk: order_out(o) for o in orders}
    for data in expected.values():
        data["lines"] = [{**line, "id": None} for line in data["lines"]]
    assert len(paid) == 3 and paid == expected
