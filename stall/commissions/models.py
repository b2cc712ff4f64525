"""Commissions: a service a buyer pays for up front and the creator then makes for them.

A ``ServiceOffer`` holds a service product's terms (limited slots, days before a delivery is
accepted on the buyer's behalf). A ``Commission`` is one buyer's order of it: reserved with its
brief when the checkout is made, opened (``awaiting_delivery``) when the order is paid, with the
payment held in the store's escrow account as a pending ledger transfer to the store's balance;
posted when the buyer accepts the delivery, voided when the creator declines and refunds.
"""

import secrets

from django.db import models
from django.db.models import F, Q

from stall.catalog.models import Product
from stall.core.ids import PrefixedIdField
from stall.orders.models import Order
from stall.stores.models import Store


class ServiceOffer(models.Model):
    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True, related_name="service_offer")
    # None: no limit. Otherwise how many commissions may be open (reserved, awaiting delivery or
    # delivered) at once; ``taken`` counts them, moved by guarded updates only.
    slots = models.PositiveIntegerField(null=True, blank=True)
    taken = models.PositiveIntegerField(default=0)
    auto_accept_days = models.PositiveIntegerField(default=7)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(slots__isnull=True) | Q(taken__lte=F("slots")),
                                   name="commissions_offer_taken_within_slots"),
        ]


class CommissionStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"  # brief in, checkout not paid yet
    AWAITING_DELIVERY = "awaiting_delivery", "Awaiting delivery"
    DELIVERED = "delivered", "Delivered"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"  # its checkout was never paid


OPEN_STATUSES = (CommissionStatus.RESERVED, CommissionStatus.AWAITING_DELIVERY, CommissionStatus.DELIVERED)


def _access_token() -> str:
    return secrets.token_urlsafe(24)


class Commission(models.Model):
    id = PrefixedIdField(prefix="com")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="commissions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="commissions")
    checkout_id = models.CharField(max_length=40, unique=True)
    order = models.OneToOneField(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="commission")
    email = models.EmailField()
    brief = models.TextField(max_length=10000)
    status = models.CharField(max_length=20, choices=CommissionStatus.choices, default=CommissionStatus.RESERVED)
    # Whether this commission holds one of the offer's slots (given back once, when it closes).
    holds_slot = models.BooleanField(default=False)
    reserved_until = models.DateTimeField()
    # The buyer's page is reached by this secret link (in the receipt and the emails): no account.
    access_token = models.CharField(max_length=64, unique=True, default=_access_token)
    currency = models.CharField(max_length=3)
    amount_held = models.BigIntegerField(default=0)
    hold_transfer_id = models.CharField(max_length=40, blank=True)
    delivery_note = models.TextField(blank=True, max_length=10000)
    decline_reason = models.CharField(blank=True, max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    auto_accept_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    auto_accepted = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["store", "-id"]),
            models.Index(fields=["status", "auto_accept_at"]),
        ]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Author(models.TextChoices):
    BUYER = "buyer", "Buyer"
    CREATOR = "creator", "Creator"


class CommissionMessage(models.Model):
    commission = models.ForeignKey(Commission, on_delete=models.CASCADE, related_name="messages")
    author = models.CharField(max_length=10, choices=Author.choices)
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class FileRole(models.TextChoices):
    BRIEF = "brief", "Brief"
    DELIVERY = "delivery", "Delivery"


class CommissionFile(models.Model):
    id = PrefixedIdField(prefix="cfile")
    commission = models.ForeignKey(Commission, on_delete=models.CASCADE, related_name="files")
    role = models.CharField(max_length=10, choices=FileRole.choices)
    name = models.CharField(max_length=255)
    # In the "private" storage, served only through this app's views to the buyer or the creator.
    storage_name = models.CharField(max_length=500)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
