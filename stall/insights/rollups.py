"""Daily rollups, rebuilt from the ledger.

A day's rows are recomputed whole from the posted transfers that moved a store's real balance that
day (a sale, a refund, a processing fee or what a refund gave back of it, the platform's fee and
its return), joined to their orders for the product, kind and rail. A day is replaced in one
transaction, so a rebuild run twice, or after a late event, gives the same rows: a refund of last
month's order, or a tab settlement allocating its card fee weeks after the sale, is a transfer of
*today* and lands in today's row, exactly where the ledger has it.

The periodic task rebuilds today and yesterday every five minutes (yesterday so that a transaction
that committed just after midnight with an earlier timestamp is not missed). The lean spend pays
nothing for this: no statement is added to a purchase.

An order of several products shares each transfer among its lines in proportion to their amounts;
the order itself is counted once, under its first line.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Min, Q

from stall.core.money import prorate
from stall.ledger.models import AccountKind, Transfer, TransferState
from stall.orders.models import Order, OrderLine
from stall.orders.selectors import FEE_CODES, PLATFORM_FEE_CODES

from .models import DailyRollup, DailyTotal

INCOME_CODES = frozenset({"sale", "refund"}) | FEE_CODES | PLATFORM_FEE_CODES
FIELDS = ("gross", "refunds", "processing_fees", "platform_fees", "net", "orders", "new_customers")


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _share(amount: int, weights: list[tuple[tuple[str, str], int]]) -> list[tuple[tuple[str, str], int]]:
    whole = sum(w for _, w in weights)
    if len(weights) == 1 or not whole:
        return [(weights[0][0], amount)]
    parts, done, running = [], 0, 0
    sign = -1 if amount < 0 else 1
    for key, weight in weights:
        running += weight
        upto = sign * prorate(abs(amount), running, whole)
        parts.append((key, upto - done))
        done = upto
    return parts


def _add(row: dict, code: str, signed: int) -> None:
    """``signed``: what the transfer did to the store's balance."""
    if code == "sale":
        row["gross"] += signed
    elif code == "refund":
        row["refunds"] -= signed
    elif code in FEE_CODES:
        row["processing_fees"] -= signed
    else:
        row["platform_fees"] -= signed
    row["net"] += signed


# Transfers read and resolved to their orders at a time by rollup_rows_for_day: a day's rows
# are small (one per store, currency, product and rail) but its transfers are not, and a worker
# that held a busy day's transfers, orders and lines at once kept the memory (15 MB for 30,000).
# A chunk looks up the orders of its own transfers, so an order's transfers may fall in two.
CHUNK = 1000


def rollup_rows_for_day(*, day: date, store_ids: list[str] | None = None) -> list[DailyRollup]:
    """The rollup rows of ``day`` as the ledger has them (not saved)."""
    start, end = _day_bounds(day)
    balance = Q(debit_account__kind=AccountKind.STORE_BALANCE) | Q(credit_account__kind=AccountKind.STORE_BALANCE)
    transfers = (
        Transfer.objects.filter(code__in=sorted(INCOME_CODES), created_at__gte=start, created_at__lt=end,
                                state=TransferState.POSTED)
        .filter(balance)
        .order_by("reference")  # an order's transfers side by side: its order and lines are read once
        .values_list("code", "reference", "amount", "currency", "credit_account__kind", "credit_account__owner",
                     "debit_account__owner")
    )
    rows: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    first_order: dict[str, str] = {}  # customer → their first order, kept over the chunks
    moved = []
    for code, reference, amount, currency, credit_kind, credit_owner, debit_owner in transfers.iterator(chunk_size=1000):
        into = credit_kind == AccountKind.STORE_BALANCE
        owner = credit_owner if into else debit_owner
        if ":" in owner or (store_ids is not None and owner not in store_ids):
            continue  # test money (owner "<store>:test"), or another store
        moved.append((code, reference, amount if into else -amount, currency, owner))
        if len(moved) >= CHUNK:
            _rows_add(rows, moved, first_order)
            moved = []
    _rows_add(rows, moved, first_order)
    return [
        DailyRollup(store_id=store_id, day=day, currency=currency, kind=kind, product_id=product_id or "", rail=rail,
                    **values)
        for (store_id, currency, kind, product_id, rail), values in sorted(rows.items())
    ]


def _rows_add(rows: dict[tuple, dict], moved: list[tuple], first_order: dict[str, str]) -> None:
    """Add transfers to ``rows``, with what their orders say of product, rail and customer."""
    references = sorted({m[1] for m in moved})
    orders: dict[str, tuple[str, str]] = {}
    lines: dict[str, list[tuple[tuple[str, str], int]]] = defaultdict(list)
    for i in range(0, len(references), 500):
        chunk = references[i:i + 500]
        for pk, customer_id, rail in Order.objects.filter(pk__in=chunk).values_list("pk", "customer_id", "payment__rail"):
            orders[pk] = (customer_id, rail or "")
        for order_id, product_id, kind, unit, quantity in (
            OrderLine.objects.filter(order_id__in=chunk).order_by("order_id", "pk")
            .values_list("order_id", "product_id", "product__kind", "unit_amount", "quantity")
        ):
            lines[order_id].append(((str(kind), product_id), unit * quantity))
    sold = {m[1] for m in moved if m[0] == "sale" and m[1] in orders}
    customers = {orders[o][0] for o in sold if orders[o][0]}
    ids = sorted(customers - first_order.keys())
    for i in range(0, len(ids), 500):
        first_order.update(
            Order.objects.filter(customer_id__in=ids[i:i + 500], livemode=True).values("customer_id")
            .annotate(first=Min("id")).values_list("customer_id", "first")
        )
    for code, reference, signed, currency, store_id in moved:
        customer, rail = orders.get(reference, ("", ""))
        weights = lines.get(reference) or [(("other", ""), 1)]
        for (kind, product_id), part in _share(signed, weights):
            _add(rows[(store_id, currency, kind, product_id, rail)], code, part)
        if code == "sale" and reference in orders:
            kind, product_id = weights[0][0]
            row = rows[(store_id, currency, kind, product_id, rail)]
            row["orders"] += 1
            if customer and first_order.get(customer) == reference:
                row["new_customers"] += 1


@transaction.atomic
def rollups_rebuild_day(*, day: date, store_ids: list[str] | None = None) -> int:
    """Replace ``day``'s rollups (of every store, or of ``store_ids``) by what the ledger says.
    Returns the number of rows written."""
    rows = rollup_rows_for_day(day=day, store_ids=store_ids)
    for model in (DailyRollup, DailyTotal):
        stale = model.objects.filter(day=day)
        if store_ids is not None:
            stale = stale.filter(store_id__in=store_ids)
        stale.delete()
    DailyRollup.objects.bulk_create(rows, batch_size=1000)
    DailyTotal.objects.bulk_create(daily_totals(rows), batch_size=1000)
    return len(rows)


def daily_totals(rows: list[DailyRollup]) -> list[DailyTotal]:
    """The rows summed per store, day and currency."""
    totals: dict[tuple, DailyTotal] = {}
    for row in rows:
        total = totals.setdefault((row.store_id, row.day, row.currency),
                                  DailyTotal(store_id=row.store_id, day=row.day, currency=row.currency))
        for name in (*FIELDS, "other"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return list(totals.values())


def rollups_rebuild(*, start: date, end: date, store_ids: list[str] | None = None) -> int:
    """Rebuild every day from ``start`` to ``end`` (both included)."""
    written, day = 0, start
    while day <= end:
        written += rollups_rebuild_day(day=day, store_ids=store_ids)
        day += timedelta(days=1)
    return written
