"""Renewals and dunning, by the rules written down in ``billing``: the periodic task's work.

``renewals_run`` streams the due subscriptions; ``subscription_renew`` renews one: it ends,
pauses or charges it, claiming the next period's row first so that it happens once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from stall.core.errors import StallError
from stall.orders.spend import order_spend, spend_read
from stall.payments.models import PaymentStatus
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
from .services import RenewalStale, membership_line, subscription_events_record

logger = logging.getLogger(__name__)

# A card renewal left "charging" this long (the worker died between the claim and the charge) is
# driven again by the next run, with the same idempotency key: the charge is made once.
STALE_CLAIM = timedelta(minutes=10)
DUE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAUSED)


def subscriptions_due(*, now: datetime, batch: int = billing.BATCH):
    """The due subscriptions, with their prices and buyers, read ``batch`` at a time by primary key
    (keyset pagination: memory flat in their number, no OFFSET growing with it)."""
    due = Q(status__in=DUE_STATUSES, current_period_end__lte=now) | Q(
        status=SubscriptionStatus.PAST_DUE, next_retry_at__lte=now
    )
    rows = Subscription.objects.select_related("price__product", "pending_price__product", "buyer")
    last = ""
    while True:
        subs = list(rows.filter(due, pk__gt=last).order_by("pk")[:batch])
        if not subs:
            return
        yield from subs
        last = subs[-1].pk


def renewals_run(*, now: datetime | None = None) -> dict[str, int]:
    """Renew every due subscription; returns counts by outcome. A plain wallet renewal is made
    from the streamed row (``_wallet_renew``); anything else, or a wallet renewal that could not
    be made that way, by ``subscription_renew`` from a fresh read."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for sub in subscriptions_due(now=now):
        try:
            outcome = _wallet_renew(sub, now=now) or subscription_renew(subscription_id=sub.pk, now=now)
        except Exception:  # noqa: BLE001 - one member's failure must not stop the others' renewals
            logger.exception("renewal of %s failed", sub.pk)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _wallet_renew(sub: Subscription, *, now: datetime) -> str | None:
    """The common renewal, made from the row the task streamed: an active member paying from the
    wallet, not cancelling nor pausing. One transaction: the claim (an INSERT that does nothing if
    the period's row exists), the lean spend, and the subscription moved on by an UPDATE guarded
    on the row read (``services.renewal_paid``). None, with nothing written, when it cannot be made
    that way — the period's row exists (another worker, a stale card claim), the wallet cannot pay,
    the subscription changed since it was read — and ``subscription_renew`` decides from a fresh read."""
    if not (
        sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and sub.pay_with == PaySource.WALLET
        and sub.buyer is not None and sub.price is not None and not sub.cancel_at_period_end and not sub.pause_periods
        and sub.current_period_end is not None and sub.current_period_end <= now
    ):
        return None
    period = next_period(sub)
    price = period.price
    try:
        with transaction.atomic():
            row = _claim_insert(sub, period, now=now)
            if row is None:
                return None
            read = spend_read(buyer=sub.buyer, store_id=sub.store_id, currency=price.currency)
            order_spend(
                store_id=sub.store_id, buyer=sub.buyer, method="wallet", currency=price.currency, lines=[membership_line(price)],
                read=read, context={"membership": ("renewal", row), "subscription": sub},
            )
    except (StallError, RenewalStale):  # an empty wallet, test money refused, a changed row: rolled back
        return None
    return "renewed"


def _claim_insert(sub: Subscription, period: NextPeriod, *, now: datetime) -> SubscriptionPeriod | None:
    """Insert the period's row as this worker's claim, in one statement that does nothing when the
    row exists (no exception, so no savepoint). None: it exists. Call inside a transaction."""
    table, ops = SubscriptionPeriod._meta.db_table, connection.ops
    stamp = ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (subscription_id, number, start, {ops.quote_name('end')}, price_id, amount, currency, "
            "status, paid_with, attempts, failure_message, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (subscription_id, number) DO NOTHING RETURNING id",
            [sub.pk, period.number, ops.adapt_datetimefield_value(period.start), ops.adapt_datetimefield_value(period.end),
             period.price.pk, period.price.amount, period.price.currency, PeriodStatus.CHARGING, PaidWith.NONE, 1, "",
             stamp, stamp],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    return SubscriptionPeriod(
        id=found[0], subscription_id=sub.pk, number=period.number, start=period.start, end=period.end, price=period.price,
        amount=period.price.amount, currency=period.price.currency, status=PeriodStatus.CHARGING, attempts=1,
    )


@dataclass(frozen=True)
class NextPeriod:
    number: int
    start: datetime
    end: datetime
    price: TierPrice


def next_period(sub: Subscription) -> NextPeriod:
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
