"""Rating: a period's quantities priced in exact ``Decimal`` minor units, and the one rounding rule.

The rounding rule
-----------------
Quantities and unit prices are exact ``Decimal`` values (a unit price may carry up to 6 decimals
of the minor unit: 0.2¢ is ``Decimal("0.2")``). A period's cost is computed exactly from the
period's quantities — never summed from rounded pieces. An amount is rounded only when it
becomes money that moves: a live charge, the period-end charge or an invoice line, and then
half-up (ROUND_HALF_UP) to a whole minor unit. What rounding left over — the exact cost less
everything already charged, which may be a fraction above or below zero — carries to the next
charge, because every charge is computed as ``round_half_up(exact cost so far - charged so
far)``. Since what was charged is always a whole number, the charges of a period add up to
``round_half_up(exact cost of the period)``: the customer pays the exact total rounded once.

Example: 1,000,001 calls at 0.2¢, charged live whenever 10¢ has accrued, pay 200,000¢ over the
period: 20,000 charges of 10¢ and nothing at period end, because 200,000.2¢ rounds to 200,000¢.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from .models import PriceModel

ZERO = Decimal(0)


def round_half_up(amount: Decimal) -> int:
    """``amount`` (exact minor units) as a whole number of minor units, halves away from zero."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # the last unit this tier prices (inclusive); None: no end
    unit_price: Decimal


def tiers_parse(raw: list[dict]) -> list[Tier]:
    return [
        Tier(None if t.get("up_to") is None else Decimal(str(t["up_to"])), Decimal(str(t["unit_price"])))
        for t in raw
    ]


def tiered_cost(quantity: Decimal, tiers: list[Tier]) -> Decimal:
    """Graduated tiers: each unit is priced by the tier it falls in. With tiers "first 1,000 at
    0, then 0.1", 1,500 units cost 500 × 0.1 = 50."""
    cost, below = ZERO, ZERO
    for tier in tiers:
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if top > below:
            cost += (top - below) * tier.unit_price
        if tier.up_to is None or quantity <= tier.up_to:
            break
        below = tier.up_to
    return cost


def package_cost(quantity: Decimal, *, size: int, price: Decimal) -> Decimal:
    """Per package of ``size`` units, a started package counting whole: with 1,000 calls a
    package at 50, 1 call costs 50, 1,000 cost 50, 1,001 cost 100."""
    if quantity <= 0:
        return ZERO
    packages = (quantity / size).to_integral_value(rounding=ROUND_CEILING)
    return packages * price


def price_rate(*, model: str, quantity: Decimal, unit_price: Decimal, package_size: int = 1,
               tiers: list[dict] | None = None) -> Decimal:
    """The exact cost of ``quantity`` under one metered price, in minor units (not rounded)."""
    quantity = Decimal(quantity)
    if model == PriceModel.PER_UNIT:
        return quantity * unit_price
    if model == PriceModel.TIERED:
        return tiered_cost(quantity, tiers_parse(tiers or []))
    if model == PriceModel.PACKAGE:
        return package_cost(quantity, size=package_size, price=unit_price)
    raise ValueError(f"unknown price model {model!r}")


def live_charge_due(*, exact_cost: Decimal, charged: int, threshold: int, period_end: bool = False) -> int:
    """What a live subscription charges now: when the accrued cost (``exact_cost - charged``)
    reaches ``threshold``, or at period end, the accrued cost rounded half-up; else 0. The
    remainder stays accrued for the next charge (see the module's rounding rule)."""
    accrued = exact_cost - charged
    if not period_end and accrued < threshold:
        return 0
    return max(0, round_half_up(accrued))


def period_after(start: datetime) -> datetime:
    """The first instant of the calendar month (UTC) after the one holding ``start``."""
    start = start.astimezone(dt_timezone.utc)
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)
