"""What the wallets app builds on a buyer's wallet and tab: automatic top-ups, allowances and the
charges stores make against them.

The Wallet and Tab rows are the state of the wallet and tab rails and live with them in
stall.payments (models.py, rails/wallet.py, rails/tab.py); they are imported here for this app's
own code.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from stall.accounts.models import Buyer
from stall.core.ids import PrefixedIdField
from stall.payments.models import Tab, TabStatus, Wallet  # noqa: F401  (the rails' state, see there)


class AutoTopUp(models.Model):
    """One automatic top-up of a wallet that fell below its threshold.

    ``trigger`` names what the wallet was filled by last (the latest transfer into it): every spend
    of a burst that takes the balance below the threshold shares it, so the burst tops up once,
    and a failed top-up is not tried again for the same trigger.
    """

    id = PrefixedIdField(prefix="atu")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="auto_top_ups")
    trigger = models.CharField(max_length=64)
    payment = models.OneToOneField(
        "payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="auto_top_up"
    )
    failure_message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["wallet", "trigger"], name="wallets_one_auto_top_up_per_trigger")]


class AllowancePeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class Allowance(models.Model):
    """A buyer's standing permission for one store to charge their wallet, up to ``amount`` a period.

    In-game purchases, pay-per-call APIs and per-post billing charge through it with no click.
    """

    id = PrefixedIdField(prefix="alw")
    buyer = models.ForeignKey(Buyer, on_delete=models.PROTECT, related_name="allowances")
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="allowances")
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    period = models.CharField(max_length=5, choices=AllowancePeriod.choices)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="wallets_allowance_amount_positive"),
            models.UniqueConstraint(
                fields=["buyer", "store", "currency"], condition=Q(revoked_at__isnull=True),
                name="wallets_one_live_allowance_per_store",
            ),
        ]


class Charge(models.Model):
    """A store's charge against an allowance, made through the API (POST /api/v1/charges)."""

    id = PrefixedIdField(prefix="ch")
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="charges")
    allowance = models.ForeignKey(Allowance, on_delete=models.PROTECT, related_name="charges", db_index=False)
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="charge")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    # Set by the charge to the moment its ChargeTally counted it in, so a refund finds its periods.
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # The caller's Idempotency-Key and a hash of what it asked: a repeat returns this charge, the
    # same key for another charge is refused. Unique per store, so two racing repeats charge once.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        # An allowance's charges in order of time (the plain index of the allowance column, which
        # it replaces, served its lookups no better).
        indexes = [models.Index(fields=["allowance", "created_at"], name="wallets_charge_by_allowance")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="wallets_charge_amount_positive"),
            models.UniqueConstraint(
                fields=["store", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="wallets_charge_idempotency_key_unique",
            ),
        ]


class ChargeTally(models.Model):
    """What a store has charged a buyer in one currency in the current day, week and month (UTC),
    less what was refunded of those charges: one row per store, buyer and currency, whatever
    allowance the charges were made under.

    Every charge adds its amount to the three periods in the statement that checks its allowance
    (``allowances.charge_create``); a refund takes its amount off each period the charge still
    counts in. A period whose start is not the current one has used nothing yet. Kept as running
    totals because summing the period's charges on every charge made each charge slower than the
    one before it: an API that charged a buyer 5,000 times a day read 5,000 rows on the last.
    """

    # Found by its unique key (buyer, store, currency), which is its only index.
    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="+", db_index=False)
    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="+", db_index=False)
    currency = models.CharField(max_length=3)
    day_start = models.DateField()
    day_amount = models.BigIntegerField(default=0)
    week_start = models.DateField()  # a Monday
    week_amount = models.BigIntegerField(default=0)
    month_start = models.DateField()  # the 1st
    month_amount = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["buyer", "store", "currency"], name="wallets_one_charge_tally_per_store"),
        ]


class GiftCardStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REDEEMED = "redeemed", "Redeemed"
    DISABLED = "disabled", "Disabled"


class GiftCard(models.Model):
    """A store's gift card: a code worth ``balance`` in the store's currency until it is redeemed.

    Its money is in the store's gift card liability account from issue to redemption; redeeming
    moves it into the recipient's wallet. The code itself is never stored once delivered: only its
    SHA-256 (``code_hash``, the lookup) and its last four characters (to tell cards apart).
    ``pending_code`` holds it until the email that carries it is sent (a send date may be weeks
    away), and is emptied then.
    """

    id = PrefixedIdField(prefix="gc")
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="gift_cards")
    code_hash = models.CharField(max_length=64, unique=True)
    code_last4 = models.CharField(max_length=4)
    pending_code = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3)
    initial_amount = models.BigIntegerField()
    balance = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=GiftCardStatus.choices, default=GiftCardStatus.ACTIVE)
    # False for a card bought with test money: its money is in the store's test liability.
    livemode = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The order that bought it; None for a card the creator issued by hand.
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="gift_cards")
    purchaser_email = models.EmailField(blank=True)
    sender_name = models.CharField(max_length=120, blank=True)
    recipient_email = models.EmailField(blank=True)
    recipient_name = models.CharField(max_length=120, blank=True)
    message = models.TextField(blank=True, max_length=1000)
    send_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    redeemed_by = models.ForeignKey(Buyer, on_delete=models.PROTECT, null=True, blank=True, related_name="gift_cards")
    redeemed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(initial_amount__gt=0), name="wallets_gift_card_amount_positive"),
            models.CheckConstraint(
                condition=Q(balance__gte=0) & Q(balance__lte=models.F("initial_amount")),
                name="wallets_gift_card_balance_within_initial",
            ),
        ]
        indexes = [models.Index(fields=["store", "-id"])]

    @property
    def code_hint(self) -> str:
        return f"…{self.code_last4}"


class GiftCardEvent(models.Model):
    """A line of a card's history: issued, emailed, redeemed, a refused redemption, disabled."""

    card = models.ForeignKey(GiftCard, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)
    amount = models.BigIntegerField(default=0)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]


class GiftCardPurchase(models.Model):
    """Who a gift card being bought is for, kept with its checkout until the order issues the card."""

    checkout = models.OneToOneField("checkout.Checkout", on_delete=models.CASCADE, related_name="gift_card_purchase")
    sender_name = models.CharField(max_length=120, blank=True)
    recipient_email = models.EmailField()
    recipient_name = models.CharField(max_length=120, blank=True)
    message = models.TextField(blank=True, max_length=1000)
    send_at = models.DateTimeField(null=True, blank=True)
