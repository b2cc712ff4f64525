"""API v1: the event batch (``POST /events``), a customer's usage, and meters, plans and usage
subscriptions. Each endpoint parses, calls one service or selector, serializes; another store's
meter, plan, subscription or customer is "not found".

``POST /events`` shares its path with the webhook events' list (integrations), so it is added to
that router by the API root (``event_ingest_add``), not mounted on a router of its own."""

import json
from json.encoder import encode_basestring_ascii as _text

from django.http import HttpResponse
from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods
from stall.core.errors import InvalidRequest

from . import billing, selectors, services
from .ingest import ACCEPTED, DUPLICATE, events_ingest, timestamp_parse
from .schemas import (
    EventsIn,
    EventsOut,
    MeterCreateIn,
    MeterList,
    MeterOut,
    MeterUpdateIn,
    PlanCreateIn,
    PlanList,
    PlanOut,
    PlanUpdateIn,
    UsageOut,
    UsageParams,
    UsageSubscriptionCardIn,
    UsageSubscriptionCreateIn,
    UsageSubscriptionList,
    UsageSubscriptionOut,
    cost_out,
    meter_out,
    plan_out,
    usage_subscription_out,
)

meters_router = Router()
plans_router = Router()
usage_subscriptions_router = Router()
customers_router = Router()  # mounted at /customers beside the wallets' and memberships' routes


def event_ingest(request, payload: EventsIn):
    """Record up to 1,000 usage events. Each is answered on its own: ``accepted``,
    ``duplicate`` (this id was already recorded: not counted again) or ``refused`` with an error
    (``timestamp_too_old``, ``timestamp_in_future``, ``invalid_timestamp``, ``customer_missing``,
    ``meter_missing``, ``invalid_property``, ``invalid_event``). More than 1,000 refuse the batch."""
    result = events_ingest(store=request.store, events=payload.events)
    # Written here rather than checked by the EventsOut schema: validating a thousand small
    # objects cost a fifth of the request (the schema still documents the answer).
    head = json.dumps({"object": "event_batch", "accepted": result.accepted, "duplicates": result.duplicates,
                       "refused": result.refused}, separators=(",", ":"))
    return HttpResponse(f'{head[:-1]},"data":[{_event_answers(result)}]}}', content_type="application/json")


_ANSWER_END = {ACCEPTED: ',"status":"accepted"}', DUPLICATE: ',"status":"duplicate"}'}


def _event_answers(result) -> str:
    """Each event's answer as json.dumps writes {"error", "id", "status"} compactly: an accepted
    or duplicate event's id is text, put between two fixed pieces (a dict a thousand times and
    its encoding cost three times as much); a refusal is encoded whole."""
    refusals = result.refusals
    return ",".join([
        json.dumps({"error": None, **refusals[i].as_dict()}, separators=(",", ":")) if i in refusals
        else '{"error":null,"id":' + _text(event_id) + _ANSWER_END[status]
        for i, (event_id, status) in enumerate(zip(result.ids, result.statuses))
    ])


def event_ingest_add(router: Router) -> None:
    """Add ``POST ""`` (the event batch) to the router mounted at /events."""
    router.post("", response=responses(EventsOut), summary="Send a batch of usage events")(event_ingest)


def _when(value: str | None, param: str):
    if value is None:
        return None
    raw = int(value) if value.isdigit() else value
    parsed = timestamp_parse(raw)
    if parsed is None:
        raise InvalidRequest("Give an ISO 8601 time with a zone, or Unix seconds.", param=param,
                             code="invalid_timestamp")
    return parsed


@customers_router.get("/{id}/usage", response=responses(UsageOut), by_alias=True,
                      summary="A customer's usage and its cost")
def customer_usage_retrieve(request, id: ObjectId, params: Query[UsageParams]):
    """Quantities and exact costs per meter over [from, to) — by default the customer's current
    period — and what was charged for it so far."""
    start, end = _when(params.start, "from"), _when(params.end, "to")
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("'to' must come after 'from'.", param="to")
    usage = selectors.customer_usage_get(store=request.store, customer_id=id, meter_key=params.meter, start=start,
                                         end=end)
    return {
        "customer": usage.customer.pk, "subscription": usage.subscription.pk if usage.subscription else None,
        "currency": usage.currency, "from": int(usage.start.timestamp()), "to": int(usage.end.timestamp()),
        "meters": [{"meter": u.meter.key, "name": u.meter.name, "aggregation": u.meter.aggregation,
                    "quantity": format(u.quantity.normalize(), "f") if u.quantity else "0", "cost": cost_out(u.exact)}
                   for u in usage.meters],
        "total": cost_out(usage.total), "charged": usage.charged,
    }


router_refuse_other_methods(customers_router)


@meters_router.post("", response=responses(MeterOut), summary="Create a meter")
def meter_create(request, payload: MeterCreateIn):
    return meter_out(services.meter_create(store=request.store, **payload.model_dump()))


@meters_router.get("", response=responses(MeterList), summary="List meters, newest first")
def meter_list(request, params: Query[ListParams]):
    return paginate(selectors.meters_for_store(store=request.store), params, meter_out)


@meters_router.get("/{id}", response=responses(MeterOut), summary="Retrieve a meter")
def meter_retrieve(request, id: ObjectId):
    return meter_out(selectors.meter_get(store=request.store, meter_id=id))


@meters_router.post("/{id}", response=responses(MeterOut), summary="Update a meter")
def meter_update(request, id: ObjectId, payload: MeterUpdateIn):
    """Changes only the parameters sent (not the key); periods not yet closed are rated anew."""
    meter = selectors.meter_get(store=request.store, meter_id=id)
    return meter_out(services.meter_update(meter=meter, **payload.model_dump(exclude_unset=True)))


router_refuse_other_methods(meters_router)


def _prices(payload) -> list | None:
    if payload.prices is None:
        return None
    return [p.model_dump(exclude_none=True) for p in payload.prices]


@plans_router.post("", response=responses(PlanOut), summary="Create a plan")
def plan_create(request, payload: PlanCreateIn):
    plan = services.plan_create(store=request.store, name=payload.name, fixed_fee=payload.fixed_fee,
                                prices=_prices(payload), tier=payload.tier)
    return plan_out(selectors.plan_get(store=request.store, plan_id=plan.pk))


@plans_router.get("", response=responses(PlanList), summary="List plans, newest first")
def plan_list(request, params: Query[ListParams]):
    return paginate(selectors.plans_for_store(store=request.store), params, plan_out)


@plans_router.get("/{id}", response=responses(PlanOut), summary="Retrieve a plan")
def plan_retrieve(request, id: ObjectId):
    return plan_out(selectors.plan_get(store=request.store, plan_id=id))


@plans_router.post("/{id}", response=responses(PlanOut), summary="Update a plan")
def plan_update(request, id: ObjectId, payload: PlanUpdateIn):
    """Changes only the parameters sent; ``prices`` replaces them all; ``tier`` "" detaches the plan."""
    plan = selectors.plan_get(store=request.store, plan_id=id)
    services.plan_update(plan=plan, name=payload.name, fixed_fee=payload.fixed_fee, prices=_prices(payload),
                         tier=payload.tier)
    return plan_out(selectors.plan_get(store=request.store, plan_id=id))


router_refuse_other_methods(plans_router)


def _subscription(request, subscription_id: str):
    return selectors.usage_subscription_get(store=request.store, subscription_id=subscription_id)


@usage_subscriptions_router.post("", response=responses(UsageSubscriptionOut), summary="Put a customer on a plan")
def usage_subscription_create(request, payload: UsageSubscriptionCreateIn):
    """``live`` charges the customer's wallet, under the allowance they gave the store, each time
    ``threshold`` minor units have accrued and at period end; ``arrears`` invoices at period end,
    paid from the wallet first (``wallet_first``) and else by the card ``payment_method``, saved
    for the customer now (a Stripe ``pm_…`` made with Stripe.js, or a sandbox test card)."""
    sub = services.usage_subscription_create(store=request.store, customer_id=payload.customer, plan_id=payload.plan,
                                             billing=payload.billing, threshold=payload.threshold,
                                             payment_method=payload.payment_method, wallet_first=payload.wallet_first)
    return usage_subscription_out(sub)


@usage_subscriptions_router.get("", response=responses(UsageSubscriptionList), summary="List usage subscriptions")
def usage_subscription_list(request, params: Query[ListParams]):
    return paginate(selectors.usage_subscriptions_for_store(store=request.store), params, usage_subscription_out)


@usage_subscriptions_router.get("/{id}", response=responses(UsageSubscriptionOut), summary="Retrieve a usage subscription")
def usage_subscription_retrieve(request, id: ObjectId):
    return usage_subscription_out(_subscription(request, id))


@usage_subscriptions_router.post("/{id}/cancel", response=responses(UsageSubscriptionOut), summary="Cancel")
def usage_subscription_cancel(request, id: ObjectId):
    return usage_subscription_out(services.usage_subscription_cancel(subscription=_subscription(request, id)))


@usage_subscriptions_router.post("/{id}/payment_method", response=responses(UsageSubscriptionOut),
                                 summary="Save a new card for an arrears subscription's invoices")
def usage_subscription_card_set(request, id: ObjectId, payload: UsageSubscriptionCardIn):
    """Saves the card (and/or ``wallet_first``); a past-due invoice is tried again at once."""
    sub = services.usage_subscription_card_set(subscription=_subscription(request, id), **payload.model_dump(exclude_unset=True))
    return usage_subscription_out(sub)


@usage_subscriptions_router.post("/{id}/retry", response=responses(UsageSubscriptionOut),
                                 summary="Retry a past-due subscription's charge now")
def usage_subscription_retry(request, id: ObjectId):
    return usage_subscription_out(billing.usage_subscription_retry(subscription=_subscription(request, id)))


router_refuse_other_methods(usage_subscriptions_router)
