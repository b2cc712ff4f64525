"""What the API returns and what webhook events carry, and the API's input schemas."""

from __future__ import annotations

from datetime import date, datetime

from ninja import Schema

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


class CampaignCreateIn(Schema):
    title: str
    story: str = ""
    goal: int
    currency: str | None = None
    deadline: datetime
    mode: str = "all_or_nothing"


class CampaignUpdateIn(Schema):
    title: str | None = None
    story: str | None = None
    goal: int | None = None
    deadline: datetime | None = None
    mode: str | None = None


class TierCreateIn(Schema):
    title: str
    description: str = ""
    min_amount: int
    quantity: int | None = None
    estimated_delivery: date | None = None
    product: str | None = None
