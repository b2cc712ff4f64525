"""Writes of the books: the set-aside split (tax reserve and envelopes), expenses (one at a time,
monthly repeats, CSV import) and estimated tax payments. Keyword-only, ``<entity>_<action>``."""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass, field
from datetime import date
from datetime import date as _date
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction

from stall.core.errors import InvalidRequest
from stall.core.money import amount_validate, currency_normalize, parse_amount

from .categories import categories_for_store, category_resolve
from .errors import (
    BooksInvalid,
    CsvInvalid,
    EnvelopeNotFound,
    ExpenseInvalid,
    ExpenseNotFound,
    SplitTooLarge,
)
from .models import FULL, BooksSettings, Envelope, Expense, TaxPayment

RECEIPT_MAX_BYTES = 10 * 1024 * 1024
# What a receipt may be, by its first bytes (a name can lie): PDF, PNG, JPEG, GIF, WebP.
RECEIPT_MAGIC = ((b"%PDF-", "pdf"), (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"RIFF", "webp"))


# --- The split ---------------------------------------------------------------------------------


def share_to_bp(value, *, param: str) -> int:
    """"25", "12.5" or a Decimal percentage → basis points; 0 to 100 with at most two decimals."""
    try:
        number = Decimal(str(value).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise BooksInvalid(f"“{value}” is not a percentage.", param=param) from None
    if not number.is_finite() or number < 0 or number > 100:
        raise BooksInvalid("A percentage is between 0 and 100.", param=param)
    bp = number * 100
    if bp != bp.to_integral_value():
        raise BooksInvalid("A percentage has at most two decimals.", param=param)
    return int(bp)


def books_settings_get(*, store) -> BooksSettings:
    return BooksSettings.objects.filter(store=store).first() or BooksSettings(store=store)


def _split_check_and_write(settings: BooksSettings) -> None:
    envelopes = list(Envelope.objects.filter(store_id=settings.store_id).order_by("pk"))
    total = settings.tax_rate_bp + sum(e.share_bp for e in envelopes)
    if total > FULL:
        raise SplitTooLarge(
            f"The tax reserve and the envelopes would add up to {Decimal(total) / 100}%: at most 100% can be set aside.",
            param="share",
        )
    parts = ([f"tax:{settings.tax_rate_bp}"] if settings.tax_rate_bp else []) + [
        f"e{e.pk}:{e.share_bp}" for e in envelopes if e.share_bp
    ]
    settings.split = ";".join(parts)
    settings.save()


def _settings_locked(store) -> BooksSettings:
    BooksSettings.objects.get_or_create(store=store)
    return BooksSettings.objects.select_for_update().get(store=store)


@transaction.atomic
def books_settings_update(
    *, store, tax_rate, country: str = "US", last_year_tax: int | None = None, last_year_agi: int | None = None,
    tax_reminders: bool = True,
) -> BooksSettings:
    """Set the tax reserve's share (a percentage) and what the quarterly estimates need."""
    settings = _settings_locked(store)
    settings.tax_rate_bp = share_to_bp(tax_rate, param="tax_rate")
    country = (country or "").strip().upper()
    if len(country) != 2 or not country.isalpha():
        raise BooksInvalid("Enter a two-letter country code, such as US.", param="country")
    for name, value in (("last_year_tax", last_year_tax), ("last_year_agi", last_year_agi)):
        if value is not None:
            amount_validate(value, param=name)
    settings.country, settings.last_year_tax, settings.last_year_agi = country, last_year_tax, last_year_agi
    settings.tax_reminders = bool(tax_reminders)
    try:
        _split_check_and_write(settings)
    except SplitTooLarge as exc:
        exc.param = "tax_rate"
        raise
    return settings


def _envelope_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise BooksInvalid("An envelope needs a name of at most 60 characters.", param="name")
    return name


@transaction.atomic
def envelope_create(*, store, name: str, share) -> Envelope:
    """A new envelope taking ``share`` percent of each sale's net; the split stays ≤ 100%."""
    settings = _settings_locked(store)
    name = _envelope_name(name)
    if Envelope.objects.filter(store=store, name__iexact=name).exists():
        raise BooksInvalid(f"There is already an envelope “{name}”.", param="name")
    envelope = Envelope.objects.create(store=store, name=name, share_bp=share_to_bp(share, param="share"))
    _split_check_and_write(settings)
    return envelope


@transaction.atomic
def envelope_update(*, store, envelope_id: int, name: str, share) -> Envelope:
    """Rename an envelope or change its share (0 stops it filling; its balance stays)."""
    settings = _settings_locked(store)
    envelope = Envelope.objects.filter(store=store, pk=envelope_id).first()
    if envelope is None:
        raise EnvelopeNotFound()
    name = _envelope_name(name)
    if Envelope.objects.filter(store=store, name__iexact=name).exclude(pk=envelope.pk).exists():
        raise BooksInvalid(f"There is already an envelope “{name}”.", param="name")
    envelope.name, envelope.share_bp = name, share_to_bp(share, param="share")
    envelope.save()
    _split_check_and_write(settings)
    return envelope


# --- Expenses ----------------------------------------------------------------------------------


def receipt_check(receipt) -> None:
    if receipt is None:
        return
    if receipt.size > RECEIPT_MAX_BYTES:
        raise ExpenseInvalid("A receipt can be at most 10 MB.", param="receipt")
    head = receipt.read(16)
    receipt.seek(0)
    if not any(head.startswith(magic) for magic, _ in RECEIPT_MAGIC):
        raise ExpenseInvalid("A receipt must be an image (PNG, JPEG, GIF, WebP) or a PDF.", param="receipt")


def _expense_fields(*, store, amount, currency, category, vendor, note, known=None) -> dict:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ExpenseInvalid("An expense is an amount above zero.", param="amount")
    currency = currency_normalize(currency or store.currency)
    vendor, note = (vendor or "").strip(), (note or "").strip()
    if len(vendor) > 120:
        raise ExpenseInvalid("A vendor's name is at most 120 characters.", param="vendor")
    if len(note) > 500:
        raise ExpenseInvalid("A note is at most 500 characters.", param="note")
    return {
        "amount": amount, "currency": currency, "vendor": vendor, "note": note,
        "category": category_resolve(store=store, value=category, known=known),
    }


@transaction.atomic
def expense_create(
    *, store, date: date, amount: int, category: str, currency: str | None = None, vendor: str = "", note: str = "",
    receipt=None, monthly: bool = False,
) -> Expense:
    """Record an expense (``amount`` in minor units); ``receipt`` an uploaded image or PDF."""
    fields = _expense_fields(store=store, amount=amount, currency=currency, category=category, vendor=vendor, note=note)
    if not isinstance(date, _date):
        raise ExpenseInvalid("Enter the date of the expense.", param="date")
    receipt_check(receipt)
    expense = Expense(store=store, date=date, monthly=bool(monthly), **fields)
    if receipt is not None:
        expense.receipt.save(receipt.name.rsplit("/", 1)[-1][:100] or "receipt", receipt, save=False)
    expense.save()
    return expense


def expense_get(*, store, expense_id: str) -> Expense:
    expense = Expense.objects.filter(store=store, pk=expense_id).first()
    if expense is None:
        raise ExpenseNotFound()
    return expense


@transaction.atomic
def expense_delete(*, store, expense_id: str) -> None:
    expense = expense_get(store=store, expense_id=expense_id)
    name = expense.receipt.name if expense.receipt else ""
    expense.delete()
    if name and not Expense.objects.filter(receipt=name).exists():
        storage = Expense._meta.get_field("receipt").storage
        transaction.on_commit(lambda: storage.delete(name))


def _same_day_in(month_start: date, day: int) -> date:
    last = calendar.monthrange(month_start.year, month_start.month)[1]
    return month_start.replace(day=min(day, last))


def expenses_recur(*, today: date) -> int:
    """Copy each monthly expense into every later month up to ``today`` (same day of the month,
    or the month's last day). Idempotent: one copy per (expense, date). Returns copies made."""
    made = 0
    for source in Expense.objects.filter(monthly=True, repeats__isnull=True, date__lt=today):
        year, month = source.date.year, source.date.month
        while True:
            month += 1
            if month > 12:
                year, month = year + 1, 1
            when = _same_day_in(date(year, month, 1), source.date.day)
            if when > today:
                break
            try:
                with transaction.atomic():
                    Expense.objects.create(
                        store_id=source.store_id, date=when, amount=source.amount, currency=source.currency,
                        category=source.category, vendor=source.vendor, note=source.note, repeats=source,
                    )
                    made += 1
            except IntegrityError:
                pass  # made by an earlier run
    return made


CSV_REQUIRED = ("date", "amount", "category")
CSV_OPTIONAL = ("currency", "vendor", "note")


@dataclass
class ImportResult:
    created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def expenses_import_csv(*, store, text: str) -> ImportResult:
    """Import expenses from CSV with a header row: date (YYYY-MM-DD), amount (as written, e.g.
    12.50), category (code or name) and optionally currency, vendor, note. Good rows are kept; each
    bad row is reported with its line number. Wrong columns refuse the whole file."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing column" + ("s" if len(missing) > 1 else "") + " " + ", ".join(missing))
        if unknown:
            parts.append("unknown column" + ("s" if len(unknown) > 1 else "") + " " + ", ".join(unknown))
        raise CsvInvalid(
            "The CSV's header row must name the columns date, amount, category (and optionally currency, vendor, note): "
            + "; ".join(parts) + ".", param="file",
        )
    reader.fieldnames = header
    result = ImportResult()
    known = categories_for_store(store=store)
    for row in reader:
        line = reader.line_num
        try:
            values = {k: (v or "").strip() for k, v in row.items() if k is not None}
            try:
                when = date.fromisoformat(values["date"])
            except ValueError:
                raise ExpenseInvalid(f"“{values['date']}” is not a date (YYYY-MM-DD).", param="date") from None
            currency = currency_normalize(values.get("currency") or store.currency)
            amount = parse_amount(values["amount"], currency)
            fields = _expense_fields(store=store, amount=amount, currency=currency, category=values["category"],
                                     vendor=values.get("vendor", ""), note=values.get("note", ""), known=known)
        except InvalidRequest as exc:
            result.errors.append((line, str(exc.message)))
            continue
        Expense.objects.create(store=store, date=when, **fields)
        result.created += 1
    return result


# --- Estimated tax payments --------------------------------------------------------------------


def tax_payment_record(*, store, year: int, quarter: int, amount: int, paid_on: date, note: str = "") -> TaxPayment:
    if quarter not in (1, 2, 3, 4):
        raise BooksInvalid("A quarter is 1, 2, 3 or 4.", param="quarter")
    if not 2000 <= year <= 2100:
        raise BooksInvalid("Enter the tax year.", param="year")
    if not isinstance(amount, int) or amount <= 0:
        raise BooksInvalid("A payment is an amount above zero.", param="amount")
    return TaxPayment.objects.create(store=store, year=year, quarter=quarter, amount=amount, currency=store.currency,
                                     paid_on=paid_on, note=(note or "").strip()[:200])
