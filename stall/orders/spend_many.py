"""Many lean spends from the wallet in one transaction: the renewal task's group.

The periodic renewal task pays hundreds of members a minute from their wallets. One lean spend
(``orders.spend``) per renewal, one transaction each, costs a dozen round trips and a commit per
renewal; here a group of spends at one store in one currency writes the same rows as that many
lean spends — a succeeded payment, the order and its lines, the entitlements, the ledger
transfers with the balances on the account rows, the outbox events — with set-based statements,
so what it costs is rows, not round trips:

  debit   one SELECT locking the wallets and their fee pools, one guarded UPDATE of every wallet
          (``ledger.accounts_debit_guarded_many``): a wallet that cannot pay is left out of it,
          nothing changes for it, and the others go on
  rows    one INSERT (COPY on PostgreSQL) each: payments, orders, lines, entitlements; then the caller's
          fulfilment of its own kind, set-based too (``fulfil``), and the events in one INSERT
  ledger  the transfer rows, then one UPDATE of every other account, each once with its summed
          totals: the store's balance once for the group (``ledger.transfers_settle``)

The rules are the lean spend's: the same guard as the CHECK constraints, the same idempotency
keys (``<payment>:wallet_spend``, ``:sale``, ``:platform_fee``, ``:processor_fee``), the same fee
share of each wallet's top-up fees, the same order-paid observers (their columns read once for the
store, ``group_read``) and what follows a wallet spend (``funds_spent_notify``: automatic
top-ups). Test money is not spent here: the caller sends such wallets down the one-by-one path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from django.db import connection, transaction
from django.utils import timezone

from stall.core.ids import new_ids
from stall.core.money import prorate
from stall.core.sql import rows_insert
from stall.integrations.webhooks import ENDPOINTS_ENABLED_SQL, EventRow, events_record
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import (
    Posting,
    account_id_for,
    accounts_debit_guarded_many,
    transfers_settle,
)
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus
from stall.payments.rails.wallet import Funds, funds_spent_notify
from stall.payments.services import platform_fee_for

from .fulfilment import PaidLine, order_paid_notify, order_paid_observers, order_paid_postings
from .models import Entitlement, Order, OrderLine
from .schemas import order_out
from .services import ENTITLING_KINDS
from .spend import SpendLine


@dataclass
class GroupSpend:
    """One spend of a group: what the caller read about the buyer, and what they pay for."""

    key: str  # the caller's name for it (a subscription's id)
    buyer_id: str
    email: str
    customer_id: str
    funds: Funds
    lines: list[SpendLine]
    context: dict | None = None

    @cached_property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True)
class GroupRead:
    """What every spend at the store shares: whether it has an enabled webhook endpoint, and the
    order-paid observers' columns (``orders.fulfilment``)."""

    endpoints: bool
    observed: list


@dataclass
class GroupSpent:
    paid: list[tuple[GroupSpend, Order]] = field(default_factory=list)
    refused: list[GroupSpend] = field(default_factory=list)  # the wallet could not pay: nothing moved
    dropped: list[GroupSpend] = field(default_factory=list)  # left out by ``after_debit``: nothing moved
    # time.perf_counter() when the store's balance row was taken (its UPDATE, last): from then to
    # the commit a one-click spend at the store waits for the group
    balance_taken_at: float | None = None


def group_read(*, store_id: str) -> GroupRead:
    """The store's columns of the lean spend's first SELECT, read once for a group."""
    observers = order_paid_observers()
    sql = "SELECT " + ", ".join([ENDPOINTS_ENABLED_SQL, *(o.read_sql for o in observers)])
    params = [store_id] + [store_id for o in observers if "%s" in o.read_sql]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return GroupRead(endpoints=bool(row[0]), observed=list(row[1:]))


_PAYMENT_COLUMNS = (
    "id", "purpose", "store_id", "checkout_id", "buyer_id", "rail", "payment_method", "status", "amount", "currency",
    "fee", "amount_refunded", "rail_reference", "failure_code", "failure_message", "livemode", "created_at", "updated_at",
)
_ORDER_COLUMNS = (
    "id", "store_id", "checkout_id", "payment_id", "customer_id", "email", "status", "currency", "amount_total",
    "amount_refunded", "fee", "fee_refunded", "platform_fee", "platform_fee_refunded", "livemode", "created_at",
)
_LINE_COLUMNS = ("order_id", "product_id", "name", "unit_amount", "quantity")
_ENTITLEMENT_COLUMNS = ("id", "store_id", "order_id", "product_id", "email", "download_limit", "revoked_at", "created_at")


class _Positional:
    """Builds ``model`` instances from ``columns``' values, every other field at its default (worked
    out once), by position: the ORM's path for the rows it reads. By keyword, each instance works
    out every field's default and pops its keyword again; an Order and its line so built were a
    third of a renewal's Python calls. A field whose default is made per object must be given."""

    def __init__(self, model, columns: tuple[str, ...]):
        fields = model._meta.concrete_fields
        for f in fields:
            if f.attname not in columns and f.has_default() and callable(f.default):
                raise ValueError(f"{model.__name__}.{f.attname} has a default made per object: give its value")
        index = {f.attname: i for i, f in enumerate(fields)}
        self.model = model
        self.defaults = [None if f.attname in columns else f.get_default() for f in fields]
        self.positions = [index[c] for c in columns]

    def __call__(self, *values):
        row = self.defaults.copy()
        for position, value in zip(self.positions, values):
            row[position] = value
        return self.model(*row)


def _debit(spends: list[GroupSpend]) -> tuple[list[tuple[GroupSpend, int, int, int]], list[GroupSpend]]:
    """Debit every wallet of the group at once. Returns (paid, each with its fee share, what its
    wallet holds after the debit and all that ever came in, and refused)."""
    totals = accounts_debit_guarded_many(
        debits={s.funds.wallet_account_id: s.total for s in spends}, lock_ids=tuple(s.funds.fee_pool_id for s in spends),
    )
    paid, refused = [], []
    for spend in spends:
        wallet = totals.get(spend.funds.wallet_account_id)
        if wallet is None:
            refused.append(spend)
            continue
        pool = totals[spend.funds.fee_pool_id]
        after = wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
        fee = prorate(pool.debits_posted - pool.credits_posted, spend.total, after + spend.total)
        paid.append((spend, fee, after, wallet.credits_posted))
    return paid, refused


def orders_spend_group(
    *, store_id: str, currency: str, spends: list[GroupSpend], read: GroupRead, kind: str,
    fulfil: Callable[[list[tuple[GroupSpend, Order]]], list[EventRow]],
    after_debit: Callable[[list[GroupSpend]], set[str]] | None = None,
) -> GroupSpent:
    """Pay each of ``spends`` at ``store_id`` from its buyer's wallet and make its paid order, in
    the caller's transaction (see the module's docstring). Every line is of ``kind``, whose
    fulfilment is the caller's ``fulfil(paid)``: it writes its rows for all the paid orders at once
    and returns their events (the kind's one-order handler is not called).

    ``after_debit(paid)`` runs once the paid ones' wallets are debited and locked, inside a
    savepoint, and returns the keys of spends to leave out after all (a subscription changed since
    it was read): the savepoint is then rolled back — their debits and whatever ``after_debit``
    wrote — and the rest is debited again without them. A wallet that cannot pay is refused
    without touching the others. Each wallet appears once in a group, and holds real money."""
    wallets = [s.funds.wallet_account_id for s in spends]
    if len(set(wallets)) != len(wallets):
        raise ValueError("a group debits each wallet once")
    if any(not s.funds.wallet_livemode or s.funds.fee_pool_id is None for s in spends):
        raise ValueError("a group spends real money from wallets with a fee pool")
    if any(line.kind != kind for s in spends for line in s.lines):
        raise ValueError(f"every line of a group is of kind {kind!r}")
    result = GroupSpent()
    while True:
        point = transaction.savepoint()
        paid, refused = _debit(spends)
        result.refused += refused
        drop = after_debit([p[0] for p in paid]) if after_debit is not None and paid else set()
        if not drop:
            transaction.savepoint_commit(point)
            break
        transaction.savepoint_rollback(point)
        result.dropped += [p[0] for p in paid if p[0].key in drop]
        spends = [p[0] for p in paid if p[0].key not in drop]
    if not paid:
        return result
    for spend, _, after, credits_posted in paid:
        funds_spent_notify(funds=spend.funds, balance=after, credits_posted=credits_posted)

    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    clearing = account_id_for(kind=AccountKind.PROCESSOR_CLEARING, owner="wallet", currency=currency)
    balance = account_id_for(kind=AccountKind.STORE_BALANCE, owner=ledger_owner(store_id), currency=currency)
    platform = None
    payments, orders, lines, entitlements, postings = [], [], [], [], []
    order_new = _Positional(Order, ("id", "store_id", "payment_id", "customer_id", "email", "currency", "amount_total", "fee",
                                    "platform_fee", "livemode", "created_at"))
    line_new = _Positional(OrderLine, ("order_id", "product_id", "name", "unit_amount", "quantity"))
    # The ids a group at a time (an id each was a tenth of the calls per spend).
    payment_ids, order_ids = new_ids("pay", len(paid)), new_ids("ord", len(paid))
    entitling = sum(1 for spend, _, _, _ in paid for ln in spend.lines if ln.kind in ENTITLING_KINDS)
    entitlement_ids = iter(new_ids("ent", entitling))
    for (spend, fee, _, _), payment_id, order_id in zip(paid, payment_ids, order_ids):
        total = spend.total
        platform_fee = platform_fee_for(total)
        funds = spend.funds
        payments.append([payment_id, PaymentPurpose.CHECKOUT, store_id, None, spend.buyer_id, "wallet", "wallet",
                         PaymentStatus.SUCCEEDED, total, currency, fee, 0, funds.wallet_id, "", "", True, stamp, stamp])
        order = order_new(order_id, store_id, payment_id, spend.customer_id, spend.email, currency, total, fee, platform_fee,
                          True, now)
        orders.append([order_id, store_id, None, payment_id, spend.customer_id, spend.email, order.status, currency, total,
                       0, fee, 0, platform_fee, 0, True, stamp])
        # order_out reads ``order.lines.all()``: what the prefetch cache holds, here the list (a
        # queryset per order, as the lean spend makes, was a fifth of this function's time).
        order._prefetched_objects_cache = {"lines": [
            line_new(order_id, ln.product_id, ln.name, ln.unit_amount, ln.quantity) for ln in spend.lines
        ]}
        lines += [[order_id, ln.product_id, ln.name, ln.unit_amount, ln.quantity] for ln in spend.lines]
        entitlements += [[next(entitlement_ids), store_id, order_id, ln.product_id, spend.email, ln.download_limit, None, stamp]
                         for ln in spend.lines if ln.kind in ENTITLING_KINDS]
        postings += [
            Posting(f"{payment_id}:wallet_spend", funds.wallet_account_id, clearing, total, currency, "wallet_spend", payment_id),
            Posting(f"{payment_id}:sale", clearing, balance, total, currency, "sale", order_id),
        ]
        if platform_fee:
            platform = platform or account_id_for(kind=AccountKind.PLATFORM_FEES, owner=ledger_owner("platform"), currency=currency)
            postings.append(Posting(f"{payment_id}:platform_fee", balance, platform, platform_fee, currency, "platform_fee", order_id))
        if fee:
            postings.append(Posting(f"{payment_id}:processor_fee", balance, funds.fee_pool_id, fee, currency, "processor_fee", order_id))
        result.paid.append((spend, order))
    with connection.cursor() as cursor:
        rows_insert(cursor, Payment._meta.db_table, _PAYMENT_COLUMNS, payments)
        rows_insert(cursor, Order._meta.db_table, _ORDER_COLUMNS, orders)
        rows_insert(cursor, OrderLine._meta.db_table, _LINE_COLUMNS, lines)
        rows_insert(cursor, Entitlement._meta.db_table, _ENTITLEMENT_COLUMNS, entitlements)
    events = [EventRow("order.paid", order_out(order)) for _, order in result.paid]
    events += fulfil(result.paid) or []
    for spend, order in result.paid:
        paid_lines = [PaidLine(ln.product_id, str(ln.kind), ln.amount) for ln in spend.lines]
        events += order_paid_notify(order=order, paid=paid_lines, context=spend.context, read=read.observed)
        postings += order_paid_postings(order=order, read=read.observed)
    events_record(store_id=store_id, events=events, endpoints=read.endpoints)
    result.balance_taken_at = time.perf_counter()
    transfers_settle(pending_ids=[], post=True, postings=postings, debited={s.funds.wallet_account_id: s.total for s, _ in result.paid})
    return result
