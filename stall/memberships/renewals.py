"""Renewals and dunning, by the rules written down in ``billing``: the periodic task's work.

``renewals_run`` streams the due subscriptions and renews the plain wallet renewals among them in
groups (``renewals_group``); ``subscription_renew`` renews one: it ends, pauses or charges it,
claiming the next period's row first so that it happens once.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import BooleanField, Case, Value, When
from django.utils import timezone

from stall.catalog.models import ProductKind
from stall.core.errors import StallError
from stall.core.sql import in_list, rows_table
from stall.integrations.webhooks import EventRow
from stall.orders.models import Order
from stall.orders.spend import order_spend, spend_read
from stall.orders.spend_many import GroupSpend, group_read, orders_spend_group
from stall.payments.models import PaymentStatus
from stall.payments.rails.wallet import Funds
from stall.payments.saved_methods import payment_charge_saved

from . import billing, notices
from .models import (
    PaidWith,
    PaySource,
    PeriodStatus,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
    TierPrice,
)
from .schemas import subscription_out
from .services import membership_line, subscription_events_record

logger = logging.getLogger(__name__)

# A card renewal left "charging" this long (the worker died between the claim and the charge) is
# driven again by the next run, with the same idempotency key: the charge is made once.
STALE_CLAIM = timedelta(minutes=10)
DUE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAUSED)


class DueSubscription:
    """A due subscription as the task streams it: the columns its renewal reads, in a plain object
    (a model instance per member, with a converter call per datetime column, was a fifth of the
    run), with its prices attached (``price``, ``pending_price``). ``subscription_out`` shows it
    as it shows the model; ``subscription_renew`` reads the row afresh."""

    __slots__ = (
        "pk", "store_id", "buyer_id", "tier_id", "price_id", "pending_price_id", "customer_id", "email", "status",
        "origin", "pay_with", "card_fallback", "cancel_at_period_end", "pause_periods", "period_number", "anchor_at",
        "anchor_offset", "current_period_start", "current_period_end", "trial_end", "canceled_at", "ended_at",
        "next_retry_at", "created_at", "updated_at", "price", "pending_price",
    )

    def __init__(self, row, prices: dict[int, TierPrice], dt):
        (self.pk, self.store_id, self.buyer_id, self.tier_id, self.price_id, self.pending_price_id, self.customer_id,
         self.email, self.status, self.origin, self.pay_with, self.card_fallback, self.cancel_at_period_end,
         self.pause_periods, self.period_number, anchor_at, self.anchor_offset, current_period_start,
         current_period_end, trial_end, canceled_at, ended_at, next_retry_at, created_at, updated_at) = row
        # Mostly None but for the bounds and stamps: converted only when there is something to convert.
        self.anchor_at = anchor_at if anchor_at is None else dt(anchor_at)
        self.current_period_start = current_period_start if current_period_start is None else dt(current_period_start)
        self.current_period_end = current_period_end if current_period_end is None else dt(current_period_end)
        self.trial_end = trial_end if trial_end is None else dt(trial_end)
        self.canceled_at = canceled_at if canceled_at is None else dt(canceled_at)
        self.ended_at = ended_at if ended_at is None else dt(ended_at)
        self.next_retry_at = next_retry_at if next_retry_at is None else dt(next_retry_at)
        self.created_at = created_at if created_at is None else dt(created_at)
        self.updated_at = updated_at if updated_at is None else dt(updated_at)
        self.card_fallback, self.cancel_at_period_end = bool(self.card_fallback), bool(self.cancel_at_period_end)
        self.price = None if self.price_id is None else prices[self.price_id]
        self.pending_price = None if self.pending_price_id is None else prices[self.pending_price_id]

    def __repr__(self) -> str:
        return f"<DueSubscription {self.pk}>"


_DUE_COLUMNS = (
    "id", "store_id", "buyer_id", "tier_id", "price_id", "pending_price_id", "customer_id", "email", "status", "origin",
    "pay_with", "card_fallback", "cancel_at_period_end", "pause_periods", "period_number", "anchor_at", "anchor_offset",
    "current_period_start", "current_period_end", "trial_end", "canceled_at", "ended_at", "next_retry_at", "created_at",
    "updated_at",
)


def _datetime_converter():
    """The driver's datetime → the ORM's: SQLite's are naive (in the connection's time zone, UTC),
    made aware by a C-level call here rather than the ORM's converter chain (ten Python calls a
    value, the run's largest share of calls once the model instances were gone); PostgreSQL's
    driver gives them aware already."""
    if settings.USE_TZ and not connection.features.supports_timezones:
        return functools.partial(datetime.replace, tzinfo=connection.timezone)
    return lambda value: value


def subscriptions_due(*, now: datetime, batch: int = billing.GROUP):
    """The due subscriptions (``DueSubscription``), read ``batch`` at a time by primary key
    (keyset pagination: memory flat in their number, no OFFSET growing with it), with their prices
    (and the prices' products) attached from a cache: a run sees a handful of prices, not one per
    member."""
    for subs in _due_batches(now=now, batch=batch):
        yield from subs


def _due_batches(*, now: datetime, batch: int):
    # The due rule as one expression per row, not an OR of indexed terms: given the OR, SQLite
    # (and PostgreSQL's bitmap plans) gathered every due row through the (status,
    # current_period_end) index and sorted them all for each batch — the whole backlog again per
    # query, which made the run quadratic in it (100,000 due: half the run's time). Given this, the
    # database walks the primary key from where the last batch stopped, so a run reads the table
    # once whatever its backlog (every 10 minutes, a few ms per 10,000 members).
    due = Case(
        When(status__in=DUE_STATUSES, current_period_end__lte=now, then=Value(True)),
        When(status=SubscriptionStatus.PAST_DUE, next_retry_at__lte=now, then=Value(True)),
        default=Value(False), output_field=BooleanField(),
    )
    prices: dict[int, TierPrice] = {}
    dt = _datetime_converter()
    last = ""
    while True:
        # The ORM's statement, run on a cursor: the rows as the database gives them, converted
        # here only where needed (see DueSubscription).
        query = Subscription.objects.alias(due=due).filter(due=True, pk__gt=last).order_by("pk").values_list(*_DUE_COLUMNS)
        sql, params = query[:batch].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return
        wanted = {i for row in rows for i in (row[4], row[5]) if i is not None and i not in prices}
        if wanted:
            prices.update(TierPrice.objects.select_related("product").in_bulk(wanted))
        subs = [DueSubscription(row, prices, dt) for row in rows]
        yield subs
        last = subs[-1].pk


def renewals_run(*, now: datetime | None = None, workers: int = 1) -> dict[str, int]:
    """Renew every due subscription; returns counts by outcome. The plain wallet renewals of each
    batch read are made together, in one transaction (``renewals_group``); anything else, and a
    wallet renewal the group could not make, by ``subscription_renew`` from a fresh read, after
    the group has committed.

    With ``workers`` > 1 the batches are renewed on that many threads, each with its own
    connection, while this thread reads the next ones (at most ``workers`` waiting: memory stays
    flat). Batches never share a subscription, and the rows they do share (the store's balance,
    the clearing account) are locked in key order, so they queue rather than deadlock; a claim
    makes each period happen once whatever runs beside it (see billing)."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    if workers <= 1:
        for subs in _due_batches(now=now, batch=billing.GROUP):
            _batch_renew(subs, now=now, counts=counts)
        return counts
    batches: queue.Queue = queue.Queue(maxsize=workers)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work():
        mine: dict[str, int] = {}
        try:
            while (subs := batches.get()) is not None:
                if not failures:
                    _batch_renew(subs, now=now, counts=mine)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reading thread once all have stopped
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's own
            with lock:
                for outcome, n in mine.items():
                    counts[outcome] = counts.get(outcome, 0) + n
            # Drain so the reader never blocks on a full queue after a failure.
            while subs is not None:
                subs = batches.get()

    threads = [threading.Thread(target=work, name=f"renewals-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for subs in _due_batches(now=now, batch=billing.GROUP):
            if failures:
                break
            batches.put(subs)
    finally:
        for _ in threads:
            batches.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return counts


def _batch_renew(subs: list[DueSubscription], *, now: datetime, counts: dict[str, int]) -> None:
    group = [s for s in subs if _groupable(s, now=now)]
    renewed, rest = renewals_group(group, now=now)
    if renewed:
        counts["renewed"] = counts.get("renewed", 0) + renewed
    grouped = {s.pk for s in group}
    for sub_id in [s.pk for s in subs if s.pk not in grouped] + [s.pk for s in rest]:
        try:
            outcome = subscription_renew(subscription_id=sub_id, now=now)
        except Exception:  # noqa: BLE001 - one member's failure must not stop the others' renewals
            logger.exception("renewal of %s failed", sub_id)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1


def _groupable(sub: DueSubscription, *, now: datetime) -> bool:
    """The common renewal, made in a group from the row the task streamed: an active member paying
    from the wallet, not cancelling, pausing nor changing price (a change may move them to another
    tier, which the domains following memberships are told of one by one)."""
    return (
        sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and sub.pay_with == PaySource.WALLET
        and sub.buyer_id is not None and sub.price_id is not None and not sub.cancel_at_period_end
        and not sub.pause_periods and sub.pending_price_id is None and sub.current_period_end is not None
        and sub.current_period_end <= now
    )


# The members' funds, read once for a group: each wallet in the currency of the period to pay,
# its fee pool, and the store's customer of the buyer's email (the order's customer).
_FUNDS_SQL = (
    "SELECT s.id, b.email, w.id, w.account_id, w.confirm_above, w.auto_top_up_below, w.auto_top_up_method_id, "
    "w.auto_top_up_failed_at IS NOT NULL, "
    "(SELECT p.id FROM ledger_account p WHERE p.kind = 'fee_pool' AND p.owner = w.id AND p.currency = w.currency), "
    "w.livemode, (SELECT c.id FROM audience_customer c WHERE c.store_id = s.store_id AND c.email = b.email) "
    "FROM memberships_subscription s JOIN accounts_buyer b ON b.id = s.buyer_id "
    "JOIN wallets_wallet w ON w.buyer_id = s.buyer_id AND w.currency = %s WHERE {which}"
)


def _funds_read(subs: list[DueSubscription], *, currency: str) -> dict[str, tuple[str, str, Funds]]:
    """subscription id → (buyer's email, customer id, funds), for the members with a wallet in ``currency``."""
    with connection.cursor() as cursor:
        which, params = in_list("s.id", [s.pk for s in subs])
        cursor.execute(_FUNDS_SQL.format(which=which), [currency, *params])
        rows = cursor.fetchall()
    buyers = {s.pk: s.buyer_id for s in subs}
    return {
        row[0]: (row[1], row[10], Funds(
            buyer_id=buyers[row[0]], currency=currency, wallet_id=row[2], wallet_account_id=row[3], confirm_above=row[4],
            auto_top_up_below=row[5], auto_top_up_method_id=row[6], auto_top_up_failed=bool(row[7]), fee_pool_id=row[8],
            wallet_livemode=bool(row[9]),
        ))
        for row in rows
    }


def renewals_group(subs: list[DueSubscription], *, now: datetime) -> tuple[int, list[DueSubscription]]:
    """Renew a group of plain wallet renewals (``_groupable``, as streamed) with set-based
    statements: per store and currency, one transaction each. Returns (how many were renewed, the
    ones left for ``subscription_renew`` with nothing written for them: their period's row
    existed — another worker, a stale card claim —, their wallet could not pay, they changed
    since they were read, a second membership of the same wallet, or their group failed and was
    rolled back)."""
    renewed, rest = 0, []
    by_spend: dict[tuple[str, str], list[tuple[DueSubscription, NextPeriod]]] = {}
    for sub in subs:
        period = next_period(sub)
        by_spend.setdefault((sub.store_id, period.price.currency), []).append((sub, period))
    for (store_id, currency), members in by_spend.items():
        began = time.perf_counter()
        try:
            with transaction.atomic():
                done, left, balance_taken_at = _group_renew(store_id=store_id, currency=currency, members=members, now=now)
        except Exception:  # noqa: BLE001 - rolled back: its members are renewed one by one instead
            logger.exception("the renewal group from %s failed; renewing its members one by one", members[0][0].pk)
            rest += [sub for sub, _ in members]
            continue
        # How long the group held SQLite's write lock (the whole transaction) and the store
        # balance's row (from its UPDATE to the commit): what a buyer's unlock may wait for.
        ended = time.perf_counter()
        held, balance = (ended - began) * 1000, (ended - (balance_taken_at or ended)) * 1000
        logger.debug("renewal group: %d of %d renewed, the transaction held %.1f ms, the store balance %.1f ms", done,
                     len(members), held, balance, extra={"held_ms": held, "balance_ms": balance})
        renewed += done
        rest += left
    return renewed, rest


def _group_renew(*, store_id: str, currency: str, members: list[tuple[DueSubscription, NextPeriod]],
                 now: datetime) -> tuple[int, list[DueSubscription], float | None]:
    """One group's transaction: claim, pay, move on (see billing). Returns (renewed, left, when
    the store balance's row was taken)."""
    if connection.vendor == "postgresql":
        # Every row a group touches is reached by its key, and so are the foreign-key checks run
        # at its commit (thousands a group: every payment, order, line, transfer and event row).
        # PostgreSQL plans those checks once per connection and keeps the plan; planned while a
        # store's order tables still held a few rows, a sequential scan was kept and every check
        # then read the whole table (10,000 renewals: 117 s of 170 s went to the commits). Not
        # allowing it here keeps them on the primary keys whatever the tables held then.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    funds = _funds_read([sub for sub, _ in members], currency=currency)
    spends, left, wallets = {}, [], set()
    for sub, period in members:
        email, customer_id, fund = funds.get(sub.pk, (None, None, None))
        if fund is None or not fund.wallet_livemode or fund.fee_pool_id is None or customer_id is None \
                or fund.wallet_account_id in wallets:
            left.append(sub)  # no wallet, test money, a second membership of this wallet: one by one
            continue
        wallets.add(fund.wallet_account_id)
        spends[sub.pk] = (sub, period, GroupSpend(
            key=sub.pk, buyer_id=sub.buyer_id, email=email, customer_id=customer_id, funds=fund,
            lines=[membership_line(period.price)], context={"membership": ("renewal", period)},
        ))
    if not spends:
        return 0, left, None
    claimed = _claims_insert([(sub, period) for sub, period, _ in spends.values()], now=now)
    left += [sub for key, (sub, _, _) in spends.items() if key not in claimed]

    def subscriptions_move(paid: list[GroupSpend]) -> set[str]:
        moved = _subscriptions_move([spends[s.key][:2] for s in paid], now=now)
        return {s.key for s in paid} - moved

    def periods_paid(paid) -> list[EventRow]:
        return _periods_paid([(*spends[spend.key][:2], claimed[spend.key], order) for spend, order in paid], now=now)

    spent = orders_spend_group(
        store_id=store_id, currency=currency, spends=[spends[key][2] for key in claimed], read=group_read(store_id=store_id),
        kind=ProductKind.MEMBERSHIP, fulfil=periods_paid, after_debit=subscriptions_move,
    )
    unpaid = spent.refused + spent.dropped
    if unpaid:
        # Their claims go, in this transaction: the one-by-one path claims again from a fresh read
        # and declines to the card or dunning (an empty wallet), or ends or pauses (a change).
        SubscriptionPeriod.objects.filter(pk__in=[claimed[s.key] for s in unpaid]).delete()
        left += [spends[s.key][0] for s in unpaid]
    return len(spent.paid), left, spent.balance_taken_at


def _adapter():
    """The database's form of a datetime, remembered for a group: members share their periods' bounds."""
    return functools.lru_cache(maxsize=1024)(connection.ops.adapt_datetimefield_value)


def _claims_insert(members: list[tuple[DueSubscription, NextPeriod]], *, now: datetime) -> dict[str, int]:
    """Insert the periods' rows as this worker's claims, in one statement that does nothing for a
    row that exists (another worker's claim waits for it to commit, then does nothing). Returns
    subscription id → the period row's id, for the claims made."""
    table, ops = SubscriptionPeriod._meta.db_table, connection.ops
    adapt = _adapter()
    stamp = adapt(now)
    rows = [[sub.pk, period.number, adapt(period.start), adapt(period.end), period.price.pk, period.price.amount,
             period.price.currency] for sub, period in members]
    claims, params = rows_table("c", (
        ("subscription_id", "text"), ("number", "integer"), ("period_start", "timestamptz"),
        ("period_end", "timestamptz"), ("price_id", "text"), ("amount", "bigint"), ("currency", "text"),
    ), rows)
    with connection.cursor() as cursor:
        # ``WHERE true``: SQLite reads ``ON CONFLICT`` after a bare FROM as a join's ON.
        cursor.execute(
            f"INSERT INTO {table} (subscription_id, number, start, {ops.quote_name('end')}, price_id, amount, currency, "
            "status, paid_with, attempts, failure_message, created_at, updated_at) "
            "SELECT c.subscription_id, c.number, c.period_start, c.period_end, c.price_id, c.amount, c.currency, "
            f"%s, %s, 1, '', %s, %s FROM {claims} WHERE true "
            "ON CONFLICT (subscription_id, number) DO NOTHING RETURNING subscription_id, id",
            [PeriodStatus.CHARGING, PaidWith.NONE, stamp, stamp, *params],
        )
        return dict(cursor.fetchall())


def _subscriptions_move(members: list[tuple[DueSubscription, NextPeriod]], *, now: datetime) -> set[str]:
    """Move the subscriptions into their paid periods (``services.renewal_paid``'s changes, for a
    group) by one UPDATE guarded on the ``updated_at`` each was read with. Returns the ids moved:
    one missing changed since the read (a cancellation, a pause, a new card)."""
    adapt = _adapter()
    rows, params = [], []
    for sub, period in members:
        price = period.price
        restarted = price.interval != sub.price.interval or period.start != sub.current_period_end
        anchor_at, anchor_offset = (period.start, period.number) if restarted else (sub.anchor_at, sub.anchor_offset)
        rows.append("(%s, %s, %s, %s, %s, %s, %s, %s, %s)")
        params += [sub.pk, adapt(sub.updated_at), price.pk, price.tier_id, period.number, adapt(period.start),
                   adapt(period.end), adapt(anchor_at), anchor_offset]
    # Not as arrays (rows_table), unlike the group's other statements: so written, the updated_at
    # guard let a member who had changed since the read through on PostgreSQL in the full suite
    # (not alone); not understood yet, so this statement stays as it was.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Subscription._meta.db_table} AS s SET price_id = v.column3, tier_id = v.column4, pending_price_id = NULL, "
            "period_number = v.column5, current_period_start = v.column6, current_period_end = v.column7, "
            "anchor_at = v.column8, anchor_offset = v.column9, status = %s, past_due_since = NULL, retries = 0, "
            f"next_retry_at = NULL, updated_at = %s FROM (VALUES {', '.join(rows)}) AS v "
            "WHERE s.id = v.column1 AND s.updated_at = v.column2 RETURNING id",
            [SubscriptionStatus.ACTIVE, adapt(now), *params],
        )
        return {row[0] for row in cursor.fetchall()}


def _subscription_moved(sub: DueSubscription, period: NextPeriod, *, now: datetime) -> None:
    """The streamed object as ``_subscriptions_move`` left its row (for its event)."""
    price = period.price
    if price.interval != sub.price.interval or period.start != sub.current_period_end:
        sub.anchor_at, sub.anchor_offset = period.start, period.number
    sub.price, sub.price_id, sub.tier_id = price, price.pk, price.tier_id
    sub.pending_price, sub.pending_price_id = None, None
    sub.period_number, sub.current_period_start, sub.current_period_end = period.number, period.start, period.end
    sub.status, sub.next_retry_at, sub.updated_at = SubscriptionStatus.ACTIVE, None, now


def _periods_paid(members: list[tuple[DueSubscription, NextPeriod, int, Order]], *, now: datetime) -> list[EventRow]:
    """The group's fulfilment (``orders_spend_group``'s ``fulfil``): each claimed period is paid by
    its order, in one UPDATE. Returns the subscription.renewed events."""
    ops = connection.ops
    paid, params = rows_table("v", (
        ("period_id", "bigint"), ("order_id", "text"), ("payment_id", "text"), ("amount", "bigint"),
    ), [[period_id, order.pk, order.payment_id, order.amount_total] for _, _, period_id, order in members])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {SubscriptionPeriod._meta.db_table} AS p SET status = %s, order_id = v.order_id, payment_id = v.payment_id, "
            f"paid_with = %s, amount = v.amount, failure_message = '', updated_at = %s FROM {paid} WHERE p.id = v.period_id",
            [PeriodStatus.PAID, PaidWith.WALLET, ops.adapt_datetimefield_value(now), *params],
        )
    events = []
    for sub, period, _, _ in members:
        _subscription_moved(sub, period, now=now)
        events.append(EventRow("subscription.renewed", subscription_out(sub)))
    return events


@dataclass(frozen=True)
class NextPeriod:
    number: int
    start: datetime
    end: datetime
    price: TierPrice


def next_period(sub: Subscription | DueSubscription) -> NextPeriod:
    """The period after the current one, at the price that applies then (a downgrade's)."""
    price = sub.pending_price or sub.price
    number = sub.period_number + 1
    start = sub.current_period_end
    if price.interval != sub.price.interval:
        end = billing.period_bound(start, price.interval, 1)
    else:
        end = billing.period_bound(sub.anchor_at, price.interval, number + 1 - sub.anchor_offset)
    return NextPeriod(number=number, start=start, end=end, price=price)


def subscription_renew(*, subscription_id: str, now: datetime | None = None) -> str:
    """Renew one subscription if it is due: end it (canceled, unpaid capped or complimentary
    membership), pause it, or charge the next period. Returns the outcome: ``renewed``,
    ``failed``, ``ended``, ``paused``, ``pending`` (a card charge not decided yet) or ``skipped``
    (not due, or another worker has it)."""
    now = now or timezone.now()
    sub = (
        Subscription.objects.select_related("price__product", "pending_price__product", "buyer", "saved_method", "store")
        .filter(pk=subscription_id).first()
    )
    if sub is None or sub.status == SubscriptionStatus.ENDED:
        return "skipped"
    if sub.status == SubscriptionStatus.PAST_DUE:
        if sub.next_retry_at is None or sub.next_retry_at > now:
            return "skipped"
        return _charge(sub, next_period(sub), now=now)
    if sub.current_period_end is None or sub.current_period_end > now:
        return "skipped"
    if sub.cancel_at_period_end or sub.pay_with == PaySource.NONE or sub.price is None:
        return _end(sub, now=now)
    if sub.pause_periods:
        return _pause(sub, next_period(sub), now=now)
    return _charge(sub, next_period(sub), now=now)


def _end(sub: Subscription, *, now: datetime, notify: bool = False) -> str:
    with transaction.atomic():
        ended = Subscription.objects.filter(pk=sub.pk, status=sub.status, period_number=sub.period_number).update(
            status=SubscriptionStatus.ENDED, ended_at=now, next_retry_at=None, updated_at=now,
        )
        if not ended:
            return "skipped"
        sub.status, sub.ended_at = SubscriptionStatus.ENDED, now
        subscription_events_record(sub, "subscription.ended")
        if notify:
            sub_id = sub.pk
            transaction.on_commit(lambda: notices.subscription_ended_notice(sub_id))
    return "ended"


def _pause(sub: Subscription, period: NextPeriod, *, now: datetime) -> str:
    with transaction.atomic():
        try:
            with transaction.atomic():
                SubscriptionPeriod.objects.create(
                    subscription=sub, number=period.number, start=period.start, end=period.end, price=period.price,
                    currency=period.price.currency, status=PeriodStatus.FREE, attempts=1,
                )
        except IntegrityError:
            return "skipped"
        Subscription.objects.filter(pk=sub.pk).update(
            status=SubscriptionStatus.PAUSED, period_number=period.number, current_period_start=period.start,
            current_period_end=period.end, pause_periods=sub.pause_periods - 1, updated_at=now,
        )
        sub.refresh_from_db()
        subscription_events_record(sub, "subscription.updated")
    return "paused"


def _claim(sub: Subscription, period: NextPeriod, *, now: datetime) -> SubscriptionPeriod | None:
    """Take the period's renewal for this worker (see billing): insert its row, or move a failed
    try of it (a dunning retry) or a stale claim back to charging. None: another worker has it,
    or it is paid. Call inside a transaction."""
    row = SubscriptionPeriod(
        subscription=sub, number=period.number, start=period.start, end=period.end, price=period.price,
        amount=period.price.amount, currency=period.price.currency, status=PeriodStatus.CHARGING, attempts=1,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
        return row
    except IntegrityError:
        pass
    existing = SubscriptionPeriod.objects.filter(subscription=sub, number=period.number).first()
    if existing is None:
        return None
    if existing.status == PeriodStatus.FAILED and sub.status == SubscriptionStatus.PAST_DUE:
        taken = SubscriptionPeriod.objects.filter(pk=existing.pk, status=PeriodStatus.FAILED, attempts=existing.attempts).update(
            status=PeriodStatus.CHARGING, attempts=existing.attempts + 1, price=period.price, amount=period.price.amount,
            updated_at=now,
        )
        existing.attempts += 1
    elif existing.status == PeriodStatus.CHARGING and existing.updated_at <= now - STALE_CLAIM:
        # Re-driven with the same attempt number, hence the same idempotency key: no second charge.
        taken = SubscriptionPeriod.objects.filter(pk=existing.pk, status=PeriodStatus.CHARGING, updated_at=existing.updated_at).update(
            updated_at=now,
        )
    else:
        return None
    if not taken:
        return None
    existing.status, existing.price = PeriodStatus.CHARGING, period.price
    return existing


def _charge(sub: Subscription, period: NextPeriod, *, now: datetime) -> str:
    """Wallet first (if the member pays from it), then the saved card (if they pay by card, or
    allowed it as the wallet's fallback)."""
    failure = ""
    if sub.pay_with == PaySource.WALLET and sub.buyer is not None:
        outcome, failure = _charge_wallet(sub, period, now=now)
        if outcome != "declined":
            return outcome
        if not (sub.card_fallback and sub.saved_method is not None):
            return _fail(sub, period, now=now, message=failure)
    elif sub.pay_with == PaySource.WALLET:
        return _fail(sub, period, now=now, message="There is no wallet to pay from.")
    if sub.saved_method is None or sub.saved_method.detached_at is not None:
        return _fail(sub, period, now=now, message=failure or "There is no saved card to charge.")
    return _charge_card(sub, period, now=now)


def _charge_wallet(sub: Subscription, period: NextPeriod, *, now: datetime) -> tuple[str, str]:
    """(outcome, why it was declined)."""
    price = period.price
    try:
        with transaction.atomic():
            row = _claim(sub, period, now=now)
            if row is None:
                return "skipped", ""
            read = spend_read(buyer=sub.buyer, store_id=sub.store_id, currency=price.currency)
            order_spend(
                store_id=sub.store_id, buyer=sub.buyer, method="wallet", currency=price.currency, lines=[membership_line(price)],
                read=read, context={"membership": ("renewal", row)},
            )
    except StallError as exc:  # an empty wallet, test money refused: rolled back, nothing moved
        return "declined", exc.message
    return "renewed", ""


def _charge_card(sub: Subscription, period: NextPeriod, *, now: datetime) -> str:
    with transaction.atomic():
        row = _claim(sub, period, now=now)
    if row is None:
        return "skipped"
    price = period.price

    def link(payment) -> None:
        SubscriptionPeriod.objects.filter(pk=row.pk).update(payment=payment)

    try:
        payment = payment_charge_saved(
            store=sub.store, saved=sub.saved_method, amount=price.amount, currency=price.currency,
            description=f"Membership renewal ({price.tier_id})", idempotency_key=f"{sub.pk}:{period.number}:{row.attempts}",
            product=price.product, before_start=link,
        )
    except StallError as exc:  # refused before any charge (card removed, test cards off, ...)
        return _fail(sub, period, now=now, message=exc.message)
    if payment.status == PaymentStatus.SUCCEEDED:
        return "renewed"
    if payment.status == PaymentStatus.FAILED:
        return _fail(sub, period, now=now, message=payment.failure_message or "The card was declined.")
    return "pending"


def _fail(sub: Subscription, period: NextPeriod, *, now: datetime, message: str) -> str:
    """Record a renewal that could not be paid and walk the dunning schedule (billing)."""
    first = sub.status != SubscriptionStatus.PAST_DUE
    with transaction.atomic():
        row, _ = SubscriptionPeriod.objects.get_or_create(
            subscription=sub, number=period.number,
            defaults={"start": period.start, "end": period.end, "price": period.price, "amount": period.price.amount,
                      "currency": period.price.currency, "status": PeriodStatus.FAILED, "attempts": 1},
        )
        attempts = 1 if first else sub.retries + 2
        SubscriptionPeriod.objects.filter(pk=row.pk).exclude(status=PeriodStatus.PAID).update(
            status=PeriodStatus.FAILED, failure_message=message[:255], attempts=attempts, updated_at=now,
        )
        if first:
            since, retries = now, 0
        else:
            since, retries = sub.past_due_since, sub.retries + 1
        retry = billing.retry_at(since, retries)
        if retry is None:
            sub.status = SubscriptionStatus.PAST_DUE
            Subscription.objects.filter(pk=sub.pk).update(retries=retries)
            return _end(sub, now=now, notify=True) and "ended"
        Subscription.objects.filter(pk=sub.pk).update(
            status=SubscriptionStatus.PAST_DUE, past_due_since=since, retries=retries, next_retry_at=retry, updated_at=now,
        )
        sub.status, sub.past_due_since, sub.retries, sub.next_retry_at = SubscriptionStatus.PAST_DUE, since, retries, retry
        if first:
            subscription_events_record(sub, "subscription.past_due")
        sub_id = sub.pk
        transaction.on_commit(lambda: notices.renewal_failed_notice(sub_id, message[:255]))
    return "failed"
