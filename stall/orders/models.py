from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from stall.accounts.models import Customer
from stall.catalog.models import Product, ProductFile
from stall.checkout.models import Checkout
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class DisputeState(models.TextChoices):
    """Where an order's chargeback stands (its Dispute, in payments, has the processor's own status)."""

    NONE = "", "Not disputed"
    OPEN = "open", "Disputed"
    WON = "won", "Dispute won"
    LOST = "lost", "Dispute lost"
    CLOSED = "closed", "Inquiry closed"


class OrderStatus(models.TextChoices):
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class Order(models.Model):
    id = PrefixedIdField(prefix="ord")
    # No index of its own: the (store, -id) index below serves every lookup by store. Each index
    # is one more page a spend writes to the database (an unlock wrote 44 pages to SQLite's WAL).
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders", db_index=False)
    # None for a one-click spend (an unlock, a tip, an API charge), which needs no checkout.
    checkout = models.OneToOneField(Checkout, on_delete=models.PROTECT, related_name="order", null=True, blank=True)
    payment = models.OneToOneField("payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="order")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    email = models.EmailField(db_index=True)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PAID)
    currency = models.CharField(max_length=3)
    amount_total = models.BigIntegerField()
    amount_refunded = models.BigIntegerField(default=0)
    # The processing fee the sale paid: a card sale's own card fee; a wallet sale's share of its
    # buyer's top-up fee; a tab sale's share of the settlement's card fee (0 until it is settled).
    fee = models.BigIntegerField(default=0)
    # Of ``fee``, what came back with refunds (a wallet sale's fee share returns to the wallet's fee
    # pool; card processors keep theirs, so this stays 0 for card and tab sales).
    fee_refunded = models.BigIntegerField(default=0)
    platform_fee = models.BigIntegerField(default=0)
    # Of ``platform_fee``, what the platform gave back with refunds (in proportion to them).
    platform_fee_refunded = models.BigIntegerField(default=0)
    # A chargeback: what the card processor took back from the store for it (less what it gave
    # back when the store won), and the processor's dispute fee (less any it returned).
    amount_disputed = models.BigIntegerField(default=0, db_default=0)
    dispute_fee = models.BigIntegerField(default=0, db_default=0)
    dispute_state = models.CharField(max_length=8, choices=DisputeState.choices, blank=True, default="", db_default="")
    # False for a test order: paid with test money (a test card, or a wallet's test money). It is
    # shown as "Test", and its money is in the store's test balance, never in its real one.
    livemode = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount_total")),
                name="orders_refund_within_total",
            ),
            models.CheckConstraint(
                condition=Q(amount_disputed__gte=0) & Q(dispute_fee__gte=0), name="orders_dispute_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(fee_refunded__gte=0) & Q(fee_refunded__lte=F("fee")),
                name="orders_fee_refund_within_fee",
            ),
            models.CheckConstraint(
                condition=Q(platform_fee_refunded__gte=0)
                & Q(platform_fee_refunded__lte=F("platform_fee")),
                name="orders_platform_fee_refund_within_fee",
            ),
        ]
        indexes = [models.Index(fields=["store", "-id"])]

    # An order's net is defined by the ledger: what the transfers referencing it moved into its
    # store's balance (``selectors.order_ledger_totals``). These columns are kept in step with
    # those transfers, in the same transactions, so that lists and sums can read them instead;
    # the tests check the two agree for every rail, refund and tab settlement.
    @property
    def fee_net(self) -> int:
        """The processing fee the sale still costs the store after refunds."""
        return self.fee - self.fee_refunded

    @property
    def platform_fee_net(self) -> int:
        """The platform's fee the store still pays after refunds."""
        return self.platform_fee - self.platform_fee_refunded

    @property
    def net(self) -> int:
        """What the order moved into the store's balance, all refunds, chargebacks and fees counted."""
        return (
            self.amount_total - self.amount_refunded - self.amount_disputed - self.dispute_fee
            - self.fee_net - self.platform_fee_net
        )

    @property
    def disputed(self) -> bool:
        return self.dispute_state != DisputeState.NONE

    @property
    def amount_net(self) -> int:
        return self.net


# The same figures as database expressions, for sums over many orders in one query.
ORDER_FEE_NET = F("fee") - F("fee_refunded")
ORDER_PLATFORM_FEE_NET = F("platform_fee") - F("platform_fee_refunded")
ORDER_NET = (
    F("amount_total") - F("amount_refunded") - F("amount_disputed") - F("dispute_fee") - ORDER_FEE_NET
    - ORDER_PLATFORM_FEE_NET
)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    unit_amount = models.BigIntegerField()
    quantity = models.PositiveIntegerField(default=1)
    # This line's share of the order's discount; what the buyer paid for it is ``amount_paid``.
    amount_discount = models.BigIntegerField(default=0, db_default=0)
    # What refunds of this line gave back (orders.refunds' line refunds).
    amount_refunded = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0), name="orders_line_refund_non_negative",
            ),
        ]

    @property
    def amount_paid(self) -> int:
        return self.unit_amount * self.quantity - self.amount_discount


class Entitlement(models.Model):
    """The right to download a product's files, granted by a paid order."""

    id = PrefixedIdField(prefix="ent")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="entitlements")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="entitlements")
    # The line that granted it (a bundle's line grants one per part); None when written by the
    # lean spend, whose lines are the entitlements' products.
    line = models.ForeignKey("OrderLine", on_delete=models.CASCADE, null=True, blank=True, related_name="entitlements",
                             db_index=False)  # indexed where set (below)
    # No index of its own: orders_ent_product_email (below) starts with it.
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="entitlements", db_index=False)
    # No index of its own: every lookup by email ignores case (LOWER in the product index below;
    # Django's iexact, which neither database answers from a plain index on the column).
    email = models.EmailField()
    download_limit = models.PositiveIntegerField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # "Has this reader unlocked this post?" is asked on every one-click unlock (stall.content),
        # by product and email without regard to case.
        indexes = [
            models.Index(F("product"), Lower("email"), name="orders_ent_product_email"),
            # Only where set: the lean spend's entitlements have no line, and an index they would
            # all be written to is one more page per spend.
            models.Index(fields=["line"], condition=Q(line__isnull=False), name="orders_ent_by_line"),
        ]

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


class LineRefund(models.Model):
    """Which line of its order a refund is for, when it is for one line alone: its amount is
    counted against that line, and refunding the line in full revokes what the line granted."""

    refund = models.OneToOneField("payments.Refund", on_delete=models.CASCADE, related_name="line_refund")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="refunds")
class LicensePolicy(models.Model):
    """A product that issues a license key with each order of it, and the keys' terms."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="license_policy")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="license_policies")
    enabled = models.BooleanField(default=True)
    # The key's shape: each # is a random character of Crockford's base32; anything else is kept
    # as written ("ACME-#####-#####-#####-#####"). At least 20 #: 100 random bits.
    key_format = models.CharField(max_length=80, default="#####-#####-#####-#####-#####")
    activation_limit = models.PositiveIntegerField(null=True, blank=True)  # None: unlimited
    valid_days = models.PositiveIntegerField(null=True, blank=True)  # None: never expires
    # The price of one more activation past the limit, charged to the buyer's wallet or tab when
    # they have allowed it for their key (LicenseSeatConsent); None: no extra seats are sold.
    extra_seat_amount = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["store", "enabled"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(extra_seat_amount__isnull=True) | Q(extra_seat_amount__gt=0), name="orders_extra_seat_amount_positive",
            ),
        ]


class LicenseStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"


class LicenseKey(models.Model):
    """A key issued by a paid order. ``activations_used`` counts live activations and is only
    changed by guarded UPDATEs, so simultaneous activations never pass the limit."""

    id = PrefixedIdField(prefix="lic")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="license_keys")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="license_keys")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="license_keys")
    email = models.EmailField()
    key = models.CharField(max_length=80)
    key_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=LicenseStatus.choices, default=LicenseStatus.ACTIVE)
    disabled_reason = models.CharField(max_length=40, blank=True)
    activation_limit = models.PositiveIntegerField(null=True, blank=True)
    activations_used = models.PositiveIntegerField(default=0)
    # Of ``activation_limit``, the seats bought one by one past the limit (LicenseSeat).
    extra_seats = models.PositiveIntegerField(default=0, db_default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(activation_limit__isnull=True) | Q(activations_used__lte=F("activation_limit")),
                name="orders_license_within_limit",
            ),
        ]
        indexes = [models.Index(fields=["store", "-id"])]


class LicenseSeatConsent(models.Model):
    """The buyer's standing permission, given on their library page, for an activation of their key
    past its limit to buy one more seat from their wallet or tab, up to ``max_extra_seats``. The
    public activate call is authenticated by the key alone, so this is what lets it charge."""

    id = PrefixedIdField(prefix="lsc")
    license = models.OneToOneField(LicenseKey, on_delete=models.CASCADE, related_name="seat_consent")
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=8)  # wallet or tab
    max_extra_seats = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(method__in=["wallet", "tab"]), name="orders_seat_consent_method"),
            models.CheckConstraint(condition=Q(max_extra_seats__gte=1), name="orders_seat_consent_max_positive"),
        ]


class LicenseSeat(models.Model):
    """One extra seat bought past a key's limit: its order (a one-click spend) and the activation
    it was bought for. Refunding the order in full gives the seat up (``released_at``)."""

    id = PrefixedIdField(prefix="seat")
    license = models.ForeignKey(LicenseKey, on_delete=models.CASCADE, related_name="seats")
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="license_seat")
    instance = models.OneToOneField("LicenseActivation", on_delete=models.PROTECT, related_name="seat")
    amount = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)


class LicenseActivation(models.Model):
    """One instance (a machine, an install) a key is activated on."""

    id = PrefixedIdField(prefix="inst")
    license = models.ForeignKey(LicenseKey, on_delete=models.CASCADE, related_name="activations")
    name = models.CharField(max_length=200)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
