"""Outbound webhooks: events, signed deliveries, retries with backoff, auto-disable.

Signing follows Standard Webhooks: headers ``webhook-id`` (the event id, stable across retries so
receivers can de-duplicate), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` keyed with the
base64-decoded part of the ``whsec_`` secret).

Retries: a delivery that gets no 2xx answer is tried again after 5 s, 5 min, 30 min, 2 h, 5 h,
10 h and 10 h — eight attempts over about 28 hours — by the periodic task that picks up due
deliveries, so a lost queue message or a restart never loses an event. After
``STALL_WEBHOOK_DISABLE_AFTER`` failed attempts in a row the endpoint is disabled and the creator
is emailed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from stall.core.errors import InvalidRequest, NotFound
from stall.core.ids import new_ids
from stall.core.lazy import LazyModule
from stall.core.sql import COPY_FROM_ROWS, rows_insert, rows_table
from stall.stores.models import Store

from . import tasks
from .models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint, WebhookEndpointStatus

logger = logging.getLogger(__name__)
httpx = LazyModule("httpx")  # imported by the first delivery (see core.lazy)

EVENT_TYPES = (
    "order.paid",
    "order.refunded",
    "order.disputed",
    "dispute.closed",
    "checkout.expired",
    "payment.failed",
    "charge.succeeded",
    "post.unlocked",
    "tip.created",
    "wallet.topped_up",
    "subscription.created",
    "subscription.renewed",
    "subscription.past_due",
    "subscription.canceled",
    "subscription.ended",
    "subscription.updated",
    "usage.payment_failed",
    "pledge.created",
    "pledge.canceled",
    "pledge.collected",
    "pledge.collection_failed",
    "campaign.succeeded",
    "campaign.failed",
    "campaign.canceled",
    "commission.opened",
    "commission.delivered",
    "commission.accepted",
    "commission.declined",
)
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds after attempts 1..7
RESPONSE_BODY_LIMIT = 2000
TIMEOUT_SECONDS = 10


class WebhookEndpointInvalid(InvalidRequest):
    code = "invalid_webhook_endpoint"


def secret_generate() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- Where deliveries may go -----------------------------------------------------------------

def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return True
    if ip.is_loopback and settings.STALL_WEBHOOK_ALLOW_LOOPBACK:
        return True
    return settings.STALL_WEBHOOK_ALLOW_PRIVATE


def target_check(url: str) -> None:
    """Refuse URLs that are not http(s) or that resolve to private, loopback or link-local addresses.

    Checked when an endpoint is saved and again before every attempt, because DNS can change.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookEndpointInvalid("The URL must start with https:// (or http://) and name a host.", param="url")
    if parts.username or parts.password:
        raise WebhookEndpointInvalid("The URL must not contain a user name or password.", param="url")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise WebhookEndpointInvalid(f"The host {parts.hostname} could not be resolved.", param="url") from None
    for info in infos:
        if not _address_allowed(info[4][0]):
            raise WebhookEndpointInvalid(
                "Webhooks cannot go to private, loopback or link-local addresses.", param="url", code="webhook_target_forbidden"
            )


# --- Endpoints -------------------------------------------------------------------------------

def _events_clean(events) -> list[str]:
    if not events:
        raise WebhookEndpointInvalid("Choose at least one event type (or * for all).", param="enabled_events")
    if not isinstance(events, (list, tuple)) or not all(isinstance(e, str) for e in events):
        raise WebhookEndpointInvalid("enabled_events must be a list of event types.", param="enabled_events")
    events = sorted(set(events))
    if events != ["*"]:
        unknown = [e for e in events if e not in EVENT_TYPES]
        if unknown:
            raise WebhookEndpointInvalid(
                f"Unknown event type {unknown[0]}. Known: {', '.join(EVENT_TYPES)}, or *.", param="enabled_events"
            )
    return events


def webhook_endpoint_create(*, store: Store, url: str, enabled_events, description: str = "") -> WebhookEndpoint:
    if not isinstance(url, str) or len(url) > 2000:
        raise WebhookEndpointInvalid("Give the URL to deliver to.", param="url")
    events = _events_clean(enabled_events)  # before the DNS lookup: cheap checks first
    target_check(url)
    return WebhookEndpoint.objects.create(
        store=store, url=url, enabled_events=events,
        description=(description or "")[:200], secret=secret_generate(),
    )


def webhook_endpoint_get(*, store: Store, endpoint_id: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(store=store, pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


@transaction.atomic
def webhook_endpoint_update(*, endpoint: WebhookEndpoint, url=None, enabled_events=None, description=None, enabled=None) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if url is not None:
        target_check(url)
        endpoint.url = url
    if enabled_events is not None:
        endpoint.enabled_events = _events_clean(enabled_events)
    if description is not None:
        endpoint.description = description[:200]
    if enabled is not None:
        endpoint.status = WebhookEndpointStatus.ENABLED if enabled else WebhookEndpointStatus.DISABLED
        if enabled:
            endpoint.consecutive_failures = 0
            endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


def webhook_endpoint_roll_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.secret = secret_generate()
    endpoint.save(update_fields=["secret"])
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


# --- Events and deliveries -------------------------------------------------------------------

def event_emit(*, store_id: str, type: str, data: dict) -> Event:
    """Record an event and queue a delivery to every enabled endpoint that wants it.

    Call inside the transaction that made the change: the event exists exactly when the change
    does, and deliveries start only after it commits.
    """
    now = timezone.now()
    event = Event.objects.create(store_id=store_id, type=type, data=data, dispatched_at=now)
    _deliveries_make(event=event, now=now)
    return event


def _deliveries_make(*, event: Event, now) -> None:
    """A delivery for each enabled endpoint of the store that wants this event, attempted after commit."""
    store_id, type = event.store_id, event.type
    deliveries = [
        WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now)
        for endpoint in WebhookEndpoint.objects.filter(store_id=store_id, status=WebhookEndpointStatus.ENABLED)
        if "*" in endpoint.enabled_events or type in endpoint.enabled_events
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: [tasks.webhook_delivery_attempt(i) for i in ids])


@dataclass(frozen=True)
class EventRow:
    """An event for ``events_record``: its type and the object it carries."""

    type: str
    object: dict


# Whether a store has an enabled webhook endpoint: a column for a caller's own SELECT (the lean
# spend reads it with the buyer's funds), with the store's id as its one parameter.
ENDPOINTS_ENABLED_SQL = (
    f"EXISTS (SELECT 1 FROM {WebhookEndpoint._meta.db_table} we "
    f"WHERE we.store_id = %s AND we.status = '{WebhookEndpointStatus.ENABLED}')"
)


def events_record(*, store_id: str, events: list[EventRow], endpoints: bool = True) -> list[str]:
    """Record events in one INSERT, inside the caller's transaction (the outbox of the lean spend);
    their deliveries are made after it commits (``events_dispatch``). Returns the events' ids.

    ``endpoints=False``, from a caller that read in its own transaction that the store has no
    enabled endpoint (``ENDPOINTS_ENABLED_SQL``), records them as dispatched: there is nobody to
    deliver them to, so no task is queued and no second write follows each spend. An endpoint
    added later receives the events that come after it, as with Stripe."""
    if not events:
        return []
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    ids = new_ids("evt", len(events))
    encoder = DjangoJSONEncoder()
    rows = [(event_id, event.type, encoder.encode({"object": event.object})) for event_id, event in zip(ids, events)]
    # One statement whatever the number of events (the campaign deadline records a thousand at once).
    # Many go by COPY on PostgreSQL: a renewal group's 200 events took 80-130 ms as text arrays
    # through unnest, 12-35 ms by COPY (the JSON text is read into jsonb either way).
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) >= COPY_FROM_ROWS:
            dispatched = None if endpoints else now
            rows_insert(cursor, Event._meta.db_table, ("id", "store_id", "type", "data", "created_at", "dispatched_at"),
                        [[event_id, store_id, kind, data, now, dispatched] for event_id, kind, data in rows])
        else:
            table, params = rows_table("e", (("id", "text"), ("type", "text"), ("data", "text")), rows)
            data = "e.data::jsonb" if connection.vendor == "postgresql" else "e.data"
            cursor.execute(
                f"INSERT INTO {Event._meta.db_table} (id, store_id, type, data, created_at, dispatched_at) "
                f"SELECT e.id, %s, e.type, {data}, %s, %s FROM {table}",
                [store_id, now, None if endpoints else now, *params],
            )
    if endpoints:
        transaction.on_commit(lambda: tasks.events_dispatch_task(ids))
    return ids


def events_dispatch(*, event_ids: list[str]) -> int:
    """Make the deliveries of recorded events that have none yet. Each event is claimed by a
    conditional UPDATE, so the task after the commit and the periodic sweep never both make them.
    Returns how many events were dispatched here."""
    done = 0
    for event_id in event_ids:
        with transaction.atomic():
            now = timezone.now()
            if not Event.objects.filter(pk=event_id, dispatched_at__isnull=True).update(dispatched_at=now):
                continue
            _deliveries_make(event=Event.objects.get(pk=event_id), now=now)
            done += 1
    return done


def events_undispatched(*, limit: int = 500) -> list[str]:
    return list(Event.objects.filter(dispatched_at__isnull=True).order_by("pk").values_list("pk", flat=True)[:limit])


def event_payload(event: Event) -> bytes:
    return json.dumps(
        {"id": event.pk, "object": "event", "type": event.type, "created": int(event.created_at.timestamp()), "data": event.data},
        separators=(",", ":"), sort_keys=True,
    ).encode()


def delivery_attempt(*, delivery_id: str, now=None) -> WebhookDelivery:
    """Send one delivery if it is due and record the outcome; schedule the next try on failure.

    A delivery that is not due, finished, or being sent by another worker (its claim has not
    lapsed) is returned untouched.
    """
    claimed_at = now or timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint", "event").filter(pk=delivery_id).first()
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery
        # Only a due delivery is sent. One claimed by another worker (its claim pushes the next
        # attempt past the lease) or waiting out its backoff is left alone; the row lock (or
        # SQLite's single writer) makes this check and the claim below one step.
        if delivery.next_attempt_at is None or delivery.next_attempt_at > claimed_at:
            return delivery
        if delivery.endpoint.status != WebhookEndpointStatus.ENABLED:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.error = "The endpoint is disabled."
            delivery.save(update_fields=["status", "next_attempt_at", "error"])
            return delivery
        # Claim the attempt so a second worker (or the sweep) does not send it concurrently. The
        # claim lapses: if this process dies mid-attempt, the sweep sends the delivery later.
        lease = timedelta(seconds=settings.STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS)
        delivery.next_attempt_at = claimed_at + lease
        delivery.save(update_fields=["next_attempt_at"])
    endpoint, event = delivery.endpoint, delivery.event
    body = event_payload(event)
    timestamp = int(time.time())
    status_code, response_body, error = None, "", ""
    try:
        target_check(endpoint.url)
        response = httpx.post(
            endpoint.url, content=body, timeout=TIMEOUT_SECONDS, follow_redirects=False,
            headers={
                "content-type": "application/json",
                "user-agent": "Stall-Webhooks/1",
                "webhook-id": event.pk,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature(secret=endpoint.secret, msg_id=event.pk, timestamp=timestamp, body=body),
            },
        )
        status_code = response.status_code
        response_body = response.text[:RESPONSE_BODY_LIMIT]
    except WebhookEndpointInvalid as exc:
        error = exc.message
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    ok = status_code is not None and 200 <= status_code < 300
    return _delivery_record(delivery_id=delivery.pk, ok=ok, status_code=status_code, body=response_body, error=error, now=now)


@transaction.atomic
def _delivery_record(*, delivery_id, ok, status_code, body, error, now=None) -> WebhookDelivery:
    now = now or timezone.now()
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = status_code
    delivery.response_body = body
    delivery.error = error
    if ok:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.next_attempt_at = None
        endpoint.consecutive_failures = 0
    else:
        endpoint.consecutive_failures += 1
        if delivery.attempts <= len(RETRY_DELAYS):
            delivery.status = DeliveryStatus.PENDING
            delivery.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS[delivery.attempts - 1])
        else:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        if endpoint.status == WebhookEndpointStatus.ENABLED and endpoint.consecutive_failures >= settings.STALL_WEBHOOK_DISABLE_AFTER:
            _endpoint_disable(endpoint)
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
    delivery.save()
    endpoint.save(update_fields=["consecutive_failures", "status", "disabled_reason"])
    return delivery


def _endpoint_disable(endpoint: WebhookEndpoint) -> None:
    endpoint.status = WebhookEndpointStatus.DISABLED
    endpoint.disabled_reason = f"Disabled after {endpoint.consecutive_failures} failed deliveries in a row."
    # Deliveries still waiting would only fail again; they stay in the log as failed.
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None
    )
    endpoint_id = endpoint.pk
    transaction.on_commit(lambda: tasks.webhook_endpoint_disabled_notify(endpoint_id))


def deliveries_due(*, now=None, limit: int = 200) -> list[str]:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def webhook_delivery_redeliver(*, store: Store, delivery_id: str, endpoint_id: str | None = None) -> WebhookDelivery:
    """Send an event to the same endpoint again, as a new delivery, whatever happened before."""
    old = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id, endpoint__store=store)
    if endpoint_id is not None:
        old = old.filter(endpoint_id=endpoint_id)
    old = old.first()
    if old is None:
        raise NotFound("No such delivery.")
    new = WebhookDelivery.objects.create(endpoint=old.endpoint, event_id=old.event_id, next_attempt_at=timezone.now())
    transaction.on_commit(lambda: tasks.webhook_delivery_attempt(new.pk))
    return new
