"""What an allowance's period has used is kept as running totals (ChargeTally), one row per store,
buyer and currency: each charge adds to it, each refund takes off, and the totals always equal the
sum of the period's charges less their refunds, which is what they replace."""

import importlib
from datetime import datetime
from datetime import timezone as dt_timezone
from types import SimpleNamespace
from unittest import mock

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import F, Sum

from stall.accounts.services import buyer_for_email
from stall.orders.refunds import refund_create
from stall.testing import StoreFactory, query_plan
from stall.wallets import allowances
from stall.wallets.allowances import (
    AllowanceExceeded,
    allowance_grant,
    allowance_used,
    charge_create,
    period_bounds,
)
from stall.wallets.models import Charge, ChargeTally
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def at(*args) -> datetime:
    return datetime(*args, tzinfo=dt_timezone.utc)


def clock(moment: datetime):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def summed(*, store, buyer, period: str, now: datetime) -> int:
    """What the period used, summed from the charges themselves as it was before the totals."""
    start, _ = period_bounds(period=period, now=now)
    net = Charge.objects.filter(
        store=store, allowance__buyer=buyer, created_at__gte=start,
    ).aggregate(net=Sum(F("amount") - F("order__amount_refunded"), default=0))["net"]
    return net


@pytest.fixture
def caller(db):
    buyer = buyer_for_email(email="caller@example.com")
    wallet_top_up(buyer=buyer, amount=20_000, currency="USD", payment_method="sandbox_visa")
    return buyer


def test_the_used_amount_is_one_row_found_by_its_key(caller):
    """An API store charges a buyer thousands of times a day: what the period used is read from one
    row, not summed from the period's charges."""
    store = StoreFactory()
    allowance = allowance_grant(buyer=caller, store=store, amount=500, period="day")
    charge_create(store=store, customer_id=store.customers.get().pk, amount=5, currency="USD")
    plan = query_plan(lambda: allowance_used(allowance=allowance))
    assert "wallets_chargetally" in plan and "wallets_charge " not in plan + " ", plan
    assert "autoindex_wallets_chargetally" in plan or "wallets_one_charge_tally_per_store" in plan, plan


def test_the_totals_follow_charges_refunds_and_replaced_allowances_across_periods(caller):
    """A Sunday and a Monday of one month, under a daily then a monthly allowance: after every step
    each period's total is what summing the charges gives."""
    store = StoreFactory()
    other = buyer_for_email(email="other@example.com")
    wallet_top_up(buyer=other, amount=10_000, currency="USD", payment_method="sandbox_visa")

    def customer(buyer):
        return store.customers.get(email=buyer.email).pk

    def check(now):
        for period in ("day", "week", "month"):
            allowance = SimpleNamespace(store_id=store.pk, buyer_id=caller.pk, currency="USD", period=period)
            assert allowance_used(allowance=allowance, now=now) == summed(store=store, buyer=caller, period=period, now=now), period

    sunday, monday = at(2031, 6, 15, 12), at(2031, 6, 16, 9)
    with clock(sunday):
        allowance_grant(buyer=caller, store=store, amount=1_000, period="day")
        allowance_grant(buyer=other, store=store, amount=1_000, period="day")
        first = charge_create(store=store, customer_id=customer(caller), amount=300, currency="USD")
        charge_create(store=store, customer_id=customer(caller), amount=200, currency="USD")
        charge_create(store=store, customer_id=customer(other), amount=700, currency="USD")  # not the caller's
        refund_create(store=store, order_id=first.order_id, amount=100)
        check(sunday)
        assert allowance_used(allowance=SimpleNamespace(
            store_id=store.pk, buyer_id=caller.pk, currency="USD", period="day"), now=sunday) == 400
    with clock(monday):  # a new day and a new week, the same month
        check(monday)
        allowance_grant(buyer=caller, store=store, amount=5_000, period="month")  # replaced mid-month
        charge_create(store=store, customer_id=customer(caller), amount=50, currency="USD")
        refund_create(store=store, order_id=first.order_id, amount=200)  # Sunday's charge, the rest of it
        check(monday)
        monthly = SimpleNamespace(store_id=store.pk, buyer_id=caller.pk, currency="USD", period="month")
        assert allowance_used(allowance=monthly, now=monday) == 250
        assert allowance_used(allowance=SimpleNamespace(
            store_id=store.pk, buyer_id=caller.pk, currency="USD", period="day"), now=monday) == 50
    with clock(at(2031, 7, 1, 0, 0)):  # a new month: nothing used yet
        assert allowance_used(allowance=monthly) == 0
        charge_create(store=store, customer_id=customer(caller), amount=5_000, currency="USD")
        with pytest.raises(AllowanceExceeded, match=r"\$0\.00 left"):
            charge_create(store=store, customer_id=customer(caller), amount=1, currency="USD")


def test_a_charge_the_totals_have_no_room_for_is_refused_and_counts_nothing(caller):
    """The statement that counts a charge refuses it when its period would go over the limit, on
    the totals as they stand (on PostgreSQL the charge's first read may have seen older ones)."""
    store = StoreFactory()
    allowance_grant(buyer=caller, store=store, amount=500, period="week")
    charge_create(store=store, customer_id=store.customers.get().pk, amount=450, currency="USD")
    now = Charge.objects.get().created_at
    tally = dict(store_id=store.pk, buyer_id=caller.pk, currency="USD", now=now, limit=500)
    assert allowances._tally_add(amount=51, period="week", **tally) is False
    assert allowances._tally_add(amount=50, period="week", **tally) is True
    row = ChargeTally.objects.get()
    assert (row.day_amount, row.week_amount, row.month_amount) == (500, 500, 500)


def test_the_migration_tallies_the_charges_made_before_it(caller):
    """Charges made before the totals existed are summed into them once, by the migration."""
    store = StoreFactory()
    allowance_grant(buyer=caller, store=store, amount=5_000, period="month")
    first = charge_create(store=store, customer_id=store.customers.get().pk, amount=300, currency="USD")
    charge_create(store=store, customer_id=store.customers.get().pk, amount=120, currency="USD")
    refund_create(store=store, order_id=first.order_id, amount=100)
    kept = list(ChargeTally.objects.values())
    ChargeTally.objects.all().delete()
    migration = importlib.import_module("stall.wallets.migrations.0008_charge_tally")
    migration.tally_existing_charges(apps, SimpleNamespace(connection=connection))
    assert [{k: v for k, v in row.items() if k != "id"} for row in ChargeTally.objects.values()] == [
        {k: v for k, v in row.items() if k != "id"} for row in kept
    ]
    assert kept[0]["day_amount"] == 320
