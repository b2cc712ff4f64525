"""API v1 shapes of meters, plans, usage subscriptions, usage and event batches."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr

from stall.core.api import Amount, InputSchema, NotBlank, Text, timestamp

from .models import Meter, MeteredPrice, Plan, UsageSubscription
from .rating import round_half_up

Number = StrictStr | StrictInt | StrictFloat


# --- Input ----------------------------------------------------------------------------------


class EventsIn(InputSchema):
    events: list[Any] = Field(..., description=(
        "Up to 1,000 events, each {id, customer, name, timestamp, properties}: id is your idempotency "
        "key, unique per store; customer a cus_ id; timestamp ISO 8601 with a zone, or Unix seconds."
    ))


KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
PROPERTY_PATTERN = r"^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$"
Name = Annotated[Text, NotBlank]


class MeterCreateIn(InputSchema):
    key: StrictStr = Field(..., description="How prices and the usage endpoint name it: api_calls.",
                           pattern=KEY_PATTERN)
    name: Name = Field(..., max_length=120)
    event_name: Name = Field(..., max_length=120, description="The events it counts.")
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"] = "count"
    property: StrictStr = Field("", pattern=PROPERTY_PATTERN,
                                description="The property read by every aggregation but count (required for them).")
    filters: dict[str, Any] = Field(default_factory=dict, description='Only events matching: {"region": "eu"}.')


class MeterUpdateIn(InputSchema):
    name: Name = Field(None, max_length=120)
    event_name: Name = Field(None, max_length=120)
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"] = None
    property: StrictStr = Field(None, pattern=PROPERTY_PATTERN)
    filters: dict[str, Any] = None


class PriceTierIn(InputSchema):
    up_to: Number | None = Field(None, description="The last unit of this tier; null for the last tier.")
    unit_price: Number = Field(..., description='Minor units, up to 6 decimals: "0.1" is a tenth of a cent.')


class MeteredPriceIn(InputSchema):
    meter: StrictStr = Field(..., description="The meter's key or id.")
    model: Literal["per_unit", "tiered", "package"] = "per_unit"
    unit_price: Number | None = Field(None, description='Minor units per unit (per package), up to 6 decimals: "0.2".')
    package_size: StrictInt | None = Field(None, description="package: units in one package.")
    tiers: list[PriceTierIn] | None = Field(None, max_length=20, description="tiered: graduated tiers.")


TIER_DESCRIPTION = ("A membership tier's id (tier_…) that carries this plan: its members are put on it, billed in "
                    "arrears, while they are members. \"\" for none.")


class PlanCreateIn(InputSchema):
    name: Name = Field(..., max_length=120)
    fixed_fee: Amount = Field(0, description="Minor units a period.")
    prices: list[MeteredPriceIn] = Field(default_factory=list, max_length=50)
    tier: StrictStr | None = Field(None, max_length=40, description=TIER_DESCRIPTION)


class PlanUpdateIn(InputSchema):
    name: Name = Field(None, max_length=120)
    fixed_fee: Amount = None
    prices: list[MeteredPriceIn] = Field(None, max_length=50, description="Replace every price.")
    tier: StrictStr | None = Field(None, max_length=40, description=TIER_DESCRIPTION)


class UsageSubscriptionCreateIn(InputSchema):
    customer: StrictStr
    plan: StrictStr
    billing: Literal["live", "arrears"] = "live"
    threshold: StrictInt = Field(100, ge=1, le=10**12,
                                 description="live: charge the wallet when this many minor units accrued.")
    payment_method: StrictStr | None = Field(None, max_length=255, description=(
        "arrears: the card that pays the invoices, saved for the customer — a Stripe PaymentMethod (pm_…, made "
        "with Stripe.js) or a sandbox test card (sandbox_visa)."))
    wallet_first: StrictBool = Field(True, description=(
        "arrears: charge the customer's wallet first, under the allowance they gave the store; the card pays "
        "when the wallet cannot (or always, when false)."))


class UsageSubscriptionCardIn(InputSchema):
    payment_method: StrictStr | None = Field(None, max_length=255, description=(
        "A new card for the invoices: a Stripe pm_… or a sandbox test card."))
    wallet_first: StrictBool | None = None


class UsageParams(Schema):
    meter: str | None = Field(None, description="One meter's key or id; all of the plan's (or the store's) by default.")
    # Named from/to in the query string.
    start: str | None = Field(None, alias="from", description="ISO 8601 or Unix seconds; the current period by default.")
    end: str | None = Field(None, alias="to", description="Exclusive.")


# --- Output ---------------------------------------------------------------------------------


class EventResultOut(Schema):
    id: Any = None
    status: str
    error: dict | None = None


class EventsOut(Schema):
    object: str = "event_batch"
    accepted: int
    duplicates: int
    refused: int
    data: list[EventResultOut]


class MeterOut(Schema):
    id: str
    object: str = "meter"
    key: str
    name: str
    event_name: str
    aggregation: str
    property: str
    filters: dict
    created: int


def meter_out(meter: Meter) -> dict:
    return dict(id=meter.pk, key=meter.key, name=meter.name, event_name=meter.event_name,
                aggregation=meter.aggregation, property=meter.property, filters=meter.filters,
                created=timestamp(meter.created_at))


class MeterList(Schema):
    object: str = "list"
    data: list[MeterOut]
    has_more: bool


class MeteredPriceOut(Schema):
    id: str
    meter: str
    model: str
    unit_price: str
    package_size: int
    tiers: list


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def price_out(price: MeteredPrice) -> dict:
    return dict(id=price.pk, meter=price.meter.key, model=price.model, unit_price=_decimal_text(price.unit_price),
                package_size=price.package_size, tiers=price.tiers)


class PlanOut(Schema):
    id: str
    object: str = "plan"
    name: str
    currency: str
    fixed_fee: int
    prices: list[MeteredPriceOut]
    tier: str | None
    created: int


def plan_out(plan: Plan) -> dict:
    return dict(id=plan.pk, name=plan.name, currency=plan.currency, fixed_fee=plan.fixed_fee,
                prices=[price_out(p) for p in plan.prices.all()], tier=plan.tier_id or None,
                created=timestamp(plan.created_at))


class PlanList(Schema):
    object: str = "list"
    data: list[PlanOut]
    has_more: bool


class UsageSubscriptionOut(Schema):
    id: str
    object: str = "usage_subscription"
    customer: str
    plan: str
    billing: str
    threshold: int
    status: str
    current_period_start: int
    current_period_end: int
    charged_this_period: int
    failure_message: str
    payment_method: str | None = Field(..., description="The saved card's id (spm_…) that pays arrears invoices.")
    wallet_first: bool
    next_retry_at: int | None = Field(..., description="When a declined card is tried again.")
    membership: str | None = Field(..., description="The membership (sub_…) whose tier put the customer on the plan.")
    ending: bool = Field(..., description="Its membership ended: canceled once its last, shortened period is paid.")
    created: int


def usage_subscription_out(sub: UsageSubscription) -> dict:
    return dict(id=sub.pk, customer=sub.customer_id, plan=sub.plan_id, billing=sub.billing, threshold=sub.threshold,
                status=sub.status, current_period_start=timestamp(sub.period_start),
                current_period_end=timestamp(sub.period_end), charged_this_period=sub.charged,
                failure_message=sub.failure_message, payment_method=sub.saved_method_id, wallet_first=sub.wallet_first,
                next_retry_at=timestamp(sub.next_retry_at), membership=sub.membership_id or None, ending=sub.ending,
                created=timestamp(sub.created_at))


class UsageSubscriptionList(Schema):
    object: str = "list"
    data: list[UsageSubscriptionOut]
    has_more: bool


class CostOut(Schema):
    exact: str = Field(..., description="Minor units, not rounded.")
    amount: int = Field(..., description="Minor units, rounded half-up once.")


class MeterUsageOut(Schema):
    meter: str
    name: str
    aggregation: str
    quantity: str
    cost: CostOut


class UsageOut(Schema):
    object: str = "usage"
    customer: str
    subscription: str | None
    currency: str
    start: int = Field(..., alias="from")
    end: int = Field(..., alias="to")
    meters: list[MeterUsageOut]
    total: CostOut
    charged: int = Field(..., description="Charged for the current period so far (live billing).")

    model_config = {"populate_by_name": True}


def cost_out(exact: Decimal) -> dict:
    return {"exact": _decimal_text(exact), "amount": round_half_up(exact)}
