"""What the wallets app builds on a buyer's wallet and tab: automatic top-ups, allowances and the
charges stores make against them.

The Wallet and Tab rows are the state of the wallet and tab rails and live with them in
stall.payments (models.py, rails/wallet.py, rails/tab.py); they are imported here for this app's
own code.
"""

from django.db import models
from django.db.models import Q

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
    allowance = models.ForeignKey(Allowance, on_delete=models.PROTECT, related_name="charges")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="charge")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The caller's Idempotency-Key and a hash of what it asked: a repeat returns this charge, the
    # same key for another charge is refused. Unique per store, so two racing repeats charge once.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="wallets_charge_amount_positive"),
            models.UniqueConstraint(
                fields=["store", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="wallets_charge_idempotency_key_unique",
            ),
        ]
