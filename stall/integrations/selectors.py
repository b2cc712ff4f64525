from django.db.models import QuerySet

from stall.core.errors import NotFound
from stall.stores.models import Store

from .models import Event, WebhookDelivery, WebhookEndpoint


def webhook_endpoints_for_store(*, store: Store) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(store=store).order_by("-pk")


def webhook_deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-pk")


def events_for_store(*, store: Store, type: str | None = None) -> QuerySet[Event]:
    qs = Event.objects.filter(store=store).order_by("-pk")
    return qs.filter(type=type) if type else qs


def event_get(*, store: Store, event_id: str) -> Event:
    event = Event.objects.filter(store=store, pk=event_id).first()
    if event is None:
        raise NotFound("No such event.")
    return event
