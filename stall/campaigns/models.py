"""Crowdfunding: a campaign with a goal and a deadline, its reward tiers, and backers' pledges.

Money. A wallet pledge is a *pending* ledger transfer from the backer's wallet to the campaign's
escrow (a ``store_pending`` account owned by the campaign): it counts against the wallet at once
and cannot fail at the deadline. At a successful deadline it is posted and moved on to the store's
balance; at a failed one (or a canceled campaign) it is voided. A card pledge keeps a saved card
(``payments.SavedPaymentMethod``) and is charged off-session at a successful deadline; a charge
that fails gets ``RECOVERY_DAYS`` days and three emails before the pledge is dropped. A
keep-what-you-raise campaign collects each pledge as it comes.

Exactly once. Each step of a pledge is a guarded UPDATE of its ``status`` (``held`` → ``collected``,
``saved`` → ``charging`` ...) in the same transaction as the ledger rows it moves, so a deadline
task run twice, or re-run after a crash, finds nothing left to do for a pledge already settled.

Indexes. Every foreign key is ``db_index=False`` with the index it needs written in ``Meta``:
Django's PostgreSQL backend gives each indexed ``CharField`` (our prefixed ids are) a second
``varchar_pattern_ops`` index for LIKE, which nothing here does, and a pledge's settlement (a
status change, which PostgreSQL cannot update in place because ``status`` is indexed) writes an
entry into every index of the row. A nullable key's index is partial (``IS NOT NULL``): the
wallet pledges a deadline settles by the hundred thousand have no card, order or checkout.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from stall.catalog.models import Product
from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class CampaignMode(models.TextChoices):
    ALL_OR_NOTHING = "all_or_nothing", _("All or nothing")
    KEEP_WHAT_YOU_RAISE = "keep_what_you_raise", _("Keep what you raise")


class CampaignStatus(models.TextChoices):
    # "Campaign" is feminine in Portuguese (and other words may differ again elsewhere): the
    # campaign's statuses have their own context, apart from a pledge's "Canceled".
    DRAFT = "draft", pgettext_lazy("campaign status", "Draft")
    LIVE = "live", pgettext_lazy("campaign status", "Live")
    SUCCEEDED = "succeeded", pgettext_lazy("campaign status", "Succeeded")
    FAILED = "failed", pgettext_lazy("campaign status", "Failed")
    CANCELED = "canceled", pgettext_lazy("campaign status", "Canceled")


class Campaign(models.Model):
    id = PrefixedIdField(prefix="camp")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="campaigns", db_index=False)
    title = models.CharField(max_length=120)
    story = models.TextField(blank=True, max_length=50_000)  # Markdown
    cover = models.ImageField(upload_to="campaigns/", blank=True)
    goal = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    deadline = models.DateTimeField()
    mode = models.CharField(max_length=24, choices=CampaignMode.choices, default=CampaignMode.ALL_OR_NOTHING)
    status = models.CharField(max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    # When the outcome was decided (succeeded, failed, canceled) and when every pledge had been
    # settled after it; the deadline task picks up a campaign decided but not yet settled.
    decided_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-id"]), models.Index(fields=["status", "deadline"])]
        constraints = [models.CheckConstraint(condition=Q(goal__gt=0), name="campaigns_goal_positive")]

    def __str__(self) -> str:
        return self.title

    @property
    def all_or_nothing(self) -> bool:
        return self.mode == CampaignMode.ALL_OR_NOTHING


class RewardTier(models.Model):
    id = PrefixedIdField(prefix="rwd")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tiers", db_index=False)
    title = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=5000)
    min_amount = models.BigIntegerField()
    # None: unlimited. ``remaining`` is taken by a guarded UPDATE (remaining > 0), so the last
    # slot goes to one backer however many ask at once.
    quantity = models.PositiveIntegerField(null=True, blank=True)
    remaining = models.IntegerField(null=True, blank=True)
    estimated_delivery = models.DateField(null=True, blank=True)
    # Granted to each backer of the tier when the pledge is collected (a download, a membership).
    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                db_index=False)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "min_amount", "id"]
        indexes = [
            models.Index(fields=["campaign", "position"], name="campaigns_tier_campaign"),
            models.Index(fields=["product"], condition=Q(product__isnull=False), name="campaigns_tier_product"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(min_amount__gt=0), name="campaigns_tier_min_positive"),
            models.CheckConstraint(
                condition=Q(remaining__isnull=True) | Q(remaining__gte=0), name="campaigns_tier_not_oversold"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def sold_out(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class PledgeMethod(models.TextChoices):
    WALLET = "wallet", _("Wallet")
    CARD = "card", _("Card")


class PledgeStatus(models.TextChoices):
    HELD = "held", _("Held in escrow")  # a wallet pledge's pending transfer
    SAVED = "saved", _("Card saved")  # a card pledge waiting for the deadline
    CHARGING = "charging", _("Charging")  # claimed by the deadline task, the card being charged
    COLLECTED = "collected", _("Collected")
    FAILED = "failed", _("Charge failed")  # a card charge failed: in recovery
    DROPPED = "dropped", _("Dropped")  # recovery ran out
    VOIDED = "voided", _("Released")  # the campaign failed or was canceled
    CANCELED = "canceled", pgettext_lazy("pledge status", "Canceled")  # by the backer before the deadline


# Pledges that still count towards the goal before the deadline.
OPEN_STATUSES = (PledgeStatus.HELD, PledgeStatus.SAVED)
# Pledges that, at a successful deadline, count as raised (collected, or still being collected).
RAISED_STATUSES = (PledgeStatus.HELD, PledgeStatus.SAVED, PledgeStatus.CHARGING, PledgeStatus.COLLECTED,
                   PledgeStatus.FAILED)


class Pledge(models.Model):
    id = PrefixedIdField(prefix="plg")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="pledges", db_index=False)
    tier = models.ForeignKey(RewardTier, on_delete=models.PROTECT, null=True, blank=True, related_name="pledges",
                             db_index=False)
    # Read through ``email`` (the library, the emails): no query looks a pledge up by its buyer.
    buyer = models.ForeignKey("accounts.Buyer", on_delete=models.PROTECT, related_name="+", db_index=False)
    email = models.EmailField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=8, choices=PledgeMethod.choices)
    message = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=PledgeStatus.choices)
    # The language of the page the backer pledged on ("ko", "pt-br"; "" for English): the
    # backer's emails (a failed charge, the outcome, updates) are written in it.
    language = models.CharField(max_length=12, blank=True, default="", db_default="")
    livemode = models.BooleanField(default=True)
    # Wallet: the pending transfer holding the money and the wallet's ledger account (so the
    # deadline task settles a chunk of pledges without reading their transfers).
    hold_transfer_id = models.CharField(max_length=40, blank=True)
    wallet_account_id = models.CharField(max_length=40, blank=True)
    # Bumped by each change of a held pledge: the new hold's idempotency key.
    version = models.PositiveIntegerField(default=0)
    # Card: the saved card, charge attempts, and the recovery after a failed charge.
    saved = models.ForeignKey("payments.SavedPaymentMethod", on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", db_index=False)
    # The Stripe SetupIntent (``seti_…``) the card was saved with on the card page: one pledge per
    # setup, held by a unique constraint, so the return page hit twice at once (a double click, a
    # reload, Stripe's redirect racing another tab) makes one pledge and answers both with it.
    setup_ref = models.CharField(max_length=120, blank=True, default="", db_default="")
    attempts = models.PositiveIntegerField(default=0)
    failed_at = models.DateTimeField(null=True, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    reminders_sent = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A failed pledge paid another way: the checkout (for the pledge's amount, with a line of the
    # reward's product if it has one) on the hosted payment page, which offers the store's real
    # rails. Its paid order collects the pledge (``collect.recovery_paid``). Indexed only where set.
    recovery_checkout = models.ForeignKey("checkout.Checkout", on_delete=models.PROTECT, null=True, blank=True,
                                          related_name="+", db_index=False)
    # The order that collected a card pledge, or granted a wallet pledge's reward.
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_index=False)
    collected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The deadline's chunks, a campaign's pledges and totals (and the campaign key's own index).
            models.Index(fields=["campaign", "status", "id"]),
            # The backer's library (``selectors.pledges_for_email``: emails are stored lower-case).
            models.Index(fields=["email", "-id"]),
            # Only failed charges wait for a retry. Partial, so that no index leads with status:
            # SQLite would otherwise settle a chunk by walking every held pledge of the Stall.
            models.Index(fields=["next_attempt_at"], condition=Q(status="failed"), name="campaigns_pledge_retry_due"),
            # What a deleted reward, card or order would be checked against (PROTECT), and a tier's count.
            models.Index(fields=["tier"], condition=Q(tier__isnull=False), name="campaigns_pledge_tier"),
            models.Index(fields=["saved"], condition=Q(saved__isnull=False), name="campaigns_pledge_saved"),
            models.Index(fields=["order"], condition=Q(order__isnull=False), name="campaigns_pledge_order"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="campaigns_pledge_positive"),
            models.UniqueConstraint(fields=["setup_ref"], condition=~Q(setup_ref=""), name="campaigns_pledge_setup_once"),
            models.UniqueConstraint(fields=["recovery_checkout"], condition=Q(recovery_checkout__isnull=False),
                                    name="campaigns_pledge_recovery_checkout"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} {self.status}"


class CampaignUpdate(models.Model):
    """A post to backers, emailed to all of them or to one tier's."""

    id = PrefixedIdField(prefix="cupd")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="updates", db_index=False)
    tier = models.ForeignKey(RewardTier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                             db_index=False)
    title = models.CharField(max_length=120)
    body = models.TextField(max_length=20_000)
    recipients = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["campaign", "-id"], name="campaigns_update_campaign"),
            models.Index(fields=["tier"], condition=Q(tier__isnull=False), name="campaigns_update_tier"),
        ]
