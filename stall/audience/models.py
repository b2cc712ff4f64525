"""A store's audience: its email list (with the consent each address gave), broadcasts to
segments of it with one delivery row per recipient, and what the creator wants to be told.

Customers themselves are ``accounts.Customer`` (one per store and email), created by every
purchase, tip, unlock, membership, allowance, sign-up and import; this app reads what the product
domains record about them and never writes there."""

from django.db import models
from django.db.models import Q

from stall.accounts.models import Customer
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class SubscriberStatus(models.TextChoices):
    PENDING = "pending", "Awaiting confirmation"
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"


class SubscriberSource(models.TextChoices):
    FORM = "form", "Sign-up form"
    CHECKOUT = "checkout", "Checkout"
    IMPORT = "import", "Import"


class Subscriber(models.Model):
    """One address on a store's email list and the state of its consent.

    Only ``subscribed`` rows receive broadcasts. ``unsubscribed`` and ``bounced`` rows are kept
    (never deleted) so a later import or sign-up cannot quietly put the address back: a sign-up
    form can (the person asks again, and confirms by email), an import cannot."""

    id = PrefixedIdField(prefix="sub")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="subscribers")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    email = models.EmailField()  # lower case
    status = models.CharField(max_length=12, choices=SubscriberStatus.choices)
    source = models.CharField(max_length=10, choices=SubscriberSource.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    # The language of the page they joined from (a sign-up form, a checkout), for the broadcasts'
    # own words (the unsubscribe footer); "" is the default (English), as an import records.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "email"], name="audience_subscriber_unique_email")]
        indexes = [models.Index(fields=["store", "status"])]


class BroadcastStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class Broadcast(models.Model):
    """An email to a segment of the store's list, written in Markdown."""

    id = PrefixedIdField(prefix="bc")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="broadcasts")
    subject = models.CharField(max_length=200)
    body = models.TextField(max_length=100_000)  # Markdown
    # A segment from stall.audience.segments' registry ("subscribers", "product", "tier", ...) and
    # the id of the object it names, if any.
    segment = models.CharField(max_length=20, default="subscribers")
    segment_ref = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=BroadcastStatus.choices, default=BroadcastStatus.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Set once the recipients' delivery rows are written: the segment is read once, when sending starts.
    recipients_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["status", "scheduled_at"])]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class Delivery(models.Model):
    """One recipient of one broadcast. The row is claimed (pending → sending) by a conditional
    UPDATE before its message is handed to the mail server, and marked sent after: a crashed or
    doubled worker can therefore never send it twice. A row left ``sending`` by a crash is not
    retried (the message may have gone out); it is reported as unconfirmed."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries")
    email = models.EmailField()
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["broadcast", "email"], name="audience_delivery_once")]
        indexes = [models.Index(fields=["broadcast", "status"])]


class NotificationSettings(models.Model):
    """What the creator is emailed about. ``events_seen_at`` is how far the outbox has been read."""

    store = models.OneToOneField(Store, on_delete=models.CASCADE, primary_key=True, related_name="notification_settings")
    on_sale = models.BooleanField(default=True)
    on_tip = models.BooleanField(default=True)
    on_member = models.BooleanField(default=True)
    on_refund_request = models.BooleanField(default=True)
    on_pledge = models.BooleanField(default=True)
    daily_digest = models.BooleanField(default=False)
    events_seen_at = models.DateTimeField(null=True, blank=True)
    digest_sent_on = models.DateField(null=True, blank=True)


SUBSCRIBED = Q(status=SubscriberStatus.SUBSCRIBED)
