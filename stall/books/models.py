"""The creator's books: what each sale sets aside (a tax reserve and percentage envelopes),
expenses with receipts, and estimated tax payments.

Income is never stored here: it is read from the ledger (see ``selectors``). Shares are kept in
basis points (2500 = 25%) so that they add up exactly.
"""

from django.core.files.storage import storages
from django.db import models
from django.db.models import Q

from stall.core.ids import PrefixedIdField
from stall.stores.models import Store

FULL = 10_000  # 100% in basis points


def _private_storage():
    return storages["private"]


class BooksSettings(models.Model):
    store = models.OneToOneField(Store, on_delete=models.CASCADE, primary_key=True, related_name="books_settings")
    # Share of each sale's net moved into the store's tax reserve, in basis points.
    tax_rate_bp = models.PositiveIntegerField(default=0)
    # "US": 1040-ES periods and safe harbour; anything else: a plain quarterly summary.
    country = models.CharField(max_length=2, default="US")
    # What the creator paid in tax last year and their adjusted gross income (store currency,
    # minor units): the safe-harbour figure needs them.
    last_year_tax = models.BigIntegerField(null=True, blank=True)
    last_year_agi = models.BigIntegerField(null=True, blank=True)
    tax_reminders = models.BooleanField(default=True)
    # The split as the lean spend reads it in its first SELECT: "tax:2500;e7:1000" (the tax
    # reserve and each envelope with a share), rewritten whenever a share changes. Empty: nothing
    # is set aside.
    split = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        db_table = "books_settings"
        constraints = [models.CheckConstraint(condition=Q(tax_rate_bp__lte=FULL), name="books_tax_rate_at_most_100")]


class Envelope(models.Model):
    """A Profit First–style envelope: a share of each sale's net set aside in its ledger account."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="envelopes")
    name = models.CharField(max_length=60)
    share_bp = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "name"], name="books_envelope_unique_name"),
            models.CheckConstraint(condition=Q(share_bp__lte=FULL), name="books_envelope_at_most_100"),
        ]
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class ExpenseCategory(models.Model):
    """A category the creator added to the Schedule C–like defaults (``categories.DEFAULTS``)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="expense_categories")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=80)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "code"], name="books_category_unique_code")]
        ordering = ["name"]


class Expense(models.Model):
    id = PrefixedIdField(prefix="exp")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="expenses")
    date = models.DateField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    category = models.CharField(max_length=40)
    vendor = models.CharField(max_length=120, blank=True)
    note = models.CharField(max_length=500, blank=True)
    receipt = models.FileField(storage=_private_storage, upload_to="receipts/%Y/%m/", blank=True, max_length=300)
    # Repeats on the same day of each later month (capped at the month's last day).
    monthly = models.BooleanField(default=False)
    # The monthly expense this one repeats; one copy per date (so the task can run twice).
    repeats = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="copies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="books_expense_amount_positive"),
            models.UniqueConstraint(fields=["repeats", "date"], name="books_expense_one_copy_per_date"),
        ]
        indexes = [models.Index(fields=["store", "date"])]
        ordering = ["-date", "-pk"]


class TaxPayment(models.Model):
    """An estimated tax payment the creator made (or a quarterly payment elsewhere)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="tax_payments")
    year = models.PositiveIntegerField()
    quarter = models.PositiveSmallIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    paid_on = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="books_tax_payment_positive"),
            models.CheckConstraint(condition=Q(quarter__gte=1, quarter__lte=4), name="books_tax_payment_quarter"),
        ]
        ordering = ["year", "quarter", "paid_on"]


class TaxReminder(models.Model):
    """A reminder sent for one due date: at most one per store and period."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveIntegerField()
    quarter = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "year", "quarter"], name="books_reminder_once")]
