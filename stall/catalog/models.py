from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class ProductKind(models.TextChoices):
    DOWNLOAD = "download", _("Download")
    # A post behind a paywall: buying it unlocks the post (stall.content holds its text).
    POST = "post", _("Post")
    # The store's tip jar: pay what you want, with a message (stall.content's tips).
    TIP = "tip", _("Tip")
    # Charges an integrator makes through the API against a buyer's allowance; one per store.
    CHARGE = "charge", _("API charge")
    # One price of a membership tier (stall.memberships): each payment for the tier, a join or a
    # renewal, is an order of this product, so refunds, receipts and the books see it.
    MEMBERSHIP = "membership", _("Membership")
    # Other products of the store sold together at the bundle's own price: buying it grants each
    # part (orders makes an entitlement per part). Its parts are BundleItems.
    BUNDLE = "bundle", _("Bundle")
    # A gift card of the store (stall.wallets' gift cards): buying it issues a card with a code,
    # emailed to its recipient, whose balance is redeemed into the recipient's wallet.
    GIFT_CARD = "gift_card", _("Gift card")
    # A commission (stall.commissions): paid up front with a brief, made and delivered by the
    # creator, the money held until the buyer accepts.
    SERVICE = "service", _("Commission")


# Kinds the store page lists as products; the others have pages of their own or none.
LISTED_KINDS = (ProductKind.DOWNLOAD, ProductKind.BUNDLE, ProductKind.GIFT_CARD, ProductKind.SERVICE)
# What a bundle may hold: products that deliver files (not another bundle).
BUNDLE_PART_KINDS = (ProductKind.DOWNLOAD,)


class PriceType(models.TextChoices):
    FIXED = "fixed", "Fixed price"
    PAY_WHAT_YOU_WANT = "pay_what_you_want", "Pay what you want"


class ProductStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Product(models.Model):
    id = PrefixedIdField(prefix="prod")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="products")
    kind = models.CharField(max_length=16, choices=ProductKind.choices, default=ProductKind.DOWNLOAD)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80)
    description = models.TextField(blank=True, max_length=20000)  # Markdown
    cover = models.ImageField(upload_to="covers/", blank=True)
    price_type = models.CharField(max_length=20, choices=PriceType.choices, default=PriceType.FIXED)
    # Fixed: the price. Pay what you want: the minimum (0 means the product can be had free).
    amount = models.BigIntegerField(default=0)
    suggested_amount = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=ProductStatus.choices, default=ProductStatus.DRAFT)
    download_limit = models.PositiveIntegerField(default=10)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "slug"], name="catalog_product_unique_slug"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="catalog_product_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(suggested_amount__isnull=True) | Q(suggested_amount__gte=F("amount")),
                name="catalog_product_suggested_at_least_minimum",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.amount == 0 and self.price_type == PriceType.FIXED or (
            self.price_type == PriceType.PAY_WHAT_YOU_WANT and self.amount == 0
        )


class ProductFile(models.Model):
    id = PrefixedIdField(prefix="file")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    # Kept in the "private" storage: only reachable through a signed download link.
    storage_name = models.CharField(max_length=500)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=120, default="application/octet-stream")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.name


class BundleItem(models.Model):
    """One part of a bundle: buying the bundle grants the part as if it had been bought."""

    bundle = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="bundle_items")
    part = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="in_bundles")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bundle", "part"], name="catalog_bundle_item_unique"),
            models.CheckConstraint(condition=~Q(bundle=F("part")), name="catalog_bundle_not_itself"),
        ]
        ordering = ["pk"]
