"""Double-entry ledger after TigerBeetle's model.

An account keeps four running totals (posted and pending, debits and credits) on its row, so a
balance is read, never summed. A transfer moves one positive amount in one currency from a debit
account to a credit account; it is ``posted`` at once, or ``pending`` and later ``posted`` or
``voided`` exactly once. Transfers are never edited or deleted: a mistake is undone by a new
transfer the other way.
"""

from django.db import models
from django.db.models import F, Q

from stall.core.ids import PrefixedIdField


class AccountKind(models.TextChoices):
    BUYER_WALLET = "buyer_wallet", "Buyer wallet"
    BUYER_TAB = "buyer_tab", "Buyer tab"
    STORE_BALANCE = "store_balance", "Store balance"
    STORE_PENDING = "store_pending", "Store pending (escrow)"
    PLATFORM_FEES = "platform_fees", "Platform fees"
    PROCESSOR_CLEARING = "processor_clearing", "Processor clearing"
    PROCESSOR_FEES = "processor_fees", "Processor fees"
    GIFT_CARD_LIABILITY = "gift_card_liability", "Gift card liability"
    TAX_RESERVE = "tax_reserve", "Tax reserve"
    # A share of a store's sales set aside for a purpose of the creator's (owner pay, operating
    # expenses, emergency fund): stall.books' percentage envelopes. Owner "<store owner>:e<id>".
    ENVELOPE = "envelope", "Envelope"
    # Card fees paid to top up a wallet or settle a tab, owed back pro rata by the stores whose
    # sales that money paid for.
    FEE_POOL = "fee_pool", "Card fees to allocate"


def ledger_owner(owner: str, *, livemode: bool = True) -> str:
    """The owner of the account that holds ``owner``'s real money, or (``livemode`` False) its test
    money. Test money, paid with a test card, moves through accounts of its own: a store's test
    balance is the store_balance of "<store id>:test", the platform's test fees the platform_fees
    of "platform:test". So a real balance, and anything read from it, never includes it."""
    return owner if livemode else f"{owner}:test"


# Accounts that hold someone's money: they can never be spent below zero
# (debits_posted + debits_pending <= credits_posted).
CREDIT_BALANCE_KINDS = frozenset(
    {AccountKind.BUYER_WALLET, AccountKind.STORE_PENDING, AccountKind.GIFT_CARD_LIABILITY}
)
# Accounts whose natural balance is debits minus credits: what someone owes us or holds for us.
DEBIT_NORMAL_KINDS = frozenset(
    {AccountKind.BUYER_TAB, AccountKind.PROCESSOR_CLEARING, AccountKind.FEE_POOL}
)


class Account(models.Model):
    id = PrefixedIdField(prefix="acct")
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    # Who the account belongs to: a store id, a customer id, a rail name, or "platform".
    owner = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    debits_posted = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    debits_pending = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    debits_must_not_exceed_credits = models.BooleanField(default=False)
    # The most the account may owe (a tab's limit): debits_posted + debits_pending - credits_posted.
    debit_limit = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "owner", "currency"], name="ledger_account_unique_owner"),
            models.CheckConstraint(
                condition=Q(debits_posted__gte=0)
                & Q(credits_posted__gte=0)
                & Q(debits_pending__gte=0)
                & Q(credits_pending__gte=0),
                name="ledger_account_totals_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(debits_must_not_exceed_credits=False)
                | Q(debits_posted__lte=F("credits_posted") - F("debits_pending")),
                name="ledger_account_no_overdraft",
            ),
            models.CheckConstraint(
                condition=Q(debit_limit__isnull=True)
                | Q(debits_posted__lte=F("debit_limit") + F("credits_posted") - F("debits_pending")),
                name="ledger_account_within_debit_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.owner}:{self.currency}"

    @property
    def balance(self) -> int:
        """Posted balance on the account's natural side."""
        if self.kind in DEBIT_NORMAL_KINDS:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be spent: posted balance less pending debits (credit-normal accounts)."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferState(models.TextChoices):
    PENDING = "pending", "Pending"
    POSTED = "posted", "Posted"
    VOIDED = "voided", "Voided"


class Transfer(models.Model):
    id = PrefixedIdField(prefix="tr")
    idempotency_key = models.CharField(max_length=200, unique=True)
    debit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="debit_transfers")
    credit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_transfers")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # True when the transfer was created pending (a two-phase transfer), whatever its state now.
    two_phase = models.BooleanField(default=False)
    state = models.CharField(max_length=8, choices=TransferState.choices)
    # What the movement is in the domain ("sale", "processor_fee", "refund", ...) and the object
    # it belongs to ("pay_…", "re_…"); reports group by these.
    code = models.CharField(max_length=32)
    reference = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")), name="ledger_transfer_distinct_accounts"
            ),
            models.CheckConstraint(
                condition=Q(two_phase=True) | Q(state=TransferState.POSTED),
                name="ledger_transfer_single_phase_is_posted",
            ),
        ]
        indexes = [models.Index(fields=["code", "created_at"])]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} {self.state}"
