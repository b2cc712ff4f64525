"""A buyer's prepaid wallet and their tab, each one ledger account per currency.

The wallet (a buyer_wallet account, which can never go below zero) is topped up with a card and
spent a few cents at a time with one click. The tab (a buyer_tab account with a debit limit) lets
a buyer with no balance buy now and pay later with one card charge. Both work in every store of
this Stall. Balances are read from the ledger accounts; these rows hold the settings.
"""

from django.db import models
from django.db.models import Q

from stall.accounts.models import Buyer
from stall.core.ids import PrefixedIdField
from stall.ledger.models import Account


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
        "payments.SavedPaymentMethod", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set when an automatic top-up failed (a declined card): no more tries until the buyer saves
    # the settings again, so a dead card is not charged over and over.
    auto_top_up_failed_at = models.DateTimeField(null=True, blank=True)
    auto_top_up_failure = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
        "payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="settled_tab"
    )
    # The periodic settlement of an overdue tab charges a saved card once, and emails the buyer once.
    auto_settle_tried_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["buyer", "currency"], condition=Q(status="open"), name="wallets_one_open_tab_per_currency"
            )
        ]


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
    allowance = models.ForeignKey(Allowance, on_delete=models.PROTECT, related_name="charges")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="charge")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="wallets_charge_amount_positive")]
