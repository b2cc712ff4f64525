from django.db import models

from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class ApiKey(models.Model):
    """A store's secret API key. Only a SHA-256 of the secret is kept; the secret is shown once."""

    id = PrefixedIdField(prefix="key")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16)  # the first characters, to tell keys apart in lists
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class WebhookEndpointStatus(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class WebhookEndpoint(models.Model):
    """Where a store wants its events delivered, signed the Standard Webhooks way."""

    id = PrefixedIdField(prefix="we")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Event types this endpoint receives; ["*"] for all.
    enabled_events = models.JSONField(default=list)
    secret = models.CharField(max_length=80)
    status = models.CharField(max_length=10, choices=WebhookEndpointStatus.choices, default=WebhookEndpointStatus.ENABLED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Event(models.Model):
    """Something that happened in a store, as sent to its webhook endpoints."""

    id = PrefixedIdField(prefix="evt")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="events")
    # Not indexed: events are listed by store (its index) and then, if asked, by type; an index
    # here would be one more page written by every spend.
    type = models.CharField(max_length=60)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # When its deliveries were made. An event recorded by a lean spend (``events_record``) has none
    # yet: they are made after the spend commits, or by the periodic sweep if that task was lost.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["dispatched_at"], condition=models.Q(dispatched_at__isnull=True), name="integ_event_undispatched")]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint, with the outcome of its latest attempt."""

    id = PrefixedIdField(prefix="whd")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)  # trimmed
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
