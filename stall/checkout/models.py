from django.db import models
from django.db.models import Q

from stall.catalog.models import Product
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class CheckoutStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    EXPIRED = "expired", "Expired"


class Checkout(models.Model):
    """A buyer's intent to pay for some products, with every price snapshotted at creation."""

    id = PrefixedIdField(prefix="chk")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="checkouts")
    status = models.CharField(max_length=10, choices=CheckoutStatus.choices, default=CheckoutStatus.OPEN)
    email = models.EmailField()
    currency = models.CharField(max_length=3)
    amount_subtotal = models.BigIntegerField()
    amount_total = models.BigIntegerField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # The last thing that went wrong with a payment, shown to the buyer while the checkout is open.
    last_error_code = models.CharField(max_length=40, blank=True)
    last_error_message = models.CharField(max_length=255, blank=True)
    # The language the buyer bought in ("ko", "pt-br"; "" for English), for their receipt.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")
    # The buyer ticked "email me news from this store" (unticked by default). Checkout only records
    # the choice; the audience app, above, reads it when the order is paid.
    email_consent = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount_total__gte=0), name="checkout_total_non_negative")]
        indexes = [models.Index(fields=["status", "expires_at"])]


class CheckoutLine(models.Model):
    checkout = models.ForeignKey(Checkout, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    unit_amount = models.BigIntegerField()
    quantity = models.PositiveIntegerField(default=1)

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity
