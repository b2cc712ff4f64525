"""API v1: webhook endpoints, their delivery log, and events."""

from ninja import Field, Query, Router, Schema

from stall.core.api import (
    ListParams,
    ObjectId,
    Text,
    paginate,
    responses,
    router_refuse_other_methods,
)

from . import selectors, webhooks
from .schemas import (
    EventList,
    EventOut,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointCreateIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointUpdateIn,
    event_out,
    webhook_delivery_out,
    webhook_endpoint_out,
)

router = Router()
events_router = Router()


@router.post("", response=responses(WebhookEndpointOut), summary="Register a webhook endpoint")
def webhook_endpoint_create(request, payload: WebhookEndpointCreateIn):
    """Events of the chosen types are POSTed to ``url``, signed with the returned ``secret`` the
    Standard Webhooks way. URLs in private or loopback ranges are refused."""
    endpoint = webhooks.webhook_endpoint_create(
        store=request.store, url=payload.url, enabled_events=payload.enabled_events, description=payload.description
    )
    return webhook_endpoint_out(endpoint)


@router.get("", response=responses(WebhookEndpointList), summary="List webhook endpoints")
def webhook_endpoint_list(request, params: Query[ListParams]):
    return paginate(selectors.webhook_endpoints_for_store(store=request.store), params, webhook_endpoint_out)


@router.get("/{id}", response=responses(WebhookEndpointOut), summary="Retrieve a webhook endpoint")
def webhook_endpoint_retrieve(request, id: ObjectId):
    return webhook_endpoint_out(webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id))


@router.post("/{id}", response=responses(WebhookEndpointOut), summary="Update a webhook endpoint")
def webhook_endpoint_update(request, id: ObjectId, payload: WebhookEndpointUpdateIn):
    endpoint = webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id)
    endpoint = webhooks.webhook_endpoint_update(
        endpoint=endpoint, url=payload.url, enabled_events=payload.enabled_events, description=payload.description,
        enabled=None if payload.disabled is None else not payload.disabled,
    )
    return webhook_endpoint_out(endpoint)


class DeletedOut(Schema):
    id: str
    object: str
    deleted: bool = Field(True)


@router.delete("/{id}", response=responses(DeletedOut), summary="Delete a webhook endpoint")
def webhook_endpoint_delete(request, id: ObjectId):
    endpoint = webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id)
    webhooks.webhook_endpoint_delete(endpoint=endpoint)
    return {"id": id, "object": "webhook_endpoint", "deleted": True}


@router.post("/{id}/roll_secret", response=responses(WebhookEndpointOut), summary="Replace the signing secret")
def webhook_endpoint_roll_secret(request, id: ObjectId):
    """The old secret stops signing at once; deliveries from now on use the new one."""
    endpoint = webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id)
    return webhook_endpoint_out(webhooks.webhook_endpoint_roll_secret(endpoint=endpoint))


@router.get("/{id}/deliveries", response=responses(WebhookDeliveryList), summary="The endpoint's delivery log, newest first")
def webhook_endpoint_deliveries_list(request, id: ObjectId, params: Query[ListParams]):
    endpoint = webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id)
    return paginate(selectors.webhook_deliveries_for_endpoint(endpoint=endpoint), params, webhook_delivery_out)


@router.post("/{id}/deliveries/{delivery_id}/redeliver", response=responses(WebhookDeliveryOut), summary="Send a delivery's event again")
def webhook_endpoint_deliveries_redeliver(request, id: ObjectId, delivery_id: ObjectId):
    webhooks.webhook_endpoint_get(store=request.store, endpoint_id=id)
    delivery = webhooks.webhook_delivery_redeliver(store=request.store, delivery_id=delivery_id, endpoint_id=id)
    return webhook_delivery_out(delivery)


router_refuse_other_methods(router)


class EventFilter(Schema):
    type: Text | None = Field(None, max_length=60, description="Only events of this type.")


@events_router.get("", response=responses(EventList), summary="List events, newest first")
def event_list(request, params: Query[ListParams], filters: Query[EventFilter]):
    return paginate(selectors.events_for_store(store=request.store, type=filters.type), params, event_out)


@events_router.get("/{id}", response=responses(EventOut), summary="Retrieve an event")
def event_retrieve(request, id: ObjectId):
    return event_out(selectors.event_get(store=request.store, event_id=id))


# The API root refuses the other methods of events_router once metering has added POST "" (the
# usage event batch) to it: stall/api.py.
