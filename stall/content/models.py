"""Posts behind a paywall, and tips.

A post is a product of kind ``post`` (its name is the title, its amount the price, 0 for a free
post; its status and slug are the product's) plus the text held here. Unlocking a post is buying
that product: the order's entitlement is the right to read it, so unlocked posts sit in the
buyer's library next to downloads, and a refund revokes it.

A store's tip jar is backed by one product of kind ``tip`` (pay what you want, at least the jar's
minimum). Each paid tip order gets a ``Tip`` row holding what the tipper wrote.
"""

from django.db import models
from django.db.models import F, Q

from stall.catalog.models import Product
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class Post(models.Model):
    id = PrefixedIdField(prefix="post")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="posts")
    product = models.OneToOneField(Product, on_delete=models.PROTECT, related_name="post")
    # Markdown. The free preview is everything above a line "<!-- more -->", or else the first
    # paragraphs (STALL_POST_PREVIEW_PARAGRAPHS); see stall.content.preview.
    body = models.TextField(blank=True, max_length=100_000)
    # When it was first published; stays when the post is unpublished and published again.
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-published_at"])]

    def __str__(self) -> str:
        return self.product.name

    @property
    def title(self) -> str:
        return self.product.name

    @property
    def slug(self) -> str:
        return self.product.slug

    @property
    def amount(self) -> int:
        return self.product.amount

    @property
    def currency(self) -> str:
        return self.product.currency

    @property
    def status(self) -> str:
        return self.product.status

    @property
    def is_free(self) -> bool:
        return self.product.amount == 0


class UnlockRefund(models.Model):
    """A reader's own refund of an unlock (Blendle's model), counted against a monthly limit."""

    id = PrefixedIdField(prefix="ulr")
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, related_name="unlock_refunds")
    post = models.ForeignKey(Post, on_delete=models.PROTECT, related_name="unlock_refunds")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="unlock_refund")
    # Set once the refund went through; a reservation whose refund failed is deleted.
    refund = models.OneToOneField("payments.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reason = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class TipJar(models.Model):
    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="tip_jar")
    product = models.OneToOneField(Product, on_delete=models.PROTECT, related_name="tip_jar")
    enabled = models.BooleanField(default=False)
    title = models.CharField(max_length=120, default="Leave a tip")
    # The amounts offered as buttons, in minor units of the store's currency.
    presets = models.JSONField(default=list)
    minimum = models.BigIntegerField()
    maximum = models.BigIntegerField()
    goal_amount = models.BigIntegerField(null=True, blank=True)
    goal_title = models.CharField(max_length=120, blank=True)
    # Whether the store shows its supporters; each tipper still chooses whether their name is shown.
    show_supporters = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(minimum__gt=0), name="content_tipjar_minimum_positive"),
            models.CheckConstraint(condition=Q(maximum__gte=F("minimum")), name="content_tipjar_maximum_at_least_minimum"),
            models.CheckConstraint(condition=Q(goal_amount__isnull=True) | Q(goal_amount__gt=0), name="content_tipjar_goal_positive"),
        ]

    @property
    def currency(self) -> str:
        return self.product.currency


class PendingTip(models.Model):
    """What a tipper wrote while their payment is under way (a card tip on the payment page).

    When the checkout's order is paid, a ``Tip`` is made from it; an abandoned checkout leaves
    this row behind and nothing else.
    """

    checkout = models.OneToOneField("checkout.Checkout", on_delete=models.CASCADE, related_name="pending_tip")
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    name = models.CharField(max_length=80, blank=True)
    message = models.CharField(max_length=500, blank=True)
    public = models.BooleanField(default=False)


class Tip(models.Model):
    id = PrefixedIdField(prefix="tip")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="tips")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="tip")
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, null=True, blank=True, related_name="tips")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    name = models.CharField(max_length=80, blank=True)
    message = models.CharField(max_length=500, blank=True)
    # The tipper agreed to show their name and message in the public supporters list.
    public = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-id"])]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="content_tip_amount_positive")]
