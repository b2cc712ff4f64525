from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from stall.core.email import email_send

from . import webhooks
from .models import WebhookEndpoint


@db_task()
def webhook_delivery_attempt(delivery_id: str) -> None:
    webhooks.delivery_attempt(delivery_id=delivery_id)


@db_task()
def events_dispatch_task(event_ids: list[str]) -> int:
    """After a lean spend commits: make the deliveries of the events it recorded."""
    return webhooks.events_dispatch(event_ids=event_ids)


@db_periodic_task(crontab(minute="*"))
def webhook_deliveries_retry() -> int:
    """Every minute, make the deliveries of events whose dispatch task was lost, and try again the
    deliveries whose backoff has passed."""
    webhooks.events_dispatch(event_ids=webhooks.events_undispatched())
    due = webhooks.deliveries_due()
    for delivery_id in due:
        webhooks.delivery_attempt(delivery_id=delivery_id)
    return len(due)


@db_task()
def webhook_endpoint_disabled_notify(endpoint_id: str) -> None:
    endpoint = WebhookEndpoint.objects.select_related("store__owner").get(pk=endpoint_id)
    email_send(
        to=endpoint.store.owner.email,
        subject=f"Webhook endpoint disabled: {endpoint.url}",
        template="integrations/email/endpoint_disabled",
        context={"endpoint": endpoint, "store": endpoint.store, "dashboard_url": f"{settings.BASE_URL}/dashboard/{endpoint.store.slug}/webhooks/"},
    )
