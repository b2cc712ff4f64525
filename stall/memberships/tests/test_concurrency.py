"""Two workers running the renewal task at once charge each due subscription once, on real
connections (one per thread): SQLite admits one writer at a time, PostgreSQL makes the second
claim of a period wait on the first's row and then fail on the unique constraint."""

from datetime import UTC, datetime

import pytest
import time_machine

from stall.accounts.services import buyer_for_email
from stall.ledger.tests.test_concurrency import in_threads
from stall.memberships import billing, renewals
from stall.memberships.models import SubscriptionPeriod
from stall.memberships.renewals import renewals_run
from stall.memberships.services import subscription_join
from stall.memberships.tests.test_renewal_groups import assert_ledger_balanced
from stall.memberships.tiers import tier_create
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 4


def test_workers_racing_over_the_due_renewals_charge_each_once(store):
    with time_machine.travel(datetime(2027, 1, 10, 12, tzinfo=UTC), tick=False) as clock:
        tier = tier_create(store=store, name="Race", prices=[{"interval": "month", "amount": 300}])
        subs = []
        for n in range(3):
            buyer = buyer_for_email(email=f"w{n}@example.com")
            wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
            subs.append(subscription_join(tier=tier, method="wallet", buyer=buyer).subscription)
        for n in range(2):
            subs.append(subscription_join(tier=tier, method="card", email=f"c{n}@example.com", payment_method="sandbox_visa").subscription)
        clock.move_to(datetime(2027, 2, 10, 13, tzinfo=UTC))
        results, errors = in_threads(WORKERS, lambda i: renewals_run())
    assert errors == [None] * WORKERS
    assert sum(r.get("renewed", 0) for r in results) == len(subs)
    assert SubscriptionPeriod.objects.filter(number=1, status="paid").count() == len(subs)
    assert Order.objects.count() == 2 * len(subs)  # each join and one renewal each
    assert Payment.objects.filter(rail="sandbox", status="succeeded").count() == 3 + 2 * 2  # top-ups, joins, renewals


def _due_members(store, *, wallet: int, card: int, broke: int):
    """Members of a $3/month tier joined on 10 January, due on 10 February: ``wallet`` who can pay
    from the wallet, ``broke`` whose wallet is empty after the join (dunning), ``card`` by card."""
    tier = tier_create(store=store, name="Threads", prices=[{"interval": "month", "amount": 300}])
    for n in range(wallet + broke):
        buyer = buyer_for_email(email=f"t{n}@example.com")
        # $5 topped up and $3 joined leaves $2: short of the renewal.
        wallet_top_up(buyer=buyer, amount=1000 if n < wallet else 500, currency="USD", payment_method="sandbox_visa")
        subscription_join(tier=tier, method="wallet", buyer=buyer)
    for n in range(card):
        subscription_join(tier=tier, method="card", email=f"tc{n}@example.com", payment_method="sandbox_visa")


def test_the_task_on_several_threads_renews_each_member_once_and_the_ledger_balances(store, monkeypatch):
    monkeypatch.setattr(billing, "GROUP", 4)  # many batches for three threads to share
    with time_machine.travel(datetime(2027, 1, 10, 12, tzinfo=UTC), tick=False) as clock:
        _due_members(store, wallet=13, card=2, broke=2)
        clock.move_to(datetime(2027, 2, 10, 13, tzinfo=UTC))
        assert renewals_run(workers=3) == {"renewed": 15, "failed": 2}
        assert renewals_run(workers=3) == {}  # nothing due twice
    assert SubscriptionPeriod.objects.filter(number=1, status="paid").count() == 15
    assert Order.objects.count() == 17 + 15  # the joins and the renewals
    assert_ledger_balanced()


def test_a_failure_on_a_thread_stops_the_run_and_is_raised(store, monkeypatch):
    monkeypatch.setattr(billing, "GROUP", 2)

    def broken(subs, *, now):
        raise RuntimeError("the group broke")

    with time_machine.travel(datetime(2027, 1, 10, 12, tzinfo=UTC), tick=False) as clock:
        _due_members(store, wallet=9, card=0, broke=0)
        clock.move_to(datetime(2027, 2, 10, 13, tzinfo=UTC))
        monkeypatch.setattr(renewals, "renewals_group", broken)
        with pytest.raises(RuntimeError, match="the group broke"):
            renewals_run(workers=2)
    assert SubscriptionPeriod.objects.filter(number=1).count() == 0
