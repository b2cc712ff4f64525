"""API v1: tiers (CRUD, archive, gated posts) and subscriptions (list, retrieve, cancel, pause,
resume, change tier, complimentary), and a customer's subscriptions. Each endpoint parses, calls
one service or selector, serializes; another store's tier or subscription is "not found"."""

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods
from stall.core.errors import InvalidRequest

from . import selectors, services, tiers
from .errors import TierNotFound
from .schemas import (
    SubscriptionCancelIn,
    SubscriptionChangeIn,
    SubscriptionCreateIn,
    SubscriptionList,
    SubscriptionListFilter,
    SubscriptionOut,
    SubscriptionPauseIn,
    TierCreateIn,
    TierGatesIn,
    TierList,
    TierOut,
    TierUpdateIn,
    subscription_out,
    tier_out,
)

tiers_router = Router()
subscriptions_router = Router()
# Mounted at /customers beside the wallets app's customer routes (sibling apps, one prefix).
customers_router = Router()


def _tier(request, tier_id: str):
    return selectors.tier_get(store=request.store, tier_id=tier_id)


@tiers_router.post("", response=responses(TierOut), summary="Create a tier")
def tier_create(request, payload: TierCreateIn):
    """A tier with no prices is free. Prices are more than 0, one per interval (week, month, year)."""
    return tier_out(tiers.tier_create(store=request.store, **payload.model_dump()))


@tiers_router.get("", response=responses(TierList), summary="List tiers, newest first")
def tier_list(request, params: Query[ListParams]):
    return paginate(selectors.tiers_for_store(store=request.store), params, tier_out)


@tiers_router.get("/{id}", response=responses(TierOut), summary="Retrieve a tier")
def tier_retrieve(request, id: ObjectId):
    return tier_out(_tier(request, id))


@tiers_router.post("/{id}", response=responses(TierOut), summary="Update a tier")
def tier_update(request, id: ObjectId, payload: TierUpdateIn):
    """Changes only the parameters sent. New prices apply to members at their next renewal."""
    tier = tiers.tier_update(tier=_tier(request, id), **payload.model_dump(exclude_unset=True))
    return tier_out(selectors.tier_get(store=request.store, tier_id=tier.pk))


@tiers_router.post("/{id}/archive", response=responses(TierOut), summary="Archive a tier")
def tier_archive(request, id: ObjectId):
    """No new members; members keep their membership until they cancel."""
    tiers.tier_archive(tier=_tier(request, id))
    return tier_out(_tier(request, id))


@tiers_router.post("/{id}/posts", response=responses(TierOut), summary="Set the posts gated to a tier")
def tier_posts_set(request, id: ObjectId, payload: TierGatesIn):
    """Members of the tier read these posts (by their products, ``prod_…``) in full."""
    tiers.tier_gates_set(tier=_tier(request, id), product_ids=payload.posts)
    return tier_out(_tier(request, id))


router_refuse_other_methods(tiers_router)


def _subscription(request, subscription_id: str):
    return selectors.subscription_get(store=request.store, subscription_id=subscription_id)


@subscriptions_router.post("", response=responses(SubscriptionOut), summary="Give a complimentary membership")
def subscription_create(request, payload: SubscriptionCreateIn):
    """Free until ``ends_at``; it ends then unless the member chooses to pay."""
    try:
        tier = selectors.tier_get(store=request.store, tier_id=payload.tier)
    except TierNotFound:
        raise InvalidRequest("No such tier.", param="tier", code="resource_missing") from None
    sub = services.subscription_complimentary_create(tier=tier, email=payload.email, ends_at=payload.ends_at)
    return subscription_out(sub)


@subscriptions_router.get("", response=responses(SubscriptionList), summary="List subscriptions, newest first")
def subscription_list(request, params: Query[ListParams], filters: Query[SubscriptionListFilter]):
    qs = selectors.subscriptions_for_store(store=request.store, status=filters.status, tier_id=filters.tier)
    return paginate(qs, params, subscription_out)


@subscriptions_router.get("/{id}", response=responses(SubscriptionOut), summary="Retrieve a subscription")
def subscription_retrieve(request, id: ObjectId):
    return subscription_out(_subscription(request, id))


@subscriptions_router.post("/{id}/cancel", response=responses(SubscriptionOut), summary="Cancel a subscription")
def subscription_cancel(request, id: ObjectId, payload: SubscriptionCancelIn):
    """At the period's end (the default), or now with an optional pro-rata refund."""
    sub = services.subscription_cancel(subscription=_subscription(request, id), at_period_end=payload.at_period_end,
                                       refund=payload.refund)
    return subscription_out(_subscription(request, sub.pk))


@subscriptions_router.post("/{id}/pause", response=responses(SubscriptionOut), summary="Pause a subscription")
def subscription_pause(request, id: ObjectId, payload: SubscriptionPauseIn):
    """Skip 1 to 3 periods from the current one's end: nothing charged, no access meanwhile."""
    sub = services.subscription_pause(subscription=_subscription(request, id), periods=payload.periods)
    return subscription_out(_subscription(request, sub.pk))


@subscriptions_router.post("/{id}/resume", response=responses(SubscriptionOut), summary="Resume a paused subscription")
def subscription_resume(request, id: ObjectId):
    """A pause not started yet is forgotten. During a paused period the subscription is active
    again at once: a full period is charged from now (wallet or saved card) and renewals move to
    this day; a failed payment changes nothing (402)."""
    sub = services.subscription_resume(subscription=_subscription(request, id))
    return subscription_out(_subscription(request, sub.pk))


@subscriptions_router.post("/{id}/change", response=responses(SubscriptionOut), summary="Change a subscription's tier")
def subscription_change(request, id: ObjectId, payload: SubscriptionChangeIn):
    """An upgrade charges the prorated difference now (wallet or saved card); a downgrade or a
    change of interval takes effect at the next renewal."""
    sub = _subscription(request, id)
    try:
        tier = selectors.tier_get(store=request.store, tier_id=payload.tier)
    except TierNotFound:
        raise InvalidRequest("No such tier.", param="tier", code="resource_missing") from None
    sub = services.subscription_change(subscription=sub, tier=tier, interval=payload.interval)
    return subscription_out(_subscription(request, sub.pk))


@subscriptions_router.post("/{id}/change/undo", response=responses(SubscriptionOut), summary="Undo a change waiting for renewal")
def subscription_change_undo(request, id: ObjectId):
    """Forget a downgrade or change of interval chosen for the next renewal (409 when there is none)."""
    sub = services.subscription_change_undo(subscription=_subscription(request, id))
    return subscription_out(_subscription(request, sub.pk))


router_refuse_other_methods(subscriptions_router)


@customers_router.get("/{id}/subscriptions", response=responses(SubscriptionList), summary="List a customer's subscriptions")
def customer_subscriptions_list(request, id: ObjectId, params: Query[ListParams]):
    """Every membership the customer has or had at the store, newest first."""
    qs = selectors.subscriptions_for_customer(store=request.store, customer_id=id)
    return paginate(qs, params, subscription_out)


router_refuse_other_methods(customers_router)
