"""API v1: campaigns (create, list, retrieve, update, delete a draft, publish, cancel), their
reward tiers and pledges, and a pledge by id. Each endpoint parses, calls one service or selector,
serializes; another store's campaign, tier or pledge is "not found"."""

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import services, settlement
from .models import Pledge, RewardTier
from .schemas import (
    CampaignCreateIn,
    CampaignList,
    CampaignOut,
    CampaignUpdateIn,
    PledgeList,
    PledgeOut,
    RewardTierCreateIn,
    RewardTierList,
    RewardTierOut,
    campaign_out,
    pledge_out,
    tier_out,
)
from .selectors import campaign_totals

campaigns_router = Router()
pledges_router = Router()


def _campaign(request, campaign_id: str):
    return services.campaign_get(store=request.store, campaign_id=campaign_id)


def _with_totals(campaign) -> dict:
    out = campaign_out(campaign)
    totals = campaign_totals(campaign=campaign)
    out["pledged"] = {"amount": totals.pledged, "currency": campaign.currency}
    out["collected"] = {"amount": totals.collected, "currency": campaign.currency}
    out["backers"] = totals.backers
    return out


@campaigns_router.post("", response=responses(CampaignOut), summary="Create a campaign")
def campaign_create(request, payload: CampaignCreateIn):
    """A draft: goal in minor units (more than 0), deadline in the future with its time zone."""
    return _with_totals(services.campaign_create(store=request.store, **payload.model_dump()))


@campaigns_router.get("", response=responses(CampaignList), summary="List campaigns, newest first")
def campaign_list(request, params: Query[ListParams]):
    return paginate(request.store.campaigns.all(), params, campaign_out)


@campaigns_router.get("/{id}", response=responses(CampaignOut), summary="Retrieve a campaign")
def campaign_retrieve(request, id: ObjectId):
    return _with_totals(_campaign(request, id))


@campaigns_router.post("/{id}", response=responses(CampaignOut), summary="Update a campaign")
def campaign_update(request, id: ObjectId, payload: CampaignUpdateIn):
    """Changes only the parameters sent. A live campaign's goal and mode stay; its deadline may
    only move later."""
    campaign = services.campaign_update(campaign=_campaign(request, id), **payload.model_dump(exclude_unset=True))
    return _with_totals(campaign)


@campaigns_router.delete("/{id}", response=responses(CampaignOut), summary="Delete a draft campaign")
def campaign_delete(request, id: ObjectId):
    campaign = _campaign(request, id)
    out = campaign_out(campaign)
    services.campaign_delete(campaign=campaign)
    return out


@campaigns_router.post("/{id}/publish", response=responses(CampaignOut), summary="Publish a campaign")
def campaign_publish(request, id: ObjectId):
    return _with_totals(services.campaign_publish(campaign=_campaign(request, id)))


@campaigns_router.post("/{id}/cancel", response=responses(CampaignOut), summary="Cancel a campaign")
def campaign_cancel(request, id: ObjectId):
    """Held wallet pledges are released at once and saved cards never charged."""
    return _with_totals(settlement.campaign_cancel(campaign=_campaign(request, id)))


@campaigns_router.post("/{id}/tiers", response=responses(RewardTierOut), summary="Add a reward tier")
def campaign_tier_create(request, id: ObjectId, payload: RewardTierCreateIn):
    """``quantity`` empty for unlimited; ``product`` (``prod_…``) is granted to each backer at success."""
    return tier_out(services.tier_create(campaign=_campaign(request, id), **payload.model_dump()))


@campaigns_router.get("/{id}/tiers", response=responses(RewardTierList), summary="List a campaign's reward tiers")
def campaign_tiers_list(request, id: ObjectId, params: Query[ListParams]):
    return paginate(RewardTier.objects.filter(campaign=_campaign(request, id)), params, tier_out)


@campaigns_router.get("/{id}/pledges", response=responses(PledgeList), summary="List a campaign's pledges, newest first")
def campaign_pledges_list(request, id: ObjectId, params: Query[ListParams]):
    return paginate(Pledge.objects.filter(campaign=_campaign(request, id)), params, pledge_out)


router_refuse_other_methods(campaigns_router)


@pledges_router.get("/{id}", response=responses(PledgeOut), summary="Retrieve a pledge")
def pledge_retrieve(request, id: ObjectId):
    return pledge_out(services.pledge_get(store=request.store, pledge_id=id))


@pledges_router.post("/{id}/cancel", response=responses(PledgeOut), summary="Cancel a pledge")
def pledge_cancel(request, id: ObjectId):
    """Before the deadline only: a held wallet pledge is voided back at once."""
    return pledge_out(services.pledge_cancel(pledge=services.pledge_get(store=request.store, pledge_id=id)))


router_refuse_other_methods(pledges_router)
