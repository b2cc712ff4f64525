from django.db import models
from django.db.models import Q

from stall.checkout.models import Checkout
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class PaymentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    REQUIRES_ACTION = "requires_action", "Requires action"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


ACTIVE_PAYMENT_STATUSES = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.SUCCEEDED)


class Payment(models.Model):
    id = PrefixedIdField(prefix="pay")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="payments")
    checkout = models.ForeignKey(Checkout, on_delete=models.PROTECT, related_name="payments")
    rail = models.CharField(max_length=20)
    payment_method = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PROCESSING)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    fee = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    rail_reference = models.CharField(max_length=120, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One live payment per checkout: a double click or a replayed confirm cannot charge twice.
            models.UniqueConstraint(
                fields=["checkout"],
                condition=Q(status__in=["processing", "requires_action", "succeeded"]),
                name="payments_one_active_payment_per_checkout",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=models.F("amount")),
                name="payments_refund_within_amount",
            ),
        ]


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Refund(models.Model):
    id = PrefixedIdField(prefix="re")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", null=True, blank=True)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    failure_message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_refund_amount_positive")]
