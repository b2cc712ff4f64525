"""API v1 shapes of tiers and subscriptions, and the objects their events carry."""

from datetime import datetime
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import StrictInt

from stall.core.api import InputSchema, NotBlank, ObjectId, Text, timestamp
from stall.core.money import MAX_AMOUNT

IntervalIn = Literal["week", "month", "year"]


class PriceIn(InputSchema):
    # Documented as the schema says; checked by the service, whose errors carry their own codes
    # (invalid_interval, invalid_amount) and the price's place in the list.
    interval: Text = Field(..., description="week, month or year.", json_schema_extra={"enum": ["week", "month", "year"]})
    amount: StrictInt = Field(
        ..., description="Minor units, more than 0.", json_schema_extra={"minimum": 1, "maximum": MAX_AMOUNT},
    )


class TierCreateIn(InputSchema):
    name: Annotated[Text, NotBlank] = Field(..., max_length=120)
    description: Text = Field("", max_length=5000)
    benefits: list[Annotated[Text, Field(max_length=200)]] = Field(default_factory=list, max_length=20)
    prices: list[PriceIn] = Field(default_factory=list, max_length=3, description="None: a free tier.")
    trial_days: int = Field(0, ge=0, le=365)
    member_limit: int | None = Field(None, ge=1, le=10**9)
    cap_to_subscribe: bool = Field(False, description="Pay per post up to the monthly price, then a member.")
    position: int | None = Field(None, ge=0, le=10**6)


class TierUpdateIn(InputSchema):
    """Only the parameters sent are changed."""

    name: Annotated[Text, NotBlank] = Field(None, max_length=120)
    description: Text = Field(None, max_length=5000)
    benefits: list[Annotated[Text, Field(max_length=200)]] = Field(None, max_length=20)
    prices: list[PriceIn] = Field(None, max_length=3)
    trial_days: int = Field(None, ge=0, le=365)
    member_limit: int | None = Field(None, ge=1, le=10**9)
    cap_to_subscribe: bool = None
    position: int = Field(None, ge=0, le=10**6)


class TierGatesIn(InputSchema):
    posts: list[ObjectId] = Field(..., max_length=1000, description="The posts' product ids (prod_…).")


class PriceOut(Schema):
    id: str
    interval: IntervalIn
    amount: int
    currency: str
    product: str


class TierOut(Schema):
    id: str
    object: Literal["tier"]
    name: str
    description: str
    benefits: list[str]
    prices: list[PriceOut]
    free: bool
    trial_days: int
    member_limit: int | None
    cap_to_subscribe: bool
    position: int
    status: Literal["active", "archived"]
    posts: list[str] = Field(..., description="Products of the posts gated to the tier.")
    created: int


class TierList(Schema):
    object: Literal["list"]
    data: list[TierOut]
    has_more: bool


class SubscriptionOut(Schema):
    id: str
    object: Literal["subscription"]
    tier: str
    price: str | None
    customer: str
    email: str
    status: Literal["trialing", "active", "past_due", "paused", "ended"]
    origin: Literal["join", "cap", "complimentary"]
    pay_with: Literal["wallet", "card", "none"]
    card_fallback: bool
    amount: int | None
    currency: str
    interval: IntervalIn | None
    current_period_start: int
    current_period_end: int | None
    trial_end: int | None
    cancel_at_period_end: bool
    canceled_at: int | None
    ended_at: int | None
    pause_periods: int
    pending_price: str | None
    next_retry_at: int | None
    created: int


class SubscriptionList(Schema):
    object: Literal["list"]
    data: list[SubscriptionOut]
    has_more: bool


class SubscriptionListFilter(Schema):
    status: Literal["trialing", "active", "past_due", "paused", "ended"] | None = None
    tier: ObjectId | None = None


class SubscriptionCancelIn(InputSchema):
    at_period_end: bool = Field(True, description="Keep access until the period ends; false ends it now.")
    refund: bool = Field(False, description="Ending now: refund the unused part of the period, pro rata.")


class SubscriptionPauseIn(InputSchema):
    periods: int = Field(..., ge=1, le=3)


class SubscriptionChangeIn(InputSchema):
    tier: ObjectId
    interval: IntervalIn | None = None


class SubscriptionCreateIn(InputSchema):
    """A complimentary membership given by the creator."""

    tier: ObjectId
    email: Annotated[Text, NotBlank] = Field(..., max_length=254)
    ends_at: datetime


def price_out(price) -> dict:
    return {"id": price.pk, "interval": price.interval, "amount": price.amount, "currency": price.currency,
            "product": price.product_id}


def tier_out(tier) -> dict:
    prices = sorted(tier.prices.all(), key=lambda p: ("week", "month", "year").index(p.interval))
    return {
        "id": tier.pk, "object": "tier", "name": tier.name, "description": tier.description, "benefits": tier.benefits,
        "prices": [price_out(p) for p in prices], "free": not prices, "trial_days": tier.trial_days,
        "member_limit": tier.member_limit, "cap_to_subscribe": tier.cap_to_subscribe, "position": tier.position,
        "status": tier.status, "posts": sorted(g.product_id for g in tier.gates.all()),
        "created": timestamp(tier.created_at),
    }


def subscription_out(sub) -> dict:
    price = sub.price
    return {
        "id": sub.pk, "object": "subscription", "tier": sub.tier_id, "price": sub.price_id, "customer": sub.customer_id,
        "email": sub.email, "status": sub.status, "origin": sub.origin, "pay_with": sub.pay_with,
        "card_fallback": sub.card_fallback, "amount": price.amount if price else None,
        "currency": price.currency if price else sub.store.currency, "interval": price.interval if price else None,
        "current_period_start": timestamp(sub.current_period_start), "current_period_end": timestamp(sub.current_period_end),
        "trial_end": timestamp(sub.trial_end), "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": timestamp(sub.canceled_at), "ended_at": timestamp(sub.ended_at),
        "pause_periods": sub.pause_periods, "pending_price": sub.pending_price_id,
        "next_retry_at": timestamp(sub.next_retry_at), "created": timestamp(sub.created_at or sub.current_period_start),
    }
