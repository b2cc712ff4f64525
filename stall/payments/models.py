from django.db import models
from django.db.models import Q

from stall.accounts.models import Buyer
from stall.checkout.models import Checkout
from stall.core.ids import PrefixedIdField
from stall.ledger.models import Account
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


# The unique index that keeps one payment under way per checkout (its name, as PostgreSQL reports it).
ONE_PAYMENT_UNDER_WAY = "payments_one_active_payment_per_checkout"


class Payment(models.Model):
    """Money taken on a rail: for a checkout, or (with no store) to top up a wallet or settle a tab."""

    id = PrefixedIdField(prefix="pay")
    purpose = models.CharField(max_length=20, choices=PaymentPurpose.choices, default=PaymentPurpose.CHECKOUT)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    # Indexed only where set (below): a one-click spend has no checkout, and each index is one more
    # page every spend writes.
    checkout = models.ForeignKey(Checkout, on_delete=models.PROTECT, related_name="payments", null=True, blank=True, db_index=False)
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
    # False for a test payment: a test card on a Stall that takes real money (rails.rail_livemode),
    # or a spend of a wallet's test money. Its money moves through test accounts only.
    livemode = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One live payment per checkout: a double click or a replayed confirm cannot charge twice.
            models.UniqueConstraint(
                fields=["checkout"],
                # Without a checkout (a one-click spend) there is nothing to keep unique: not indexed.
                condition=Q(status__in=["processing", "requires_action", "succeeded"], checkout__isnull=False),
                name=ONE_PAYMENT_UNDER_WAY,
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_amount_positive"),
            # A purchase is paid to a store; a one-click spend (an unlock, a tip) has no checkout.
            models.CheckConstraint(
                condition=~Q(purpose="checkout") | Q(store__isnull=False),
                name="payments_purchase_payment_has_store",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=models.F("amount")),
                name="payments_refund_within_amount",
            ),
        ]
        indexes = [
            # The reconciliation looks for the few payments left processing among every spend's
            # succeeded one; a partial index holds only those, so its scan stays small as the
            # table grows (its condition is the query's own: SQLite uses a partial index only then).
            models.Index(
                fields=["updated_at"], condition=Q(status="processing"), name="payments_processing_by_updated",
            ),
            models.Index(fields=["checkout"], condition=Q(checkout__isnull=False), name="payments_by_checkout"),
            # A tab's purchases (its page, its settlement) and a Stripe payment named by its intent
            # (a dispute) are found by the rail's reference. One partial index per rail, each with
            # its query's own condition; the wallet's one-click spends, the most frequent insert,
            # are in neither, so they pay nothing for them.
            models.Index(fields=["rail_reference"], condition=Q(rail="tab"), name="payments_tab_by_reference"),
            models.Index(fields=["rail_reference"], condition=Q(rail="stripe"), name="payments_stripe_by_reference"),
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
    # Given back into the buyer's wallet rather than through the rail: for a rail that cannot pay
    # a buyer back (Lightning), when Stall itself owes the money (a payment past a capped tier).
    to_wallet = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_refund_amount_positive")]


class DisputeStatus(models.TextChoices):
    """Stripe's dispute statuses. The ``warning_*`` ones are inquiries (no money taken yet)."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
    WARNING_CLOSED = "warning_closed", "Inquiry closed"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"


DISPUTE_CLOSED_STATUSES = (DisputeStatus.WARNING_CLOSED, DisputeStatus.WON, DisputeStatus.LOST)


class Dispute(models.Model):
    """A chargeback: the cardholder asked their bank for a payment back, and the card processor told
    us by webhook (Stripe's ``charge.dispute.*``). One row per processor dispute, whatever the
    number or order of the events about it. ``withdrawn``/``reinstated`` say which of its money
    movements were made, each once (their transfers have idempotency keys too).
    """

    id = PrefixedIdField(prefix="dp")
    # Empty for a payment with no store (a wallet top-up).
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="disputes", null=True, blank=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    rail = models.CharField(max_length=20)
    rail_reference = models.CharField(max_length=120, unique=True)  # Stripe's dispute id, dp_…
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # What the processor charges for handling the dispute, taken from the store with the amount.
    fee = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=24, choices=DisputeStatus.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    withdrawn = models.BooleanField(default=False)
    reinstated = models.BooleanField(default=False)
    fee_reinstated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_dispute_amount_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="payments_dispute_fee_non_negative"),
            models.CheckConstraint(condition=Q(reinstated=False) | Q(withdrawn=True), name="payments_dispute_reinstated_after_withdrawn"),
        ]

    @property
    def closed(self) -> bool:
        return self.status in DISPUTE_CLOSED_STATUSES


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


class LightningAccount(models.Model):
    """A store's LNbits wallet, for Lightning payments: the server's address and the wallet's invoice
    key. That key creates invoices and reads payments but cannot spend (Stall refuses an admin
    key); it is stored as given, so protect the database like the environment."""

    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="lightning_account")
    url = models.URLField(max_length=255)
    invoice_key = models.CharField(max_length=255)
    wallet_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class LightningInvoice(models.Model):
    """The Lightning invoice a payment asks the buyer to pay, as LNbits made it.

    The server and key it was made with are kept with it, so its status can still be asked after the
    store changes or removes its LNbits wallet. ``sats`` and ``rate`` (sats per major unit of the
    payment's currency, LNbits' rate at creation) say what the fiat amount was turned into.
    """

    payment = models.OneToOneField("Payment", on_delete=models.PROTECT, primary_key=True, related_name="lightning_invoice")
    payment_hash = models.CharField(max_length=64, unique=True)
    bolt11 = models.TextField()
    sats = models.BigIntegerField()
    rate = models.DecimalField(max_digits=24, decimal_places=8)
    expires_at = models.DateTimeField()
    lnbits_url = models.URLField(max_length=255)
    invoice_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)


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


# --- The wallet and the tab: the state of the in-ledger rails (rails/wallet.py, rails/tab.py) ---
#
# A buyer's prepaid wallet and their tab, each one ledger account per currency. The wallet (a
# buyer_wallet account, which can never go below zero) is topped up with a card and spent a few
# cents at a time with one click. The tab (a buyer_tab account with a debit limit) lets a buyer
# with no balance buy now and pay later with one card charge. Both work in every store of this
# Stall. Balances are read from the ledger accounts; these rows hold the settings.


class Wallet(models.Model):
    id = PrefixedIdField(prefix="wal")
    buyer = models.ForeignKey(Buyer, on_delete=models.PROTECT, related_name="wallets")
    currency = models.CharField(max_length=3)
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="wallet")
    # Spends up to this amount take one click; above it the buyer confirms first.
    confirm_above = models.BigIntegerField()
    # Automatic top-up: when the balance falls below `auto_top_up_below`, charge the saved method.
    auto_top_up_below = models.BigIntegerField(null=True, blank=True)
    auto_top_up_amount = models.BigIntegerField(null=True, blank=True)
    auto_top_up_method = models.ForeignKey(
        "SavedPaymentMethod", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set when an automatic top-up failed (a declined card): no more tries until the buyer saves
    # the settings again, so a dead card is not charged over and over.
    auto_top_up_failed_at = models.DateTimeField(null=True, blank=True)
    auto_top_up_failure = models.CharField(max_length=255, blank=True)
    # False while the wallet holds test money (topped up with a test card where the Stall takes real
    # money): its spends are test orders, and stores that take no test cards refuse it. A wallet
    # holds one kind of money at a time (rails.wallet.wallet_mode_for_credit).
    livemode = models.BooleanField(default=True, db_default=True)
    # The language of the page where the wallet was opened ("ko", "pt-br"; "" for English): the
    # emails about it (a failed automatic top-up) are written in it.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "wallets_wallet"  # created by the wallets app before the model moved here
        constraints = [models.UniqueConstraint(fields=["buyer", "currency"], name="wallets_one_wallet_per_currency")]

    @property
    def balance(self) -> int:
        return self.account.balance


class TabStatus(models.TextChoices):
    OPEN = "open", "Open"
    SETTLED = "settled", "Settled"


class Tab(models.Model):
    """One run of a buyer's tab, from the first purchase on it to the card charge that settles it."""

    id = PrefixedIdField(prefix="tab")
    buyer = models.ForeignKey(Buyer, on_delete=models.PROTECT, related_name="tabs")
    currency = models.CharField(max_length=3)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="tabs")
    status = models.CharField(max_length=8, choices=TabStatus.choices, default=TabStatus.OPEN)
    limit = models.BigIntegerField()
    opened_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    settlement = models.OneToOneField(
        "Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="settled_tab"
    )
    # The periodic settlement of an overdue tab charges a saved card once, and emails the buyer once.
    auto_settle_tried_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)
    # The language of the page of the purchase that opened the tab ("" for English): its overdue
    # notice is written in it.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")

    class Meta:
        db_table = "wallets_tab"
        constraints = [
            models.UniqueConstraint(
                fields=["buyer", "currency"], condition=Q(status="open"), name="wallets_one_open_tab_per_currency"
            )
        ]
