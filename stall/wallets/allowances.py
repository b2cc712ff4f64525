"""Allowances and the charges a store makes against them.

An allowance is a buyer's standing permission for one store to take up to ``amount`` a period
from their wallet with no click: in-game purchases, pay-per-call APIs, per-post billing. A buyer
has at most one live allowance per store and currency; granting again replaces it.

Periods are calendar periods in UTC: a day runs from 00:00 UTC, a week from Monday 00:00 UTC, a
month from the 1st at 00:00 UTC. What a period has used is the sum of the store's charges to
this buyer since the period began, less what was refunded of them, counting the charges made
under an allowance this one replaced: raising a daily limit at noon does not restore the
morning's spending. The sums are kept as running totals (``ChargeTally``), one row per store,
buyer and currency, so a charge costs the same whether it is the day's first or its 5,000th.

A charge pays through the wallet rail like a one-click purchase (a checkout for the store's
"API charges" product, paid from the wallet) and everything happens in one transaction: the
allowance row is locked by the first read, the charge is added to the totals by a statement
that refuses it when the period has no room left (it reads the totals as they are, whatever the
first read saw), and any refusal rolls back with no money moved. Two charges against one
allowance therefore never both take the last of its room.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, gettext_noop

from stall.accounts.models import Buyer, Customer
from stall.catalog.models import PriceType, Product, ProductKind, ProductStatus
from stall.core.errors import Conflict, InvalidRequest, NotFound, PaymentError, PermissionDenied
from stall.core.ids import new_id
from stall.core.money import amount_validate, currency_normalize, format_money
from stall.integrations.webhooks import EventRow
from stall.orders.services import customer_for_email
from stall.orders.spend import BuyerFrom, SpendLine, order_spend, spend_read
from stall.stores.models import Store

from .errors import WalletEmpty
from .models import Allowance, AllowancePeriod, Charge, ChargeTally
from .schemas import charge_out
from .selectors import wallet_get

DESCRIPTION_MAX = 120  # a charge's description names its order line, which holds 120 characters
CHARGE_PRODUCT_NAME = "API charges"


# --- Errors ---------------------------------------------------------------------------------


class AllowanceInvalid(InvalidRequest):
    code = "invalid_allowance"


class AllowanceNotFound(NotFound):
    default_message = gettext_noop("No such allowance.")


class AllowanceConflict(Conflict):
    code = "allowance_conflict"
    default_message = gettext_noop("Another change to this allowance happened at the same time. Try again.")


class AllowanceMissing(PermissionDenied):
    code = "allowance_missing"
    default_message = "This customer has not allowed your store to charge their wallet."


class AllowanceRevoked(PermissionDenied):
    code = "allowance_revoked"
    default_message = "This customer revoked your store's allowance."


class AllowanceExpired(PermissionDenied):
    code = "allowance_expired"
    default_message = "This customer's allowance for your store has expired."


class AllowanceExceeded(PaymentError):
    code = "allowance_exceeded"
    default_message = "This charge is more than what is left of the customer's allowance this period."


class ChargeCurrencyMismatch(InvalidRequest):
    code = "currency_mismatch"


class ChargeNotFound(NotFound):
    default_message = "No such charge."


class CustomerNotFound(NotFound):
    default_message = "No such customer."


# --- Periods --------------------------------------------------------------------------------


def period_bounds(*, period: str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar period (UTC) holding ``now``: [start, end)."""
    now = now.astimezone(dt_timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == AllowancePeriod.DAY:
        return midnight, midnight + timedelta(days=1)
    if period == AllowancePeriod.WEEK:
        start = midnight - timedelta(days=now.weekday())  # Monday is 0
        return start, start + timedelta(days=7)
    if period == AllowancePeriod.MONTH:
        start = midnight.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end
    raise ValueError(f"unknown period {period!r}")


_TALLY_PERIODS = (AllowancePeriod.DAY, AllowancePeriod.WEEK, AllowancePeriod.MONTH)


def period_starts(now: datetime) -> tuple[date, date, date]:
    """The first days of the day, week and month (UTC) holding ``now``: a ChargeTally's starts."""
    return tuple(period_bounds(period=period, now=now)[0].date() for period in _TALLY_PERIODS)


def _tally_used(*, starts_amounts: tuple, period: str, now: datetime) -> int:
    """What a period has used, from a tally's (start, amount) pairs in _TALLY_PERIODS order: its
    amount if it counts the current period, else nothing yet."""
    start, amount = starts_amounts[_TALLY_PERIODS.index(period)]
    if start is None:
        return 0
    if isinstance(start, str):  # SQLite gives back the text Django stored
        start = date.fromisoformat(start)
    return int(amount) if start >= period_bounds(period=period, now=now)[0].date() else 0


def _used_now(*, store_id: str, buyer_id: str, currency: str, period: str, now: datetime) -> int:
    try:  # one row at most: the table's unique key
        tally = ChargeTally.objects.get(store_id=store_id, buyer_id=buyer_id, currency=currency)
    except ChargeTally.DoesNotExist:
        return 0
    return _tally_used(starts_amounts=(
        (tally.day_start, tally.day_amount), (tally.week_start, tally.week_amount),
        (tally.month_start, tally.month_amount),
    ), period=period, now=now)


def allowance_used(*, allowance: Allowance, now: datetime | None = None) -> int:
    """What the store has charged this buyer in the current period, less refunds (minor units).

    Counts every charge of the store to the buyer in the allowance's currency since the period
    began, including charges under an allowance this one replaced.
    """
    return _used_now(
        store_id=allowance.store_id, buyer_id=allowance.buyer_id, currency=allowance.currency,
        period=allowance.period, now=now or timezone.now(),
    )


def allowance_is_expired(*, allowance: Allowance, now: datetime | None = None) -> bool:
    return allowance.expires_at is not None and allowance.expires_at <= (now or timezone.now())


@dataclass(frozen=True)
class AllowanceUsage:
    allowance: Allowance
    used: int
    remaining: int
    period_start: datetime
    period_end: datetime
    expired: bool

    @property
    def live(self) -> bool:
        return self.allowance.revoked_at is None and not self.expired


def allowance_usage(*, allowance: Allowance, now: datetime | None = None) -> AllowanceUsage:
    now = now or timezone.now()
    start, end = period_bounds(period=allowance.period, now=now)
    used = allowance_used(allowance=allowance, now=now)
    return AllowanceUsage(
        allowance=allowance, used=used, remaining=max(0, allowance.amount - used), period_start=start,
        period_end=end, expired=allowance_is_expired(allowance=allowance, now=now),
    )


# --- Granting and revoking ------------------------------------------------------------------


@transaction.atomic
def allowance_grant(
    *, buyer: Buyer, store: Store, amount: int, period: str, expires_at: datetime | None = None
) -> Allowance:
    """Let ``store`` charge the buyer's wallet up to ``amount`` (store currency) a ``period``.

    A live allowance for the same store and currency is revoked in this transaction and replaced.
    The store gets a customer (``cus_…``) for the buyer, the id it charges through the API.
    """
    amount_validate(amount, allow_zero=False)
    if period not in AllowancePeriod.values:
        raise AllowanceInvalid(
            gettext("Period must be one of: %(periods)s.") % {"periods": ", ".join(AllowancePeriod.values)}, param="period"
        )
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise AllowanceInvalid(gettext_noop("The end date must be in the future."), param="expires_at")
    currency = store.currency
    # The UPDATE locks the live row: a charge under way against it finishes first, none starts after.
    Allowance.objects.filter(buyer=buyer, store=store, currency=currency, revoked_at__isnull=True).update(revoked_at=now)
    try:
        with transaction.atomic():
            allowance = Allowance.objects.create(
                buyer=buyer, store=store, currency=currency, amount=amount, period=period, expires_at=expires_at
            )
    except IntegrityError:  # a grant for the same store committed between our update and insert
        raise AllowanceConflict() from None
    customer_for_email(store_id=store.pk, email=buyer.email)
    return allowance


@transaction.atomic
def allowance_revoke(*, buyer: Buyer, allowance_id: str) -> Allowance:
    """Stop a store charging the buyer's wallet. Revoking twice is the same as once.

    The row lock waits for a charge under way against this allowance to finish; none starts after.
    """
    allowance = Allowance.objects.select_for_update().filter(buyer=buyer, pk=allowance_id).first()
    if allowance is None:
        raise AllowanceNotFound()
    if allowance.revoked_at is None:
        allowance.revoked_at = timezone.now()
        allowance.save(update_fields=["revoked_at"])
    return allowance


# --- Reads ----------------------------------------------------------------------------------


def allowances_for_buyer(*, buyer: Buyer) -> QuerySet[Allowance]:
    """The buyer's allowances, live ones first, then newest first."""
    return (
        Allowance.objects.filter(buyer=buyer).select_related("store")
        .order_by(F("revoked_at").desc(nulls_first=True), "-pk")
    )


def allowance_live_get(*, buyer: Buyer, store: Store) -> Allowance | None:
    """The buyer's unrevoked allowance for ``store`` in its currency (it may have expired)."""
    return Allowance.objects.filter(buyer=buyer, store=store, currency=store.currency, revoked_at__isnull=True).first()


def customer_get(*, store: Store, customer_id: str) -> Customer:
    """A customer of ``store``; another store's customer is "not found"."""
    customer = Customer.objects.filter(store=store, pk=customer_id).first()
    if customer is None:
        raise CustomerNotFound()
    return customer


def customers_for_store(*, store: Store) -> QuerySet[Customer]:
    return Customer.objects.filter(store=store).order_by("-pk")


def _buyer_for_customer(customer: Customer) -> Buyer | None:
    return Buyer.objects.filter(email=customer.email.strip().lower()).first()


def _allowance_refusal(*, buyer: Buyer | None, store: Store, currency: str):
    """Why there is no live allowance: revoked (the latest one was), or missing."""
    if buyer is not None and Allowance.objects.filter(buyer=buyer, store=store, currency=currency).exists():
        return AllowanceRevoked()
    return AllowanceMissing()


@dataclass(frozen=True)
class CustomerWallet:
    customer: Customer
    currency: str
    balance: int
    usage: AllowanceUsage


def customer_wallet_get(*, store: Store, customer_id: str) -> CustomerWallet:
    """A customer's wallet balance and allowance, for a store the customer allowed to charge them.

    Without a live allowance the store learns nothing of the wallet: AllowanceMissing,
    AllowanceRevoked or AllowanceExpired.
    """
    customer = customer_get(store=store, customer_id=customer_id)
    buyer = _buyer_for_customer(customer)
    allowance = allowance_live_get(buyer=buyer, store=store) if buyer is not None else None
    if allowance is None:
        raise _allowance_refusal(buyer=buyer, store=store, currency=store.currency)
    usage = allowance_usage(allowance=allowance)
    if usage.expired:
        raise AllowanceExpired()
    wallet = wallet_get(buyer=buyer, currency=allowance.currency)
    return CustomerWallet(
        customer=customer, currency=allowance.currency, balance=wallet.account.balance if wallet else 0, usage=usage
    )


def charges_for_store(*, store: Store) -> QuerySet[Charge]:
    return Charge.objects.filter(store=store).select_related("order").order_by("-pk")


def charge_get(*, store: Store, charge_id: str) -> Charge:
    """A charge of ``store``; another store's charge is "not found", never "forbidden"."""
    charge = Charge.objects.filter(store=store, pk=charge_id).select_related("order").first()
    if charge is None:
        raise ChargeNotFound()
    return charge


# --- Charging -------------------------------------------------------------------------------


def _description_clean(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidRequest("Description must be text.", param="description")
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidRequest(f"Description can be at most {DESCRIPTION_MAX} characters.", param="description")
    if "\x00" in description:
        raise InvalidRequest("Description cannot contain NUL characters.", param="description")
    return description


@transaction.atomic
def charge_product_for(*, store: Store) -> Product:
    """The store's product that API charges are sold as, created on first use."""
    product = Product.objects.filter(store=store, kind=ProductKind.CHARGE).order_by("pk").first()
    if product is not None:
        return product
    # Two first charges of one store racing: the store row makes the second wait and find the first's.
    Store.objects.select_for_update().filter(pk=store.pk).first()
    product = Product.objects.filter(store=store, kind=ProductKind.CHARGE).order_by("pk").first()
    if product is not None:
        return product
    slug = "api-charges"
    if Product.objects.filter(store=store, slug=slug).exists():
        slug = new_id("api-charges").replace("_", "-")
    return Product.objects.create(
        store=store, kind=ProductKind.CHARGE, name=CHARGE_PRODUCT_NAME, slug=slug, price_type=PriceType.PAY_WHAT_YOU_WANT,
        amount=1, currency=store.currency, status=ProductStatus.PUBLISHED, download_limit=settings.STALL_DOWNLOAD_LIMIT,
    )


# What a charge reads before it moves money, with the buyer's funds in the spend's one SELECT
# (orders.spend.BuyerFrom): from the store's customer to their buyer account and the live
# allowance; whether any allowance ever was (to tell "revoked" from "missing"); the store's charge
# product; an earlier charge with the same Idempotency-Key; and the buyer's ChargeTally.
_CHARGE_TABLES = (
    "audience_customer cu {join} accounts_buyer b ON b.email = LOWER(cu.email) "
    "{join} wallets_allowance a ON a.buyer_id = b.id AND a.store_id = %s AND a.currency = %s "
    "AND a.revoked_at IS NULL "
    "LEFT JOIN wallets_chargetally g ON g.buyer_id = b.id AND g.store_id = %s AND g.currency = %s"
)
_CHARGE_COLUMNS = (
    "a.id, a.amount, a.period, a.expires_at, "
    "(SELECT MAX(x.id) FROM wallets_allowance x WHERE x.buyer_id = b.id AND x.store_id = %s AND x.currency = %s), "
    "(SELECT MIN(p.id) FROM catalog_product p WHERE p.store_id = %s AND p.kind = 'charge'), "
    "(SELECT MAX(ch.id) FROM wallets_charge ch WHERE ch.store_id = %s AND ch.idempotency_key = %s), "
    "(SELECT MAX(ch.request_hash) FROM wallets_charge ch WHERE ch.store_id = %s AND ch.idempotency_key = %s), "
    "g.day_start, g.day_amount, g.week_start, g.week_amount, g.month_start, g.month_amount"
)

# The charge, added to its buyer's totals: a period that has moved on starts again from this
# charge. For the allowance's period, only if the charge fits what the period has left: the
# conflicting row is locked and read as it is now (on PostgreSQL, a charge that waited for the
# allowance's lock read the totals as they were before the charge it waited for), and a refused
# charge returns no row. Columns are named for a period from _TALLY_PERIODS, never from input.
_TALLY_ADD = """
INSERT INTO wallets_chargetally AS t
  (buyer_id, store_id, currency, day_start, day_amount, week_start, week_amount, month_start, month_amount)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (buyer_id, store_id, currency) DO UPDATE SET
{sets}
WHERE (CASE WHEN t.{period}_start < excluded.{period}_start THEN 0 ELSE t.{period}_amount END)
  + excluded.{period}_amount <= %s
RETURNING id
"""
_TALLY_SET = (
    "  {p}_amount = CASE WHEN t.{p}_start = excluded.{p}_start THEN t.{p}_amount + excluded.{p}_amount "
    "WHEN t.{p}_start < excluded.{p}_start THEN excluded.{p}_amount ELSE t.{p}_amount END,\n"
    "  {p}_start = CASE WHEN t.{p}_start < excluded.{p}_start THEN excluded.{p}_start ELSE t.{p}_start END"
)
_TALLY_ADD_SQL = {
    period: _TALLY_ADD.format(period=period, sets=",\n".join(_TALLY_SET.format(p=p) for p in _TALLY_PERIODS))
    for period in _TALLY_PERIODS
}


def _tally_add(*, store_id: str, buyer_id: str, currency: str, amount: int, now: datetime, period: str,
               limit: int) -> bool:
    """Count a charge in its buyer's totals; False, with nothing counted, when ``period`` would
    go over ``limit``."""
    starts = [connection.ops.adapt_datefield_value(start) for start in period_starts(now)]
    with connection.cursor() as cursor:
        cursor.execute(_TALLY_ADD_SQL[period], [
            buyer_id, store_id, currency, starts[0], amount, starts[1], amount, starts[2], amount, limit,
        ])
        return cursor.fetchone() is not None


def charge_order_refunded(*, order, refund, refunded_before) -> None:
    """A refund of a charge's order takes its amount off the buyer's totals in each period that
    still counts the charge (registered with orders.refunds; runs in the refund's transaction)."""
    charge = (
        Charge.objects.filter(order_id=order.pk)
        .values_list("store_id", "allowance__buyer_id", "currency", "created_at").first()
    )
    if charge is None:
        return
    store_id, buyer_id, currency, created_at = charge
    day, week, month = period_starts(created_at)

    def less(period: str, start: date):
        return F(f"{period}_amount") - Case(When(**{f"{period}_start": start}, then=Value(refund.amount)), default=Value(0))

    ChargeTally.objects.filter(store_id=store_id, buyer_id=buyer_id, currency=currency).update(
        day_amount=less("day", day), week_amount=less("week", week), month_amount=less("month", month),
    )


def _charge_replay(*, store: Store, charge_id: str, stored_hash: str, request_hash: str) -> Charge:
    if stored_hash != request_hash:
        raise Conflict("This idempotency key was used with a different charge.", param="idempotency_key",
                       code="idempotency_key_reused")
    return Charge.objects.select_related("order").get(store=store, pk=charge_id)


def _as_datetime(value):
    if isinstance(value, str):  # SQLite gives back the text Django stored, in UTC
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


def charge_create(
    *, store: Store, customer_id: str, amount: int, currency: str, description: str = "",
    idempotency_key: str | None = None,
) -> Charge:
    """Charge a customer's wallet against the allowance they gave ``store``; no click.

    Refused, with nothing moved: a bad amount (invalid_amount), another currency than the store's
    (currency_mismatch), an unknown customer (resource_missing), no allowance (allowance_missing),
    a revoked one (allowance_revoked), an expired one (allowance_expired), more than the period
    has left (allowance_exceeded), more than the wallet holds (insufficient_funds). With an
    ``idempotency_key``, a repeat of the same charge returns the first one and charges once.
    """
    amount_validate(amount, allow_zero=False)
    currency = currency_normalize(currency)
    if currency != store.currency:
        raise ChargeCurrencyMismatch(f"This store charges in {store.currency}.", param="currency")
    description = _description_clean(description)
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > 255):
        raise InvalidRequest("The idempotency key must be 1 to 255 characters.", param="idempotency_key")
    request_hash = hashlib.sha256(json.dumps([customer_id, amount, currency, description]).encode()).hexdigest()
    try:
        return _charge_create(
            store=store, customer_id=customer_id, amount=amount, currency=currency, description=description,
            idempotency_key=idempotency_key, request_hash=request_hash,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # The same key, charged by a request that committed while this one ran: its charge.
        earlier = Charge.objects.filter(store=store, idempotency_key=idempotency_key).first()
        if earlier is None:
            raise
        return _charge_replay(store=store, charge_id=earlier.pk, stored_hash=earlier.request_hash, request_hash=request_hash)


def _charge_read(*, store: Store, customer_id: str, currency: str, key: str, locked: bool):
    join = "JOIN" if locked else "LEFT JOIN"
    return spend_read(
        store_id=store.pk, currency=currency, extra_columns=_CHARGE_COLUMNS,
        extra_params=[store.pk, currency, store.pk, store.pk, key, store.pk, key],
        buyer_from=BuyerFrom(
            tables=_CHARGE_TABLES.format(join=join), params=[store.pk, currency, store.pk, currency],
            where="cu.id = %s AND cu.store_id = %s", where_params=[customer_id, store.pk],
            lock="FOR UPDATE OF a" if locked else "",
        ),
    )


def _charge_create(
    *, store: Store, customer_id: str, amount: int, currency: str, description: str, idempotency_key: str | None,
    request_hash: str,
) -> Charge:
    with transaction.atomic():
        key = idempotency_key or ""
        customer_id = customer_id if isinstance(customer_id, str) else ""
        # With a live allowance, on PostgreSQL, the read locks it until the charge commits: charges
        # of one allowance then run one after the other, and a revoke waits for the charge under
        # way (SQLite's IMMEDIATE transaction gives the same order). With none, the same read
        # without the lock says why (an outer join cannot be locked).
        postgresql = connection.vendor == "postgresql"
        read = _charge_read(store=store, customer_id=customer_id, currency=currency, key=key, locked=postgresql)
        if read is None and postgresql:
            read = _charge_read(store=store, customer_id=customer_id, currency=currency, key=key, locked=False)
        if read is None:
            raise CustomerNotFound(param="customer")
        (allowance_id, allowance_amount, period, expires_at, any_allowance, product_id, earlier_id, earlier_hash,
         *tally) = read.extra[0]
        if idempotency_key is not None and earlier_id is not None:
            return _charge_replay(store=store, charge_id=earlier_id, stored_hash=earlier_hash, request_hash=request_hash)
        if allowance_id is None:
            raise AllowanceRevoked() if any_allowance is not None else AllowanceMissing()
        now = timezone.now()
        expires_at = _as_datetime(expires_at)
        if expires_at is not None and expires_at <= now:
            raise AllowanceExpired()
        buyer = read.buyer

        def exceeded(used: int) -> AllowanceExceeded:
            left = format_money(max(0, allowance_amount - used), currency)
            return AllowanceExceeded(
                f"This charge is more than the {left} left of the customer's allowance this {period}.", param="amount",
            )

        # Refused here on what the read saw, in the common case; _tally_add refuses what it missed.
        used = _tally_used(starts_amounts=tuple(zip(tally[::2], tally[1::2])), period=period, now=now)
        if amount > allowance_amount - used:
            raise exceeded(used)

        if product_id is None:
            product_id = charge_product_for(store=store).pk
        line = SpendLine(
            product_id=product_id, name=description or CHARGE_PRODUCT_NAME, unit_amount=amount, kind=ProductKind.CHARGE,
            download_limit=settings.STALL_DOWNLOAD_LIMIT,
        )
        made = {}

        def charge_row(order) -> list[EventRow]:
            charge = Charge(
                id=new_id("ch"), store_id=store.pk, allowance_id=allowance_id, order=order, amount=amount,
                currency=currency, description=description, idempotency_key=idempotency_key, request_hash=request_hash,
                created_at=now,
            )
            charge.save(force_insert=True)
            if not _tally_add(store_id=store.pk, buyer_id=buyer.pk, currency=currency, amount=amount, now=now,
                              period=period, limit=allowance_amount):
                raise exceeded(_used_now(store_id=store.pk, buyer_id=buyer.pk, currency=currency, period=period, now=now))
            made["charge"] = charge
            return [EventRow("charge.succeeded", charge_out(charge))]

        try:
            order_spend(
                store_id=store.pk, buyer=buyer, method="wallet", currency=currency, lines=[line], read=read,
                after_order=charge_row,
            )
        except WalletEmpty:
            # The buyer's own wording says "top it up"; the store gets one meant for it.
            raise WalletEmpty("The customer's wallet does not hold enough for this charge.", param="amount") from None
    return made["charge"]
