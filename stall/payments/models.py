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


class PaymentPurpose(models.TextChoices):
    CHECKOUT = "checkout", "Checkout"
    TOP_UP = "top_up", "Wallet top-up"
    TAB_SETTLEMENT = "tab_settlement", "Tab settlement"


class Payment(models.Model):
    """Money taken on a rail: for a checkout, or (with no store) to top up a wallet or settle a tab."""

    id = PrefixedIdField(prefix="pay")
    purpose = models.CharField(max_length=20, choices=PaymentPurpose.choices, default=PaymentPurpose.CHECKOUT)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    checkout = models.ForeignKey(Checkout, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    # Whose wallet or tab pays (wallet and tab rails), or is topped up or settled.
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
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
                condition=~Q(purpose="checkout") | (Q(checkout__isnull=False) & Q(store__isnull=False)),
                name="payments_checkout_payment_has_checkout",
            ),
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


class StripeAccount(models.Model):
    """A store's own Stripe keys. A store without one uses the platform's keys from the environment.

    The secret key must be usable to charge, so it is stored as given, not hashed: protect the
    database and its backups like the environment that holds the platform's key.
    """

    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="stripe_account")
    secret_key = models.CharField(max_length=255)
    publishable_key = models.CharField(max_length=255)
    webhook_secret = models.CharField(max_length=255, blank=True)
    api_base = models.URLField(blank=True, help_text="Leave blank for Stripe itself; set for a local Stripe peer.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class StripeEvent(models.Model):
    """An event Stripe sent to our webhook, stored before it is acted on so it is acted on once."""

    id = models.CharField(max_length=255, primary_key=True)  # Stripe's event id, evt_…
    store = models.ForeignKey(Store, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                              help_text="The store whose own account sent it; empty for the platform's account.")
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)


class SavedPaymentMethod(models.Model):
    """A buyer's card kept on a rail for charges made without them present (top-ups, tab settlement)."""

    id = PrefixedIdField(prefix="spm")
    email = models.EmailField(db_index=True)
    rail = models.CharField(max_length=20)
    # Whose Stripe account holds the customer: a store with its own keys, or (empty) the platform's.
    store = models.ForeignKey(Store, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    customer_ref = models.CharField(max_length=120, blank=True)
    method_ref = models.CharField(max_length=120)
    label = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)
    detached_at = models.DateTimeField(null=True, blank=True)


class OffSessionCharge(models.Model):
    """A charge of a saved payment method, keyed by the caller's idempotency key so a retry charges once."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    saved = models.ForeignKey(SavedPaymentMethod, on_delete=models.PROTECT, related_name="charges")
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="off_session_charge")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "idempotency_key"], name="payments_off_session_charge_key_unique"),
        ]
