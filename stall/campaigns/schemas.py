"""What the API returns and what webhook events carry, and the API's input schemas."""


from datetime import date, datetime
from typing import Literal

from ninja import Schema
from pydantic import Field

from stall.core.api import InputSchema
from stall.core.money import MAX_AMOUNT

from .models import Campaign, Pledge, RewardTier


def campaign_out(campaign: Campaign) -> dict:
    return {
        "id": campaign.pk, "object": "campaign", "title": campaign.title, "story": campaign.story,
        "goal": {"amount": campaign.goal, "currency": campaign.currency},
        "deadline": campaign.deadline.isoformat(), "mode": campaign.mode, "status": campaign.status,
        "published_at": campaign.published_at.isoformat() if campaign.published_at else None,
        "created_at": campaign.created_at.isoformat() if campaign.created_at else None,
    }


def tier_out(tier: RewardTier) -> dict:
    return {
        "id": tier.pk, "object": "reward_tier", "campaign": tier.campaign_id, "title": tier.title,
        "description": tier.description, "min_amount": tier.min_amount, "quantity": tier.quantity,
        "remaining": tier.remaining,
        "estimated_delivery": tier.estimated_delivery.isoformat() if tier.estimated_delivery else None,
        "product": tier.product_id,
    }


def pledge_row_out(*, id: str, campaign_id: str, tier_id: str | None, email: str, amount: int, currency: str,
                   method: str, status: str) -> dict:
    return {
        "id": id, "object": "pledge", "campaign": campaign_id, "tier": tier_id, "email": email,
        "amount": {"amount": amount, "currency": currency}, "method": method, "status": status,
    }


def pledge_out(pledge: Pledge) -> dict:
    out = pledge_row_out(
        id=pledge.pk, campaign_id=pledge.campaign_id, tier_id=pledge.tier_id, email=pledge.email,
        amount=pledge.amount, currency=pledge.currency, method=pledge.method, status=pledge.status,
    )
    out["message"] = pledge.message
    out["order"] = pledge.order_id
    out["created_at"] = pledge.created_at.isoformat() if pledge.created_at else None
    return out


class MoneyOut(Schema):
    amount: int
    currency: str


class CampaignOut(Schema):
    id: str
    object: Literal["campaign"]
    title: str
    story: str
    goal: MoneyOut
    deadline: str
    mode: Literal["all_or_nothing", "keep_what_you_raise"]
    status: Literal["draft", "live", "succeeded", "failed", "canceled"]
    published_at: str | None
    created_at: str | None
    pledged: MoneyOut | None = None
    collected: MoneyOut | None = None
    backers: int | None = None


class CampaignList(Schema):
    object: Literal["list"]
    data: list[CampaignOut]
    has_more: bool


class RewardTierOut(Schema):
    id: str
    object: Literal["reward_tier"]
    campaign: str
    title: str
    description: str
    min_amount: int
    quantity: int | None
    remaining: int | None
    estimated_delivery: str | None
    product: str | None


class RewardTierList(Schema):
    object: Literal["list"]
    data: list[RewardTierOut]
    has_more: bool


class PledgeOut(Schema):
    id: str
    object: Literal["pledge"]
    campaign: str
    tier: str | None
    email: str
    amount: MoneyOut
    method: Literal["wallet", "card"]
    status: str
    message: str = ""
    order: str | None = None
    created_at: str | None = None


class PledgeList(Schema):
    object: Literal["list"]
    data: list[PledgeOut]
    has_more: bool


class CampaignCreateIn(InputSchema):
    title: str = Field(min_length=1, max_length=120)
    story: str = Field("", max_length=50_000)
    goal: int = Field(gt=0, le=MAX_AMOUNT, description="In minor units of the currency (the store's by default).")
    currency: str | None = Field(None, min_length=3, max_length=3)
    deadline: datetime = Field(description="In the future, with its time zone.")
    mode: Literal["all_or_nothing", "keep_what_you_raise"] = "all_or_nothing"


class CampaignUpdateIn(InputSchema):
    title: str | None = Field(None, min_length=1, max_length=120)
    story: str | None = Field(None, max_length=50_000)
    goal: int | None = Field(None, gt=0, le=MAX_AMOUNT)
    deadline: datetime | None = None
    mode: Literal["all_or_nothing", "keep_what_you_raise"] | None = None


class RewardTierCreateIn(InputSchema):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=5000)
    min_amount: int = Field(gt=0, le=MAX_AMOUNT)
    quantity: int | None = Field(None, gt=0, le=1_000_000)
    estimated_delivery: date | None = None
    product: str | None = None
