"""The daily rollups equal what the ledger says, for a generated history, and stay right after
refunds and late events (a refund of an old order, a rebuild run twice)."""

from collections import defaultdict
from datetime import date

import pytest
import time_machine
from django.db.models import Sum

from stall.accounts.services import buyer_for_email
from stall.catalog.models import ProductKind
from stall.content.services import post_create, post_unlock
from stall.insights import rollups
from stall.insights.models import DailyRollup, DailyTotal
from stall.insights.rollups import (
    FIELDS,
    INCOME_CODES,
    rollup_rows_for_day,
    rollups_rebuild,
    rollups_rebuild_day,
)
from stall.ledger.models import AccountKind, Transfer
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, StoreFactory, buy
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def ledger_by_day(store):
    """What moved the store's real balance per UTC day, by figure, straight from the transfers."""
    out = defaultdict(lambda: defaultdict(int))
    transfers = Transfer.objects.filter(code__in=INCOME_CODES, state="posted").select_related("debit_account", "credit_account")
    for t in transfers:
        into = t.credit_account.kind == AccountKind.STORE_BALANCE and t.credit_account.owner == store.pk
        out_of = t.debit_account.kind == AccountKind.STORE_BALANCE and t.debit_account.owner == store.pk
        if not (into or out_of):
            continue
        signed = t.amount if into else -t.amount
        day = t.created_at.date()
        out[day]["net"] += signed
        if t.code == "sale":
            out[day]["gross"] += signed
            out[day]["orders"] += 1
        elif t.code == "refund":
            out[day]["refunds"] -= signed
        else:
            out[day]["fees"] -= signed
    return {day: dict(v) for day, v in out.items()}


def rollups_by_day(store):
    rows = DailyRollup.objects.filter(store=store).values("day").annotate(
        gross=Sum("gross"), refunds=Sum("refunds"), pf=Sum("processing_fees"), plf=Sum("platform_fees"), net=Sum("net"),
        orders=Sum("orders"))
    return {r["day"]: {"net": r["net"], "gross": r["gross"], "orders": r["orders"], "refunds": r["refunds"],
                       "fees": r["pf"] + r["plf"]} for r in rows}


def _drop_zero(d):
    return {day: {k: v for k, v in figures.items() if v} for day, figures in d.items()}


@pytest.fixture
def history(store):
    """Ten days of a store: card sales of a download, wallet unlocks of posts and a tip by two
    readers, refunds (one in part, one of an order days old), and another store's sales."""
    zine = ProductFactory(store=store, amount=900, kind=ProductKind.DOWNLOAD)
    other = StoreFactory()
    elsewhere = ProductFactory(store=other, amount=700)
    readers = []
    with time_machine.travel("2026-05-01 09:00Z", tick=False):
        for email in ("ann@example.com", "bo@example.com"):
            reader = buyer_for_email(email=email)
            wallet_top_up(buyer=reader, amount=2000, currency="USD", payment_method="sandbox_visa")
            readers.append(reader)
    orders = []
    for day in range(1, 11):
        with time_machine.travel(f"2026-05-{day:02d} 12:00Z", tick=False):
            orders.append(buy(store=store, product=zine, email=f"card{day % 3}@example.com"))
            post = post_create(store=store, title=f"Post {day}", amount=25 * day, status="published")
            post_unlock(post=post, method="wallet", buyer=readers[day % 2])
            buy(store=other, product=elsewhere)
        if day == 4:
            with time_machine.travel("2026-05-04 18:00Z", tick=False):
                refund_create(store=store, order_id=orders[0].pk, amount=300)
    with time_machine.travel("2026-05-10 23:59:59Z", tick=False):
        refund_create(store=store, order_id=orders[1].pk)  # a late refund of the 2nd's order
    return orders


def test_the_rollups_equal_the_ledger_for_a_generated_history(store, history):
    rollups_rebuild(start=date(2026, 5, 1), end=date(2026, 5, 10))
    assert _drop_zero(rollups_by_day(store)) == _drop_zero(ledger_by_day(store))
    totals = {t.day: {"net": t.net, "gross": t.gross, "orders": t.orders, "refunds": t.refunds,
                      "fees": t.processing_fees + t.platform_fees} for t in DailyTotal.objects.filter(store=store)}
    assert totals == rollups_by_day(store)
    total = DailyRollup.objects.filter(store=store).aggregate(orders=Sum("orders"), new=Sum("new_customers"))
    # 10 card orders by 3 emails, 10 unlocks by 2 readers: 5 first orders.
    assert (total["orders"], total["new"]) == (20, 5)
    kinds = dict(DailyRollup.objects.filter(store=store).values("kind").annotate(g=Sum("gross")).values_list("kind", "g"))
    assert kinds == {"download": 9000, "post": sum(25 * d for d in range(1, 11))}
    rails = dict(DailyRollup.objects.filter(store=store).values("rail").annotate(n=Sum("orders")).values_list("rail", "n"))
    assert rails == {"sandbox": 10, "wallet": 10}


def test_a_rebuild_twice_is_once_and_a_late_refund_lands_on_its_own_day(store, history):
    rollups_rebuild(start=date(2026, 5, 1), end=date(2026, 5, 11))
    before = rollups_by_day(store)
    rollups_rebuild(start=date(2026, 5, 1), end=date(2026, 5, 11))
    assert rollups_by_day(store) == before
    # Days later, the May 3rd order is refunded: the refund is a transfer of May 12th.
    with time_machine.travel("2026-05-12 08:00Z", tick=False):
        refund_create(store=store, order_id=history[2].pk)
    rollups_rebuild_day(day=date(2026, 5, 12))
    after = rollups_by_day(store)
    assert {d: v for d, v in after.items() if d != date(2026, 5, 12)} == before
    assert after[date(2026, 5, 12)]["refunds"] == 900
    assert _drop_zero(after) == _drop_zero(ledger_by_day(store))


def test_test_money_is_left_out(store, settings):
    """A sale with a test card, once the Stall takes real cards, is test money: not in the rollups."""
    with time_machine.travel("2026-05-01 09:00Z", tick=False):
        real = buy(store=store, product=ProductFactory(store=store, amount=300))
        settings.STRIPE_SECRET_KEY, settings.STALL_SANDBOX_ENABLED = "sk_test_platform", True
        test = buy(store=store, product=ProductFactory(store=store, amount=500))
    assert (real.livemode, test.livemode) == (True, False)
    rollups_rebuild_day(day=date(2026, 5, 1))
    assert DailyRollup.objects.filter(store=store).aggregate(g=Sum("gross"))["g"] == 300


def test_a_day_read_in_many_chunks_gives_the_same_rows_as_in_one(store, history, monkeypatch):
    """A day's transfers are resolved to their orders a chunk at a time: with chunks of one, two or
    three transfers the rows are the same as with the whole day in one."""

    def rows(day):
        return [(r.store_id, r.currency, r.kind, r.product_id, r.rail, *(getattr(r, f) for f in FIELDS))
                for r in rollup_rows_for_day(day=day)]

    days = [date(2026, 5, d) for d in range(1, 11)]
    whole = {day: rows(day) for day in days}
    assert sum(len(r) for r in whole.values()) > 20
    for chunk in (1, 2, 3):  # chunks of every size, the last one short of it on some day
        monkeypatch.setattr(rollups, "CHUNK", chunk)
        assert {day: rows(day) for day in days} == whole, chunk
