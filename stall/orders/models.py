from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from stall.audience.models import Customer
from stall.catalog.models import Product, ProductFile
from stall.checkout.models import Checkout
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class OrderStatus(models.TextChoices):
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class Order(models.Model):
    id = PrefixedIdField(prefix="ord")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders")
    # None for a one-click spend (an unlock, a tip, an API charge), which needs no checkout.
    checkout = models.OneToOneField(Checkout, on_delete=models.PROTECT, related_name="order", null=True, blank=True)
    payment = models.OneToOneField("payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="order")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    email = models.EmailField(db_index=True)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PAID)
    currency = models.CharField(max_length=3)
    amount_total = models.BigIntegerField()
    amount_refunded = models.BigIntegerField(default=0)
    fee = models.BigIntegerField(default=0)
    # Of ``fee``, what came back with refunds (a wallet sale's fee share returns to the wallet's fee
    # pool; card processors keep theirs, so this stays 0 for card sales).
    fee_refunded = models.BigIntegerField(default=0)
    platform_fee = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount_total")),
                name="orders_refund_within_total",
            )
        ]
        indexes = [models.Index(fields=["store", "-id"])]

    @property
    def fee_net(self) -> int:
        return self.fee - self.fee_refunded

    @property
    def amount_net(self) -> int:
        return self.amount_total - self.amount_refunded - self.fee_net - self.platform_fee


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    unit_amount = models.BigIntegerField()
    quantity = models.PositiveIntegerField(default=1)


class Entitlement(models.Model):
    """The right to download a product's files, granted by a paid order."""

    id = PrefixedIdField(prefix="ent")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="entitlements")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="entitlements")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="entitlements")
    email = models.EmailField(db_index=True)
    download_limit = models.PositiveIntegerField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # "Has this reader unlocked this post?" is asked on every one-click unlock (stall.content),
        # by product and email without regard to case.
        indexes = [models.Index(F("product"), Lower("email"), name="orders_ent_product_email")]

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class DownloadCount(models.Model):
    """How often one file of an entitlement was downloaded; capped by the entitlement's limit."""

    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="download_counts")
    file = models.ForeignKey(ProductFile, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entitlement", "file"], name="orders_download_count_unique")]
