"""Reads: meters, plans and subscriptions of a store, and usage aggregated in the database.

A meter's quantity over [start, end) is read from its hourly rollups (distinct values per day,
and per hour within a partial day, for unique_count) for the whole hours inside the range, and
from the events themselves — one range of the index (customer, name, timestamp), the property
read from the JSON by the database — for the partial hours at either end; no event is loaded into
Python (but the distinct values of an end's partial hour are, to key them as the rollups do).
See ``rollups``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, Max, QuerySet, Sum, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDate

from stall.accounts.models import Customer
from stall.stores.models import Store

from . import rollups
from .errors import CustomerNotFound, MeterNotFound, PlanNotFound, UsageSubscriptionNotFound
from .models import (
    Aggregation,
    Meter,
    MeteredPrice,
    Plan,
    UsageCharge,
    UsageDistinct,
    UsageDistinctHour,
    UsageEvent,
    UsageInvoice,
    UsageRollup,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .rating import ZERO, period_after, price_rate, round_half_up

_NUMBER = DecimalField(max_digits=30, decimal_places=6)


def meters_for_store(*, store: Store) -> QuerySet[Meter]:
    return Meter.objects.filter(store=store).order_by("-pk")


def meter_get(*, store: Store, meter_id: str) -> Meter:
    meter = Meter.objects.filter(store=store, pk=meter_id).first()
    if meter is None:
        raise MeterNotFound()
    return meter


def meter_by_key(*, store: Store, key: str) -> Meter:
    """A meter named by its id (``mtr_…``) or its key (``api_calls``)."""
    meter = Meter.objects.filter(store=store, key=key).first() or Meter.objects.filter(store=store, pk=key).first()
    if meter is None:
        raise MeterNotFound(param="meter")
    return meter


def plans_for_store(*, store: Store) -> QuerySet[Plan]:
    return Plan.objects.filter(store=store).prefetch_related("prices__meter").order_by("-pk")


def plan_get(*, store: Store, plan_id: str) -> Plan:
    plan = Plan.objects.filter(store=store, pk=plan_id).prefetch_related("prices__meter").first()
    if plan is None:
        raise PlanNotFound()
    return plan


def usage_subscriptions_for_store(*, store: Store) -> QuerySet[UsageSubscription]:
    return UsageSubscription.objects.filter(store=store).select_related("customer", "plan").order_by("-pk")


def usage_subscription_get(*, store: Store, subscription_id: str) -> UsageSubscription:
    sub = usage_subscriptions_for_store(store=store).filter(pk=subscription_id).first()
    if sub is None:
        raise UsageSubscriptionNotFound()
    return sub


def usage_subscription_for_customer(*, customer_id: str) -> UsageSubscription | None:
    return (
        UsageSubscription.objects.filter(customer_id=customer_id)
        .exclude(status=UsageSubscriptionStatus.CANCELED).select_related("plan").first()
    )


def usage_subscriptions_for_email(*, email: str) -> QuerySet[UsageSubscription]:
    """Every usage subscription of the customers with this email, in every store, newest first
    (the buyer's own page)."""
    return (
        UsageSubscription.objects.filter(customer__email__iexact=email)
        .select_related("store", "plan", "customer", "saved_method").order_by("-pk")
    )


def customer_get(*, store: Store, customer_id: str) -> Customer:
    customer = Customer.objects.filter(store=store, pk=customer_id).first() if isinstance(customer_id, str) else None
    if customer is None:
        raise CustomerNotFound(param="customer")
    return customer


def customers_for_store(*, store: Store) -> QuerySet[Customer]:
    return Customer.objects.filter(store=store).order_by("-pk")


def _events(*, meter: Meter, customer_id: str, start: datetime, end: datetime) -> QuerySet[UsageEvent]:
    # No store_id condition: a customer belongs to one store, and the index (customer, name,
    # timestamp) then answers a count alone, with no lookup of each event's row.
    qs = UsageEvent.objects.filter(customer_id=customer_id, name=meter.event_name, timestamp__gte=start, timestamp__lt=end)
    for key, wanted in (meter.filters or {}).items():
        lookup = f"properties__{key}__in" if isinstance(wanted, list) else f"properties__{key}"
        qs = qs.filter(**{lookup: wanted})
    return qs


def _value(meter: Meter):
    return Cast(KeyTextTransform(meter.property, "properties"), _NUMBER)


def _text(meter: Meter):
    return KeyTextTransform(meter.property, "properties")


def _as_decimal(value) -> Decimal:
    if value is None:
        return ZERO
    if isinstance(value, float):  # SQLite sums fractional JSON numbers as REAL
        return Decimal(repr(value))
    return Decimal(value)


def _raw(meter: Meter, customer_id: str, start: datetime, end: datetime):
    """The meter's aggregation over raw events in [start, end): a Decimal for count and sum, a
    Decimal or None (no event) for max, (timestamp, id, value) or None for latest."""
    qs = _events(meter=meter, customer_id=customer_id, start=start, end=end)
    agg = meter.aggregation
    if agg == Aggregation.COUNT:
        return Decimal(qs.count())
    if agg == Aggregation.SUM:
        return _as_decimal(qs.aggregate(q=Sum(_value(meter)))["q"])
    if agg == Aggregation.MAX:
        value = qs.aggregate(q=Max(_value(meter)))["q"]
        return None if value is None else _as_decimal(value)
    if agg == Aggregation.LATEST:
        latest = qs.exclude(**{f"properties__{meter.property}__isnull": True}).order_by("-timestamp", "-id")
        row = latest.annotate(v=_value(meter)).values_list("timestamp", "id", "v").first()
        return None if row is None else (row[0], row[1], _as_decimal(row[2]))
    raise ValueError(f"unknown aggregation {agg!r}")


def _json_of(prop: str):
    """The property's value as JSON text (the unique_count key is made from it in Python)."""
    if connection.vendor == "postgresql":
        return RawSQL("(properties -> %s)::text", [prop], output_field=TextField())
    return RawSQL("properties -> %s", [f'$."{prop}"'], output_field=TextField())


def _distinct_raw(meter: Meter, customer_id: str, start: datetime, end: datetime) -> set[str]:
    texts = (_events(meter=meter, customer_id=customer_id, start=start, end=end)
             .annotate(v=_json_of(meter.property)).order_by().values_list("v", flat=True).distinct())
    keys = (rollups.distinct_key(json.loads(text)) for text in texts if text is not None)
    return {key for key in keys if key is not None}


def _distinct_values(model, meter: Meter, customer_id: str, first: datetime, last: datetime):
    return (model.objects.filter(meter=meter, customer_id=customer_id, bucket__gte=first, bucket__lt=last)
            .order_by().values_list("value", flat=True).distinct())


def _unique_quantity(meter: Meter, customer_id: str, start: datetime, end: datetime) -> Decimal:
    """Distinct values: whole UTC days from the per-day table, the whole hours of a partial day at
    either end from the per-hour one, and the partial hours at either end from the events
    themselves — at most two hours of events, however the range is cut."""
    inner = rollups.inner_range(start, end, rollups.DAY)
    values: set[str] = set()
    if inner is None:
        edges = [(start, end)]
    else:
        first, last = inner
        days = _distinct_values(UsageDistinct, meter, customer_id, first, last)
        edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
        if not edges:  # COUNT(*) over SELECT DISTINCT: PostgreSQL hashes it, where COUNT(DISTINCT) sorts
            return Decimal(days.count())
        values.update(days)
    for a, b in edges:
        hours = rollups.inner_range(a, b, rollups.HOUR)
        if hours is None:
            values |= _distinct_raw(meter, customer_id, a, b)
            continue
        values.update(_distinct_values(UsageDistinctHour, meter, customer_id, *hours))
        for c, d in ((a, hours[0]), (hours[1], b)):
            if c < d:
                values |= _distinct_raw(meter, customer_id, c, d)
    return Decimal(len(values))


def meter_quantity(*, meter: Meter, customer_id: str, start: datetime, end: datetime) -> Decimal:
    """The meter's quantity for one customer over [start, end), computed by the database: the
    whole UTC hours from the meter's rollups, the partial hours at either end from the events
    themselves (see ``rollups``)."""
    agg = meter.aggregation
    if agg == Aggregation.UNIQUE_COUNT:
        return _unique_quantity(meter, customer_id, start, end)
    inner = rollups.inner_range(start, end, rollups.HOUR)
    if inner is None:
        part = _raw(meter, customer_id, start, end)
        if agg == Aggregation.LATEST:
            return ZERO if part is None else part[2]
        return ZERO if part is None else part
    first, last = inner
    hours = UsageRollup.objects.filter(meter=meter, customer_id=customer_id, bucket__gte=first, bucket__lt=last)
    head, tail = (start, first) if start < first else None, (last, end) if last < end else None
    if agg == Aggregation.LATEST:  # the newest part that has one: the tail, the hours, then the head
        if tail is not None and (found := _raw(meter, customer_id, *tail)) is not None:
            return found[2]
        latest = hours.filter(latest_at__isnull=False).order_by("-latest_at", "-latest_event")
        value = latest.values_list("latest", flat=True).first()
        if value is not None:
            return _as_decimal(value)
        found = _raw(meter, customer_id, *head) if head is not None else None
        return ZERO if found is None else found[2]
    if agg == Aggregation.MAX:
        parts = [_as_decimal(v) for v in [hours.aggregate(q=Max("peak"))["q"]] if v is not None]
    else:
        column = "count" if agg == Aggregation.COUNT else "total"
        parts = [_as_decimal(hours.aggregate(q=Sum(column))["q"])]
    for edge in (head, tail):
        if edge is not None and (part := _raw(meter, customer_id, *edge)) is not None:
            parts.append(part)
    if agg == Aggregation.MAX:
        return max(parts) if parts else ZERO
    return sum(parts, ZERO)


def meter_quantity_per_day(*, meter: Meter, customer_id: str, start: datetime, end: datetime) -> list[tuple[date, Decimal]]:
    """The meter's aggregation over each UTC day of [start, end) that has events, oldest first."""
    qs = _events(meter=meter, customer_id=customer_id, start=start, end=end).annotate(day=TruncDate("timestamp"))
    agg = meter.aggregation
    if agg == Aggregation.LATEST:
        days = {}
        rows = qs.exclude(**{f"properties__{meter.property}__isnull": True}).annotate(v=_value(meter))
        for day, value in rows.order_by("timestamp", "id").values_list("day", "v"):
            days[day] = _as_decimal(value)  # one row per event: fine for a chart of one customer's month
        return sorted(days.items())
    measure = {
        Aggregation.COUNT: Count("id"),
        Aggregation.SUM: Sum(_value(meter)),
        Aggregation.MAX: Max(_value(meter)),
        Aggregation.UNIQUE_COUNT: Count(_text(meter), distinct=True),
    }[agg]
    rows = qs.values("day").annotate(q=measure).order_by("day").values_list("day", "q")
    return [(day if isinstance(day, date) else date.fromisoformat(str(day)), _as_decimal(q)) for day, q in rows]


@dataclass(frozen=True)
class MeterUsage:
    meter: Meter
    quantity: Decimal
    price: MeteredPrice | None
    exact: Decimal  # the quantity's exact cost under the plan's price, minor units

    @property
    def amount(self) -> int:
        return round_half_up(self.exact)


def usage_rate(*, meters: list[Meter], prices: dict[str, MeteredPrice], customer_id: str, start: datetime,
               end: datetime) -> list[MeterUsage]:
    """Each meter's quantity and exact cost over [start, end)."""
    out = []
    for meter in meters:
        quantity = meter_quantity(meter=meter, customer_id=customer_id, start=start, end=end)
        price = prices.get(meter.pk)
        exact = ZERO if price is None else price_rate(
            model=price.model, quantity=quantity, unit_price=price.unit_price, package_size=price.package_size,
            tiers=price.tiers,
        )
        out.append(MeterUsage(meter=meter, quantity=quantity, price=price, exact=exact))
    return out


def plan_usage_rate(*, plan: Plan, customer_id: str, start: datetime, end: datetime) -> tuple[Decimal, list[MeterUsage]]:
    """A plan's exact cost for one customer over [start, end): its fixed fee plus every price, in
    the order of the meters' names (so an invoice's lines are; prices made in the same millisecond
    have ids in no particular order)."""
    prices = list(plan.prices.select_related("meter").order_by("meter__name", "pk"))
    usage = usage_rate(
        meters=[p.meter for p in prices], prices={p.meter_id: p for p in prices}, customer_id=customer_id,
        start=start, end=end,
    )
    return Decimal(plan.fixed_fee) + sum((u.exact for u in usage), ZERO), usage


def charges_for_subscription(*, subscription: UsageSubscription) -> QuerySet[UsageCharge]:
    return UsageCharge.objects.filter(subscription=subscription).order_by("-pk")


def invoices_for_subscription(*, subscription: UsageSubscription) -> QuerySet[UsageInvoice]:
    return UsageInvoice.objects.filter(subscription=subscription).prefetch_related("lines").order_by("-pk")


def events_for_export(*, store: Store, start: datetime, end: datetime, customer_id: str | None = None):
    """A period's events of a store, oldest first, as tuples, streamed in chunks."""
    qs = UsageEvent.objects.filter(store=store, timestamp__gte=start, timestamp__lt=end)
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("timestamp", "id").values_list(
        "event_id", "customer_id", "name", "timestamp", "properties", "received_at"
    ).iterator(chunk_size=2000)


@dataclass(frozen=True)
class CustomerUsage:
    customer: Customer
    subscription: UsageSubscription | None
    currency: str
    start: datetime
    end: datetime
    meters: list[MeterUsage]
    total: Decimal
    charged: int


def customer_usage_get(*, store: Store, customer_id: str, meter_key: str | None = None,
                       start: datetime | None = None, end: datetime | None = None) -> CustomerUsage:
    """A customer's usage over [start, end) — by default their subscription's current period, or
    this calendar month (UTC) — per meter, with its exact cost under their plan's prices. Without
    a subscription the store's meters are shown with no cost."""
    customer = customer_get(store=store, customer_id=customer_id)
    sub = usage_subscription_for_customer(customer_id=customer.pk)
    if start is None:
        if sub is not None:
            start = sub.period_start
        else:
            now = datetime.now(tz=UTC)
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if end is None:
        end = sub.period_end if sub is not None and start == sub.period_start else period_after(start)
    prices = {p.meter_id: p for p in sub.plan.prices.select_related("meter")} if sub is not None else {}
    if meter_key is not None:
        meters = [meter_by_key(store=store, key=meter_key)]
    elif sub is not None:
        # By name, as the invoice lists them: a plan's prices are made together, so their ids
        # are in no particular order within that millisecond.
        meters = [p.meter for p in sorted(prices.values(), key=lambda p: (p.meter.name, p.pk))]
    else:
        meters = list(Meter.objects.filter(store=store).order_by("key"))
    usage = usage_rate(meters=meters, prices=prices, customer_id=customer.pk, start=start, end=end)
    fixed = Decimal(sub.plan.fixed_fee) if sub is not None and meter_key is None else ZERO
    return CustomerUsage(
        customer=customer, subscription=sub, currency=sub.plan.currency if sub else store.currency, start=start,
        end=end, meters=usage, total=fixed + sum((u.exact for u in usage), ZERO), charged=sub.charged if sub else 0,
    )
