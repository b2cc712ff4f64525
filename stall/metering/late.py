"""Late usage: events accepted for a period that was already billed, billed once in a later one.

An event may be sent up to 35 days after its timestamp (``ingest.OLDEST``), so usage can arrive
for a period that has closed. Each closed period keeps the quantities it was billed for, per
meter (``BilledPeriod``). Before a live charge (at most every ``LIVE_LOOK_EVERY``), at a live
period's close and when an arrears invoice is made, the recent closed periods that received events since they were last looked at are rated again with the
existing aggregation (``selectors.meter_quantity``); where a meter's quantity grew, the
difference in cost — ``price(new quantity) - price(billed quantity)`` under the plan's current
price, so a graduated tier prices the late units where they fall — becomes a ``UsageAdjustment``
billed in the current period, and the period's billed quantity moves up to the new one. Both in
the transaction that holds the subscription's row lock, so the late usage is billed exactly once
however many workers bill the subscription.

A late event that would lower a period's cost (a negative ``sum``, an older ``latest``) is kept
and shown but never credited: the billed quantity only moves up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from .models import BilledPeriod, UsageAdjustment, UsageEvent, UsageSubscription
from .rating import ZERO, price_rate
from .selectors import meter_quantity

# ``ingest.OLDEST``, not imported: ingestion queues the billing tasks, which import this module.
# A test holds the two equal.
OLDEST = timedelta(days=35)
# Events are stamped as a batch begins and committed a moment later: a period is looked at again
# for events received since this long before the last look, so none committed late is missed
# (looking twice bills nothing twice: quantities are compared, not events counted).
LOOK_BACK = timedelta(minutes=2)
# A live subscription looks for late events before a threshold charge at most this often.
LIVE_LOOK_EVERY = timedelta(minutes=10)


def quantity_text(quantity: Decimal) -> str:
    """A quantity as kept in ``BilledPeriod.quantities``: exact, without trailing zeros."""
    return format(Decimal(quantity).normalize(), "f") if quantity else "0"


def billed_period_record(*, sub: UsageSubscription, quantities: dict[str, str], rated_at: datetime) -> None:
    """Keep what the subscription's current period was billed for (meter key → quantity), as it
    closes; ``rated_at`` is when those quantities were read."""
    BilledPeriod.objects.create(
        subscription=sub, period_start=sub.period_start, period_end=sub.period_end, checked_at=rated_at - LOOK_BACK,
        quantities=quantities,
    )


def _cost(price, quantity: Decimal) -> Decimal:
    return price_rate(model=price.model, quantity=quantity, unit_price=price.unit_price,
                      package_size=price.package_size, tiers=price.tiers)


def late_usage_absorb(*, sub: UsageSubscription, now: datetime, every: timedelta | None = None) -> list[UsageAdjustment]:
    """Bill the late usage of ``sub``'s recent closed periods in its current period: the
    adjustments made now (none when nothing arrived late). Call with the subscription locked.

    Looking for late events reads the period's events of the plan's meters by the index
    (customer, name, timestamp), so a live charge, made after every batch, looks only when the
    last look is ``every`` old; a period's close and an invoice look always."""
    oldest = now - OLDEST - timedelta(days=1)
    looked_at = timezone.now()  # wall-clock time, as events' received_at is (``now`` may be a task's clock)
    periods = [
        p for p in BilledPeriod.objects.filter(subscription=sub, period_end__gt=oldest).order_by("period_start")
        if every is None or p.checked_at + LOOK_BACK + every <= looked_at
    ]
    if not periods:
        return []
    # By the meters' names, as the invoice lists its usage: a plan's prices are made together, so
    # their ids are in no particular order within that millisecond.
    prices = list(sub.plan.prices.select_related("meter").order_by("meter__name", "pk"))
    names = {price.meter.event_name for price in prices}
    made: list[UsageAdjustment] = []
    for period in periods:
        arrived = UsageEvent.objects.filter(
            customer_id=sub.customer_id, name__in=names, timestamp__gte=period.period_start,
            timestamp__lt=period.period_end, received_at__gte=period.checked_at,
        ).exists()
        quantities = dict(period.quantities)
        for price in prices if arrived else ():
            meter = price.meter
            billed = Decimal(quantities.get(meter.key, "0"))
            quantity = meter_quantity(meter=meter, customer_id=sub.customer_id, start=period.period_start,
                                      end=period.period_end)
            if quantity <= billed:
                continue
            exact = _cost(price, quantity) - _cost(price, billed)
            quantities[meter.key] = quantity_text(quantity)
            if exact <= ZERO:  # free units (a free tier): billed quantity moves, nothing to charge
                continue
            made.append(UsageAdjustment(
                subscription=sub, period_start=period.period_start, billed_in=sub.period_start, meter_key=meter.key,
                meter_name=meter.name, quantity=quantity - billed, exact=exact,
            ))
        BilledPeriod.objects.filter(pk=period.pk).update(quantities=quantities, checked_at=looked_at - LOOK_BACK)
    if made:
        UsageAdjustment.objects.bulk_create(made)
    return made


def adjustments_exact(*, sub: UsageSubscription) -> Decimal:
    """The late usage billed in the subscription's current period, exact."""
    return sum((a.exact for a in UsageAdjustment.objects.filter(subscription=sub, billed_in=sub.period_start)), ZERO)
