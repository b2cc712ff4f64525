"""API v1 shapes of webhook endpoints, their deliveries and events."""

from typing import Literal

from ninja import Field, Schema

from stall.core.api import InputSchema, Text, timestamp

from .models import Event, WebhookDelivery, WebhookEndpoint
from .webhooks import EVENT_TYPES

# What webhooks.target_check and _events_clean refuse, said in the document; they keep their codes.
_URL = {"pattern": r"^https?://[^/?#@\s]+", "format": "uri"}
_EVENTS = {
    "minItems": 1,
    "allOf": [{"anyOf": [{"items": {"const": "*"}}, {"items": {"enum": list(EVENT_TYPES)}}]}],
}


class WebhookEndpointCreateIn(InputSchema):
    url: Text = Field(
        ..., max_length=2000, description="Where to POST events: https://…", json_schema_extra=_URL
    )
    enabled_events: list[Text] = Field(
        ..., max_length=20, description='Event types, or ["*"] for all.', json_schema_extra=_EVENTS
    )
    description: Text = Field("", max_length=200)


class WebhookEndpointUpdateIn(InputSchema):
    url: Text | None = Field(None, max_length=2000, json_schema_extra=_URL)
    enabled_events: list[Text] | None = Field(None, max_length=20, json_schema_extra=_EVENTS)
    description: Text | None = Field(None, max_length=200)
    disabled: bool | None = Field(None, description="true to pause deliveries, false to resume them.")


class WebhookEndpointOut(Schema):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    description: str
    enabled_events: list[str]
    status: Literal["enabled", "disabled"]
    secret: str = Field(..., description="whsec_… Verify deliveries with it (Standard Webhooks).")
    disabled_reason: str
    created: int


class WebhookEndpointList(Schema):
    object: Literal["list"]
    data: list[WebhookEndpointOut]
    has_more: bool


class WebhookDeliveryOut(Schema):
    id: str
    object: Literal["webhook_delivery"]
    endpoint: str
    event: str
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    response_status: int | None
    response_body: str
    error: str
    next_attempt: int | None
    last_attempt: int | None
    created: int


class WebhookDeliveryList(Schema):
    object: Literal["list"]
    data: list[WebhookDeliveryOut]
    has_more: bool


class EventOut(Schema):
    id: str
    object: Literal["event"]
    type: str
    data: dict
    created: int


class EventList(Schema):
    object: Literal["list"]
    data: list[EventOut]
    has_more: bool


def webhook_endpoint_out(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.pk, "object": "webhook_endpoint", "url": endpoint.url, "description": endpoint.description,
        "enabled_events": endpoint.enabled_events, "status": endpoint.status, "secret": endpoint.secret,
        "disabled_reason": endpoint.disabled_reason, "created": timestamp(endpoint.created_at),
    }


def webhook_delivery_out(delivery: WebhookDelivery) -> dict:
    return {
        "id": delivery.pk, "object": "webhook_delivery", "endpoint": delivery.endpoint_id, "event": delivery.event_id,
        "event_type": delivery.event.type, "status": delivery.status, "attempts": delivery.attempts,
        "response_status": delivery.response_status, "response_body": delivery.response_body, "error": delivery.error,
        "next_attempt": timestamp(delivery.next_attempt_at), "last_attempt": timestamp(delivery.last_attempt_at),
        "created": timestamp(delivery.created_at),
    }


def event_out(event: Event) -> dict:
    return {"id": event.pk, "object": "event", "type": event.type, "data": event.data, "created": timestamp(event.created_at)}
