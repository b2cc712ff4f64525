"""Background work for the books: monthly expenses repeated, and the estimated-tax reminder."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from stall.core.email import email_send
from stall.core.money import format_money
from stall.stores.models import Store

from .models import BooksSettings, TaxReminder
from .services import expenses_recur
from .taxes import period_due_soon, store_installments


@db_periodic_task(crontab(minute="15", hour="6"))
def books_daily_task():
    """Every morning: copy monthly expenses into the new month, and remind US creators a week
    before each estimated-tax due date (once per store and period)."""
    today = timezone.now().date()
    expenses_recur(today=today)
    tax_reminders_send(today=today)


def tax_reminders_send(*, today) -> int:
    """Record and send one reminder per store for the period due within a week. Returns how many."""
    period = period_due_soon(today=today)
    if period is None:
        return 0
    sent = 0
    for books in BooksSettings.objects.filter(country="US", tax_reminders=True, tax_rate_bp__gt=0).select_related("store"):
        try:
            with transaction.atomic():
                TaxReminder.objects.create(store=books.store, year=period.year, quarter=period.quarter)
                store_id = books.store_id
                transaction.on_commit(lambda s=store_id: tax_reminder_email(s, period.year, period.quarter))
        except IntegrityError:
            continue  # reminded already
        sent += 1
    return sent


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def tax_reminder_email(store_id: str, year: int, quarter: int) -> None:
    store = Store.objects.select_related("owner").get(pk=store_id)
    installment = store_installments(store=store, year=year)[quarter - 1]
    email_send(
        to=store.owner.email, subject=f"Estimated tax for {year} Q{quarter} is due {installment.period.due:%B} {installment.period.due.day}",
        template="books/email/tax_reminder",
        context={"store": store, "installment": installment, "year": year, "quarter": quarter,
                 "estimate": format_money(installment.estimate, store.currency),
                 "safe_harbour": format_money(installment.safe_harbour, store.currency) if installment.safe_harbour is not None else "",
                 "paid": format_money(installment.paid, store.currency)},
    )
