"""Membership tiers, members' subscriptions and the record of each billing period.

A tier has one price per interval (weekly, monthly, yearly), each backed by a catalog product of
kind ``membership``: every payment for a tier (a join, a renewal, an upgrade's difference) is an
order of that product, on any rail, so refunds, receipts and the books see it like any sale. A
tier with no price is free (an audience sign-up). Posts are gated to tiers by ``TierGate`` rows
naming the post's product (memberships never imports content).

A ``Subscription`` is one reader's membership of one tier of a store; ``SubscriptionPeriod`` is
one of its billing periods, unique per (subscription, number): the row that makes a renewal
happen once (see ``billing``).
"""

import secrets

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from stall.catalog.models import Product
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class Interval(models.TextChoices):
    WEEK = "week", "Weekly"
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class TierStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class Tier(models.Model):
    id = PrefixedIdField(prefix="tier")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="tiers")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=5000)
    benefits = models.JSONField(default=list)  # a list of short lines
    position = models.PositiveIntegerField(default=0)  # order on the store page, smallest first
    trial_days = models.PositiveIntegerField(default=0)
    member_limit = models.PositiveIntegerField(null=True, blank=True)
    # Readers who pay per post for posts gated to this tier become members once their unlocks this
    # month reach the tier's monthly price (see services.cap_observe).
    cap_to_subscribe = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=TierStatus.choices, default=TierStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-id"])]
        constraints = [
            models.CheckConstraint(condition=Q(member_limit__isnull=True) | Q(member_limit__gt=0), name="memberships_limit_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return not any(True for _ in self.prices.all())


class TierPrice(models.Model):
    """What a tier costs per interval; the product is what each payment's order line sells."""

    id = PrefixedIdField(prefix="price")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="prices")
    interval = models.CharField(max_length=8, choices=Interval.choices)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    product = models.OneToOneField(Product, on_delete=models.PROTECT, related_name="tier_price")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tier", "interval"], name="memberships_one_price_per_interval"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="memberships_price_positive"),
        ]


class TierGate(models.Model):
    """A post (by its product) that members of ``tier`` read in full."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="gates")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tier", "product"], name="memberships_gate_unique")]
        indexes = [models.Index(fields=["product"])]


# Labels in the reader's language on their memberships page (the dashboard stays English).
class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", _("Trialing")
    ACTIVE = "active", _("Active")
    PAST_DUE = "past_due", _("Past due")  # a renewal failed; access kept while it is retried
    PAUSED = "paused", _("Paused")
    ENDED = "ended", _("Ended")


# Statuses that read gated posts.
ACCESS_STATUSES = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
LIVE_STATUSES = (*ACCESS_STATUSES, SubscriptionStatus.PAUSED)


class PaySource(models.TextChoices):
    WALLET = "wallet", _("Wallet")
    CARD = "card", _("Card")
    NONE = "none", _("Nothing to pay")  # free tier, complimentary, or a capped membership not renewing


class Origin(models.TextChoices):
    JOIN = "join", "Joined"
    CAP = "cap", "Cap-to-subscribe"
    COMPLIMENTARY = "complimentary", "Complimentary"


def feed_token_new() -> str:
    return secrets.token_urlsafe(24)


class Subscription(models.Model):
    id = PrefixedIdField(prefix="sub")
    # Not indexed alone: the (store, -id) index starts with it.
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="subscriptions", db_index=False)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="subscriptions")
    price = models.ForeignKey(TierPrice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="subscriptions")
    email = models.EmailField()  # lower case
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=SubscriptionStatus.choices)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.JOIN)
    pay_with = models.CharField(max_length=8, choices=PaySource.choices)
    saved_method = models.ForeignKey(
        "payments.SavedPaymentMethod", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Paying from the wallet: charge the saved card when the wallet cannot pay a renewal.
    card_fallback = models.BooleanField(default=False)
    # Periods are counted from the anchor (the first period's start), keeping its day of month.
    anchor_at = models.DateTimeField()
    anchor_offset = models.PositiveIntegerField(default=0)  # period n ends at bound(anchor_at, n + 1 - offset)
    period_number = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(null=True, blank=True)  # None: a free tier, never renews
    trial_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    pause_periods = models.PositiveSmallIntegerField(default=0)  # periods still to skip
    pending_price = models.ForeignKey(TierPrice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    past_due_since = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)  # failed retries of the current renewal
    next_retry_at = models.DateTimeField(null=True, blank=True)
    feed_token = models.CharField(max_length=64, unique=True, default=feed_token_new)
    # The language the reader joined in ("ko", "pt-br"; "" for English): the page's, or the
    # checkout's for a card join; renewal and dunning emails are written in it.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # No index on (status, current_period_end): the renewal task walks the primary key
            # (see renewals._due_batches), and one would make every renewal's UPDATE write all the
            # table's indexes (a period end moved) instead of none (PostgreSQL's HOT update).
            models.Index(fields=["store", "-id"]),
            models.Index(fields=["email"]),
        ]
        constraints = [
            # One live membership per reader and store: a double click joins once; a change of
            # tier changes this row.
            models.UniqueConstraint(
                fields=["store", "email"], condition=~Q(status="ended"), name="memberships_one_live_per_store",
            ),
        ]

    @property
    def has_access(self) -> bool:
        return self.status in ACCESS_STATUSES


class PeriodStatus(models.TextChoices):
    CHARGING = "charging", "Charging"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    FREE = "free", "Free"  # a trial, a complimentary or paused period, a free tier, a cap reached


class PaidWith(models.TextChoices):
    WALLET = "wallet", "Wallet"
    CARD = "card", "Card"
    NONE = "none", "Nothing charged"


class SubscriptionPeriod(models.Model):
    """One billing period of a subscription: made once per (subscription, number), which is what
    makes a renewal idempotent (see billing)."""

    # Not indexed alone: the (subscription, number) constraint's index starts with it.
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="periods", db_index=False)
    number = models.PositiveIntegerField()
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    price = models.ForeignKey(TierPrice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=PeriodStatus.choices)
    paid_with = models.CharField(max_length=8, choices=PaidWith.choices, default="none")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "number"], name="memberships_one_row_per_period"),
        ]


class PendingJoin(models.Model):
    """A card join (or upgrade) under way on the hosted payment page: what its paid order does."""

    checkout = models.OneToOneField("checkout.Checkout", on_delete=models.CASCADE, related_name="pending_join")
    price = models.ForeignKey(TierPrice, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    email = models.EmailField()
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    saved_method = models.ForeignKey(
        "payments.SavedPaymentMethod", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    save_card = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)


class CapTotal(models.Model):
    """What a reader paid this month for posts gated to a capped tier (cap-to-subscribe)."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField()
    month = models.DateField()  # the first day of the calendar month (UTC)
    total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tier", "email", "month"], name="memberships_cap_total_unique")]


class CapExcess(models.Model):
    """What a card order paid past a capped tier's monthly price, owed back to the reader.

    Written in the transaction that counts the order towards the cap, so the refund queued after
    its commit (``cap_refunds``) cannot be lost with a process that stops in between: the sweep
    (``tasks.cap_excess_sweep``) gives back what is still unsettled a while later. Settled once
    the refund is made, or found already made, or cannot be made by the rail (Lightning)."""

    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, primary_key=True, related_name="+")
    amount = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], condition=Q(settled_at__isnull=True), name="memberships_excess_unsettled")]
