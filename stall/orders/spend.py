"""The lean spend: a one-click purchase from the wallet or the tab in about ten SQL statements.

An unlock, a tip, an API charge or a checkout paid from the wallet is the most frequent write in
Stall. The general path (``checkout_confirm``: lock the checkout, make a payment, ask the rail,
``payment_succeed``, make the order, move the money transfer by transfer) ran 66 statements for a
25¢ unlock. This one writes the same rows — a succeeded payment, the order and its lines, the
entitlements, the ledger transfers with the balances on the account rows, and the outbox events —
in one short transaction:

  read    one SELECT of the buyer's wallet and tab, the store's customer, and what the caller asks
          (``extra_columns``: has this post been unlocked, what does this checkout hold)
  debit   one guarded UPDATE of the wallet (or tab) that also locks its fee pool (the rail's
          ``wallet_debit``/``tab_debit``); refused means nothing changed
  rows    one INSERT each: payment, order, order lines, entitlements, (the caller's row: a tip,
          a charge), events
  ledger  one INSERT of the transfers and one UPDATE of every other account's totals, last, so
          the rows every spend touches (a clearing account, the store's balance) are held briefly

No re-reads and no lock taken twice; the ids of fixed accounts come from memory. The statement
count is pinned by tests (``django_assert_max_num_queries``). Webhook deliveries are made from the
events after the commit (``integrations.webhooks.events_dispatch``), not inside the spend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from stall.accounts.models import Buyer
from stall.core.ids import new_id
from stall.integrations.webhooks import ENDPOINTS_ENABLED_SQL, EventRow, events_record
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import Posting, account_id_for, transfers_post
from stall.payments.errors import BuyerRequired
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus
from stall.payments.rails import test_money_check
from stall.payments.rails.tab import tab_debit
from stall.payments.rails.wallet import (
    FUNDS_COLUMNS,
    FUNDS_WIDTH,
    Funds,
    funds_from_row,
    funds_joins,
    funds_params,
    wallet_debit,
)
from stall.payments.services import platform_fee_for

from .fulfilment import (
    PaidLine,
    fulfilment_handler,
    order_paid_notify,
    order_paid_observers,
    order_paid_postings,
)
from .models import Entitlement, Order, OrderLine
from .schemas import order_out
from .services import ENTITLING_KINDS, customer_for_email

IN_LEDGER_METHODS = ("wallet", "tab")


@dataclass(frozen=True)
class SpendLine:
    product_id: str
    name: str
    unit_amount: int
    kind: str
    download_limit: int
    quantity: int = 1

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


@dataclass
class SpendRead:
    """What the spend's first SELECT found: the buyer's funds, the customer, and the caller's columns."""

    funds: Funds
    customer_id: str | None
    extra: list = field(default_factory=list)  # one tuple of the caller's columns per row read
    endpoints: bool = True  # the store has an enabled webhook endpoint: its events are delivered
    observed: list = field(default_factory=list)  # the order-paid observers' columns (orders.fulfilment)
    buyer: Buyer | None = None  # the buyer the SELECT found (BuyerFrom), or the caller's


@dataclass(frozen=True)
class BuyerFrom:
    """The buyer, found by the spend's SELECT itself, for a caller that knows only what leads to
    them (an API charge names a store's customer): the SELECT reads FROM ``tables``, which name
    the buyer ``b`` (accounts_buyer), and ends with ``WHERE {where} {lock}``. Its values are
    ``params`` and ``where_params``; the caller's columns may read the tables' other columns."""

    tables: str
    params: list
    where: str
    where_params: list
    lock: str = ""


def spend_read(
    *, buyer=None, store_id: str, currency: str, extra_columns: str = "", extra_params: list | None = None,
    extra_joins: str = "", extra_join_params: list | None = None, buyer_from: BuyerFrom | None = None,
) -> SpendRead | None:
    """The spend's one SELECT. ``extra_columns`` (with ``%s`` for ``extra_params``) are read in the
    same statement; ``extra_joins`` may add rows (a checkout's lines), one tuple each in ``extra``.

    For ``buyer`` or, with ``buyer_from``, for the buyer the statement finds (``read.buyer``, None
    when the tables hold no buyer: then there are no funds either). None when ``buyer_from``'s
    tables give no row."""
    observers = order_paid_observers()
    email = "b.email" if buyer_from else "%s"
    columns = (
        f"{FUNDS_COLUMNS}, (SELECT c.id FROM audience_customer c WHERE c.store_id = %s AND c.email = {email}), "
        + ENDPOINTS_ENABLED_SQL
        + "".join(f", {o.read_sql}" for o in observers)
    )
    params = [store_id, *([] if buyer_from else [buyer.email]), store_id]
    params += [store_id for o in observers if "%s" in o.read_sql]
    if buyer_from:
        columns += ", b.id, b.email"
    if extra_columns:
        columns += ", " + extra_columns
        params += extra_params or []
    if buyer_from:
        source, where = buyer_from.tables, f"WHERE {buyer_from.where} {buyer_from.lock}"
        params += buyer_from.params + funds_params(buyer_id=None, currency=currency)
    else:
        source, where = "(SELECT 1) AS one", ""
        params += funds_params(buyer_id=buyer.pk, currency=currency)
    joins = funds_joins(buyer_column="b.id" if buyer_from else None)
    sql = f"SELECT {columns} FROM {source} {joins} {extra_joins} {where}"
    params += (extra_join_params or []) + (buyer_from.where_params if buyer_from else [])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    skip = FUNDS_WIDTH + 2 + len(observers)
    observed = list(first[FUNDS_WIDTH + 2:skip])
    if buyer_from:
        buyer = Buyer(id=first[skip], email=first[skip + 1]) if first[skip] is not None else None
        skip += 2
    return SpendRead(
        funds=funds_from_row(first, buyer_id=buyer.pk if buyer else None, currency=currency),
        customer_id=first[FUNDS_WIDTH],
        endpoints=bool(first[FUNDS_WIDTH + 1]),
        observed=observed,
        extra=[row[skip:] for row in rows],
        buyer=buyer,
    )


class _LinesPrefetched(dict):
    """An order's prefetched-objects cache holding its ``lines`` as written, so whoever reads
    ``order.lines`` after the spend gets them with no query. The queryset Django keeps there is
    made when first read, not here: building a filtered queryset costs about 0.2 ms, inside the
    spend's transaction, and most callers (an unlock, a tip) never read the lines."""

    def __init__(self, order_id: str, lines: list):
        super().__init__()
        self._order_id, self._lines = order_id, lines

    def __missing__(self, key):
        if key != "lines":
            raise KeyError(key)
        lines = OrderLine.objects.filter(order_id=self._order_id)  # what a real prefetch keeps
        lines._result_cache, lines._prefetch_done = self._lines, True
        self[key] = lines
        return lines

    def __contains__(self, key) -> bool:
        return key == "lines" or super().__contains__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def _insert(cursor, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
    if not rows:
        return
    marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([marks] * len(rows))}",
        [value for row in rows for value in row],
    )


def order_spend(
    *, store_id: str, buyer, method: str, currency: str, lines: list[SpendLine], read: SpendRead,
    checkout_id: str | None = None, context: dict | None = None,
    before_debit: Callable[[], None] | None = None, after_debit: Callable[[], None] | None = None,
    after_order: Callable[[Order], list[EventRow]] | None = None,
) -> Order:
    """Pay ``lines`` at ``store_id`` from the buyer's wallet or tab and make the paid order. Call
    inside the caller's transaction (``transaction.atomic``), after ``spend_read``.

    ``before_debit`` runs first inside the transaction (a checkout's guarded status change),
    ``after_debit`` once the buyer's row is locked by the debit (a re-check under that lock);
    ``after_order`` runs once the order exists and may write the caller's own row and return more
    events (a charge). The product kinds' fulfilment (``orders.fulfilment``) runs with ``context``
    so it needs no query. A wallet holding test money makes a test order (livemode false, its money
    in the store's test balance), and is refused by a store that takes no test cards; the tab
    carries real purchases only. Raises WalletEmpty, TabLimitReached, TabOverdue or
    TestMoneyRefused (the transaction is then rolled back by the caller: nothing moved)."""
    if buyer is None:
        raise BuyerRequired()
    if method not in IN_LEDGER_METHODS:
        raise ValueError(f"order_spend pays from the wallet or the tab, not {method!r}")
    livemode = method == "tab" or read.funds.wallet_livemode
    if not livemode:
        test_money_check(store_id=store_id)  # a query, for test money only
    total = sum(line.amount for line in lines)
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    payment_id, order_id = new_id("pay"), new_id("ord")
    if before_debit is not None:
        before_debit()
    if method == "wallet":
        debit = wallet_debit(funds=read.funds, amount=total, payment_id=payment_id)
    else:
        debit = tab_debit(funds=read.funds, buyer=buyer, amount=total, payment_id=payment_id)
    if after_debit is not None:
        after_debit()
    customer_id = read.customer_id or customer_for_email(store_id=store_id, email=buyer.email).pk
    platform_fee = platform_fee_for(total)
    store_owner = ledger_owner(store_id, livemode=livemode)  # test money: the store's test balance
    store_balance = account_id_for(
        kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=currency
    )
    postings = [
        *debit.postings,
        Posting(f"{payment_id}:sale", debit.clearing_id, store_balance, total, currency, "sale", order_id),
    ]
    if platform_fee:
        platform_owner = ledger_owner("platform", livemode=livemode)
        platform = account_id_for(
            kind=AccountKind.PLATFORM_FEES, owner=platform_owner, currency=currency
        )
        postings.append(Posting(f"{payment_id}:platform_fee", store_balance, platform, platform_fee, currency, "platform_fee", order_id))
    if debit.fee:
        postings.append(Posting(f"{payment_id}:processor_fee", store_balance, debit.fee_account_id, debit.fee, currency, "processor_fee", order_id))

    payment = Payment(
        id=payment_id, purpose=PaymentPurpose.CHECKOUT, store_id=store_id, checkout_id=checkout_id, buyer_id=buyer.pk,
        rail=method, payment_method=method, status=PaymentStatus.SUCCEEDED, amount=total, currency=currency,
        fee=debit.fee, rail_reference=debit.reference, livemode=livemode, created_at=now,
        updated_at=now,
    )
    order = Order(
        id=order_id, store_id=store_id, checkout_id=checkout_id, payment_id=payment_id, customer_id=customer_id,
        email=buyer.email, currency=currency, amount_total=total, fee=debit.fee, platform_fee=platform_fee,
        livemode=livemode, created_at=now,
    )
    order_lines = [
        OrderLine(order=order, product_id=line.product_id, name=line.name, unit_amount=line.unit_amount, quantity=line.quantity)
        for line in lines
    ]
    order._prefetched_objects_cache = _LinesPrefetched(order_id, order_lines)
    with connection.cursor() as cursor:
        _insert(cursor, Payment._meta.db_table, (
            "id", "purpose", "store_id", "checkout_id", "buyer_id", "rail", "payment_method", "status", "amount",
            "currency", "fee", "amount_refunded", "rail_reference", "failure_code",
            "failure_message", "livemode", "created_at", "updated_at",
        ), [[payment_id, payment.purpose, store_id, checkout_id, buyer.pk, method, method, payment.status, total,
             currency, debit.fee, 0, debit.reference, "", "", livemode, stamp, stamp]])
        _insert(cursor, Order._meta.db_table, (
            "id", "store_id", "checkout_id", "payment_id", "customer_id", "email", "status", "currency",
            "amount_total", "amount_refunded", "fee", "fee_refunded", "platform_fee",
            "platform_fee_refunded", "livemode", "created_at",
        ), [[order_id, store_id, checkout_id, payment_id, customer_id, buyer.email, order.status, currency, total, 0,
             debit.fee, 0, platform_fee, 0, livemode, stamp]])
        _insert(cursor, OrderLine._meta.db_table, ("order_id", "product_id", "name", "unit_amount", "quantity"), [
            [order_id, line.product_id, line.name, line.unit_amount, line.quantity] for line in lines
        ])
        _insert(cursor, Entitlement._meta.db_table, (
            "id", "store_id", "order_id", "product_id", "email", "download_limit", "revoked_at", "created_at",
        ), [
            [new_id("ent"), store_id, order_id, line.product_id, buyer.email, line.download_limit, None, stamp]
            for line in lines if line.kind in ENTITLING_KINDS
        ])
    events = [EventRow("order.paid", order_out(order, lines=order_lines))]
    for kind in dict.fromkeys(line.kind for line in lines):
        handler = fulfilment_handler(kind)
        if handler is not None:
            kind_lines = [written for written, line in zip(order_lines, lines) if line.kind == kind]
            events += handler(order=order, lines=kind_lines, context=context) or []
    if after_order is not None:
        events += after_order(order)
    paid = [PaidLine(line.product_id, str(line.kind), line.amount) for line in lines]
    events += order_paid_notify(order=order, paid=paid, context=context, read=read.observed)
    events_record(store_id=store_id, events=events, endpoints=read.endpoints)
    postings += order_paid_postings(order=order, read=read.observed)
    transfers_post(postings=postings, debited=debit.debited)
    order.payment = payment
    return order
