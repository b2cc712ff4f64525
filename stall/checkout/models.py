from django.db import models
from django.db.models import F, Q

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
    # The card paid with is kept for charges made later without the buyer (a membership's
    # renewals): on Stripe the PaymentIntent is made for a Customer and set up for future use.
    save_card = models.BooleanField(default=False, db_default=False)
    # The discount code applied, and what it took off the subtotal, as priced at creation.
    discount = models.ForeignKey("Discount", on_delete=models.PROTECT, null=True, blank=True, related_name="checkouts")
    discount_code = models.CharField(max_length=40, blank=True, default="", db_default="")
    amount_discount = models.BigIntegerField(default=0, db_default=0)
    # The signed-in buyer who opened it, if any: a once-per-customer code is once per account too.
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
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
    # This line's share of the checkout's discount.
    amount_discount = models.BigIntegerField(default=0, db_default=0)

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity

    @property
    def amount_total(self) -> int:
        return self.amount - self.amount_discount


class DiscountKind(models.TextChoices):
    PERCENT = "percent", "Percent off"
    FIXED = "fixed", "Amount off"


class Discount(models.Model):
    """A code a buyer enters at checkout (or follows in a ``?code=`` link) for a lower price.

    ``times_used`` counts the checkouts that claimed the code at payment; it is raised by one
    guarded UPDATE (``times_used < max_uses``), and the database refuses it past the limit too, so
    buyers racing for the last use cannot go over it.
    """

    id = PrefixedIdField(prefix="disc")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="discounts")
    # Kept upper-case: buyers type "spring", "Spring" and "SPRING" for the same code.
    code = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, choices=DiscountKind.choices)
    percent_off = models.PositiveSmallIntegerField(null=True, blank=True)
    amount_off = models.BigIntegerField(null=True, blank=True)  # minor units of the store's currency
    currency = models.CharField(max_length=3)
    # Empty: every product of the store.
    products = models.ManyToManyField(Product, blank=True, related_name="+")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    times_used = models.PositiveIntegerField(default=0)
    once_per_customer = models.BooleanField(default=False)
    minimum_subtotal = models.BigIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "code"], name="checkout_discount_unique_code"),
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(times_used__lte=F("max_uses")),
                name="checkout_discount_within_max_uses",
            ),
            models.CheckConstraint(
                condition=(Q(kind="percent", percent_off__gte=1, percent_off__lte=100, amount_off__isnull=True)
                           | Q(kind="fixed", amount_off__gte=1, percent_off__isnull=True)),
                name="checkout_discount_one_amount",
            ),
            models.CheckConstraint(condition=Q(minimum_subtotal__gte=0), name="checkout_discount_minimum_non_negative"),
        ]
        indexes = [models.Index(fields=["store", "-id"])]

    def __str__(self) -> str:
        return self.code


class DiscountRedemption(models.Model):
    """One use of a discount: claimed by a checkout when it is paid, before any money moves, and
    given back if that checkout expires unpaid. ``email_once`` and ``buyer_once`` are set only for
    a once-per-customer code, so the database refuses a second use by the same email or account."""

    discount = models.ForeignKey(Discount, on_delete=models.CASCADE, related_name="redemptions")
    checkout = models.OneToOneField(Checkout, on_delete=models.CASCADE, related_name="discount_redemption")
    email = models.EmailField()
    email_once = models.CharField(max_length=254, blank=True, default="")
    buyer_once = models.ForeignKey("accounts.Buyer", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["discount", "email_once"], condition=~Q(email_once=""), name="checkout_redemption_once_email"
            ),
            models.UniqueConstraint(
                fields=["discount", "buyer_once"], condition=Q(buyer_once__isnull=False),
                name="checkout_redemption_once_buyer",
            ),
        ]
