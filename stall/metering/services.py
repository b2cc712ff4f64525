"""Writes: meters, plans with their metered prices, and customers' usage subscriptions.

Every write validates what an API client or a form may send and raises the domain's errors with
the parameter to fix; another store's meter, plan or customer is "not found".
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from stall.core.money import amount_validate
from stall.stores.models import Store

from .errors import (
    AlreadySubscribed,
    MeterInvalid,
    MeterKeyTaken,
    PlanInvalid,
    UsageSubscriptionInvalid,
)
from .models import (
    Aggregation,
    BillingMode,
    Meter,
    MeteredPrice,
    Plan,
    PriceModel,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .rating import period_after
from .rollups import meter_rollups_rebuild
from .selectors import customer_get, meter_by_key

KEY_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
PROPERTY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
PRICE_MAX = Decimal("1e15")


def _text(value, *, param: str, max_length: int, error=MeterInvalid, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise error("Must be text.", param=param)
    value = value.strip()
    if required and not value:
        raise error("This field is required.", param=param)
    if len(value) > max_length or "\x00" in value:
        raise error(f"At most {max_length} characters.", param=param)
    return value


def _filters_clean(filters) -> dict:
    if filters in (None, ""):
        return {}
    if not isinstance(filters, dict):
        raise MeterInvalid('Filters must be an object such as {"region": "eu"}.', param="filters")
    for key, wanted in filters.items():
        if not PROPERTY_RE.fullmatch(key):
            raise MeterInvalid(f"Filter keys are property names (letters, digits, _ and -): {key!r}.", param="filters")
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or any(not isinstance(v, (str, int, float)) or isinstance(v, bool) for v in values):
            raise MeterInvalid(f"The filter on {key!r} must be a text or number, or a list of them.", param="filters")
    return filters


def _meter_fields(*, name, event_name, aggregation, property, filters) -> dict:
    name = _text(name, param="name", max_length=120)
    event_name = _text(event_name, param="event_name", max_length=120)
    if aggregation not in Aggregation.values:
        raise MeterInvalid(f"Aggregation must be one of: {', '.join(Aggregation.values)}.", param="aggregation")
    property = _text(property, param="property", max_length=64, required=False)
    if aggregation == Aggregation.COUNT:
        property = ""
    elif not PROPERTY_RE.fullmatch(property):
        raise MeterInvalid(f"A {aggregation} meter needs the property it reads (letters, digits, _ and -).",
                           param="property")
    return dict(name=name, event_name=event_name, aggregation=aggregation, property=property,
                filters=_filters_clean(filters))


def meter_create(*, store: Store, key: str, name: str, event_name: str, aggregation: str = "count",
                 property: str = "", filters: dict | None = None) -> Meter:
    key = _text(key, param="key", max_length=64)
    if not KEY_RE.fullmatch(key):
        raise MeterInvalid("The key is lower-case letters, digits, _, . and -, such as api_calls.", param="key")
    fields = _meter_fields(name=name, event_name=event_name, aggregation=aggregation, property=property,
                           filters=filters)
    try:
        with transaction.atomic():
            _store_lock(store.pk)
            meter = Meter.objects.create(store=store, key=key, **fields)
            meter_rollups_rebuild(meter=meter)  # events of its name may be stored already
            return meter
    except IntegrityError:
        raise MeterKeyTaken(param="key") from None


def _store_lock(store_id: str) -> None:
    """Wait for the store's batches of events being written, and hold off new ones, while a
    meter's rollups are (re)built (a batch holds a share lock on the store while it rolls up)."""
    Store.objects.select_for_update().filter(pk=store_id).first()


def meter_update(*, meter: Meter, **changes) -> Meter:
    """Change a meter's name, event name, aggregation, property or filters (not its key). The
    change applies to every period rated after it, including the current one."""
    current = dict(name=meter.name, event_name=meter.event_name, aggregation=meter.aggregation,
                   property=meter.property, filters=meter.filters)
    current.update({k: v for k, v in changes.items() if k in current})
    fields = _meter_fields(**current)
    counted = ("event_name", "aggregation", "property", "filters")
    recount = any(fields[f] != getattr(meter, f) for f in counted)
    with transaction.atomic():
        if recount:
            _store_lock(meter.store_id)
        for field, value in fields.items():
            setattr(meter, field, value)
        meter.save()
        if recount:
            meter_rollups_rebuild(meter=meter)
    return meter


def _decimal(value, *, param: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        raise PlanInvalid("Must be a number of minor units, such as \"0.2\".", param=param)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PlanInvalid("Must be a number of minor units, such as \"0.2\".", param=param) from None
    if not number.is_finite() or number < 0 or number >= PRICE_MAX:
        raise PlanInvalid("Must be a number of minor units, 0 or more.", param=param)
    if number != number.quantize(Decimal("0.000001")):
        raise PlanInvalid("A unit price has at most 6 decimals of the minor unit.", param=param)
    return number


def _price_clean(*, store: Store, raw, index: int) -> MeteredPrice:
    param = f"prices.{index}"
    if not isinstance(raw, dict):
        raise PlanInvalid("Each price is an object.", param=param)
    meter = meter_by_key(store=store, key=raw.get("meter") if isinstance(raw.get("meter"), str) else "")
    model = raw.get("model", PriceModel.PER_UNIT)
    if model not in PriceModel.values:
        raise PlanInvalid(f"Model must be one of: {', '.join(PriceModel.values)}.", param=f"{param}.model")
    price = MeteredPrice(meter=meter, model=model)
    if model == PriceModel.TIERED:
        tiers = raw.get("tiers")
        if not isinstance(tiers, list) or not tiers:
            raise PlanInvalid("A tiered price needs its tiers.", param=f"{param}.tiers")
        clean, last = [], Decimal(0)
        for n, tier in enumerate(tiers):
            tparam = f"{param}.tiers.{n}"
            if not isinstance(tier, dict):
                raise PlanInvalid("Each tier is an object.", param=tparam)
            up_to = tier.get("up_to")
            if up_to is not None:
                up_to = _decimal(up_to, param=f"{tparam}.up_to")
                if up_to <= last:
                    raise PlanInvalid("Each tier ends above the one before.", param=f"{tparam}.up_to")
                last = up_to
            elif n != len(tiers) - 1:
                raise PlanInvalid("Only the last tier has no end.", param=f"{tparam}.up_to")
            unit = _decimal(tier.get("unit_price"), param=f"{tparam}.unit_price")
            clean.append({"up_to": None if up_to is None else str(up_to), "unit_price": str(unit)})
        if clean[-1]["up_to"] is not None:
            raise PlanInvalid("The last tier has no end (up_to null).", param=f"{param}.tiers")
        price.tiers = clean
    else:
        price.unit_price = _decimal(raw.get("unit_price"), param=f"{param}.unit_price")
        if model == PriceModel.PACKAGE:
            size = raw.get("package_size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise PlanInvalid("A package holds a whole number of units, 1 or more.", param=f"{param}.package_size")
            price.package_size = size
    return price


def _prices_clean(*, store: Store, prices) -> list[MeteredPrice]:
    if not isinstance(prices, list):
        raise PlanInvalid("Prices must be a list.", param="prices")
    clean = [_price_clean(store=store, raw=raw, index=n) for n, raw in enumerate(prices)]
    meters = [p.meter_id for p in clean]
    if len(set(meters)) != len(meters):
        raise PlanInvalid("A plan prices each meter once.", param="prices")
    return clean


@transaction.atomic
def plan_create(*, store: Store, name: str, prices: list, fixed_fee: int = 0) -> Plan:
    """A plan in the store's currency: a fixed fee a period (0 for none) and metered prices."""
    name = _text(name, param="name", max_length=120, error=PlanInvalid)
    amount_validate(fixed_fee, param="fixed_fee")
    clean = _prices_clean(store=store, prices=prices)
    plan = Plan.objects.create(store=store, name=name, currency=store.currency, fixed_fee=fixed_fee)
    for price in clean:
        price.plan = plan
    MeteredPrice.objects.bulk_create(clean)
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, name: str | None = None, fixed_fee: int | None = None,
                prices: list | None = None) -> Plan:
    """Change a plan; new prices replace the old ones and rate every period not yet closed."""
    if name is not None:
        plan.name = _text(name, param="name", max_length=120, error=PlanInvalid)
    if fixed_fee is not None:
        plan.fixed_fee = amount_validate(fixed_fee, param="fixed_fee")
    plan.save()
    if prices is not None:
        clean = _prices_clean(store=plan.store, prices=prices)
        plan.prices.all().delete()
        for price in clean:
            price.plan = plan
        MeteredPrice.objects.bulk_create(clean)
    return plan


def usage_subscription_create(*, store: Store, customer_id: str, plan_id: str, billing: str = BillingMode.LIVE,
                              threshold: int = 100) -> UsageSubscription:
    """Put a customer on a plan from now to the end of this calendar month (UTC), then monthly.
    Live billing charges their wallet under the allowance they gave the store, each time
    ``threshold`` minor units have accrued."""
    customer = customer_get(store=store, customer_id=customer_id)
    plan = Plan.objects.filter(store=store, pk=plan_id).first() if isinstance(plan_id, str) else None
    if plan is None:
        raise UsageSubscriptionInvalid("No such plan.", param="plan", code="resource_missing")
    if billing not in BillingMode.values:
        raise UsageSubscriptionInvalid(f"Billing must be one of: {', '.join(BillingMode.values)}.", param="billing")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise UsageSubscriptionInvalid("The threshold is a whole number of minor units, 1 or more.", param="threshold")
    now = timezone.now()
    try:
        with transaction.atomic():
            return UsageSubscription.objects.create(
                store=store, customer=customer, plan=plan, billing=billing, threshold=threshold, period_start=now,
                period_end=period_after(now),
            )
    except IntegrityError:
        raise AlreadySubscribed(param="customer") from None


@transaction.atomic
def usage_subscription_cancel(*, subscription: UsageSubscription) -> UsageSubscription:
    """Stop billing; usage already charged stays charged, what accrued since is not charged."""
    UsageSubscription.objects.filter(pk=subscription.pk).update(
        status=UsageSubscriptionStatus.CANCELED, updated_at=timezone.now()
    )
    subscription.refresh_from_db()
    return subscription
