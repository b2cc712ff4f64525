"""Quarterly estimated tax against worked examples, and the reminder a week before each due date."""

from datetime import date

import pytest
import time_machine
from django.core import mail

from stall.books.models import TaxReminder
from stall.books.services import books_settings_update, tax_payment_record
from stall.books.tasks import tax_reminders_send
from stall.books.taxes import installments, store_installments, tax_periods
from stall.core.money import prorate
from stall.testing import ProductFactory, buy

# A year with a loss in the second period: Jan–Mar +$3,000, Apr–May −$1,000, Jun–Aug +$2,000,
# Sep–Dec +$4,000; the rate is 25%.
MONTHLY = {1: 1000_00, 2: 1000_00, 3: 1000_00, 4: -500_00, 5: -500_00, 6: 500_00, 7: 500_00, 8: 1000_00,
           9: 1000_00, 10: 1000_00, 11: 1000_00, 12: 1000_00}


def test_the_1040_es_periods_and_due_dates():
    """Jan–Mar by Apr 15, Apr–May by Jun 15, Jun–Aug by Sep 15, Sep–Dec by Jan 15 of the next year."""
    periods = tax_periods(2026)
    assert [(p.start, p.end, p.due) for p in periods] == [
        (date(2026, 1, 1), date(2026, 3, 31), date(2026, 4, 15)),
        (date(2026, 4, 1), date(2026, 5, 31), date(2026, 6, 15)),
        (date(2026, 6, 1), date(2026, 8, 31), date(2026, 9, 15)),
        (date(2026, 9, 1), date(2026, 12, 31), date(2027, 1, 15)),
    ]


def test_a_due_date_on_a_weekend_moves_to_the_monday():
    """Jan 15 2028 is a Saturday (2027's last payment) and so is Apr 15 2028."""
    assert tax_periods(2027)[3].due == date(2028, 1, 17)
    assert tax_periods(2028)[0].due == date(2028, 4, 17)


def test_the_estimates_of_a_year_with_a_loss_period():
    """Q1 asks 25% of $3,000; the loss in Q2 brings the year's tax so far below what Q1 asked,
    so Q2 asks nothing (never a negative payment); Q3 and Q4 ask what the year to date owes
    beyond what was asked. The four add up to 25% of the year's profit."""
    rows = installments(monthly_profit=MONTHLY, rate_bp=2500, year=2026)
    assert [(r.profit, r.profit_ytd, r.estimate) for r in rows] == [
        (3000_00, 3000_00, 750_00), (-1000_00, 2000_00, 0), (2000_00, 4000_00, 250_00), (4000_00, 8000_00, 1000_00)]
    assert sum(r.estimate for r in rows) == 2000_00
    assert all(r.safe_harbour is None for r in rows)


def test_a_loss_year_to_date_asks_nothing():
    rows = installments(monthly_profit={1: -100_00, 5: 50_00}, rate_bp=3000, year=2026)
    assert [r.estimate for r in rows] == [0, 0, 0, 0]


def test_the_safe_harbour_is_110_percent_above_150k_agi_and_100_percent_otherwise():
    high = installments(monthly_profit={}, rate_bp=2500, year=2026, last_year_tax=10_000_00, last_year_agi=150_000_01)
    assert [r.safe_harbour for r in high] == [2750_00] * 4
    at_limit = installments(monthly_profit={}, rate_bp=2500, year=2026, last_year_tax=10_000_00, last_year_agi=150_000_00)
    assert [r.safe_harbour for r in at_limit] == [2500_00] * 4
    odd = installments(monthly_profit={}, rate_bp=2500, year=2026, last_year_tax=1001, last_year_agi=None)
    assert [r.safe_harbour for r in odd] == [250, 251, 250, 250] and sum(r.safe_harbour for r in odd) == 1001


def test_elsewhere_each_calendar_quarter_stands_alone():
    rows = installments(monthly_profit=MONTHLY, rate_bp=2000, year=2026, us=False)
    assert [(r.period.first_month, r.profit, r.estimate) for r in rows] == [
        (1, 3000_00, 600_00), (4, -500_00, 0), (7, 2500_00, 500_00), (10, 3000_00, 600_00)]


@pytest.mark.django_db
def test_a_sale_at_the_years_last_second_counts_in_that_years_last_period(store):
    """The periods end at midnight UTC on Dec 31: a sale a minute before is in 2026's Q4, one a
    minute after is in 2027's Q1; payments recorded show against their period."""
    books_settings_update(store=store, tax_rate="20")
    product = ProductFactory(store=store, amount=1000)
    with time_machine.travel("2026-12-31 23:59:00Z", tick=False):
        late = buy(store=store, product=product)
    with time_machine.travel("2027-01-01 00:01:00Z", tick=False):
        early = buy(store=store, product=product)
    tax_payment_record(store=store, year=2026, quarter=4, amount=150, paid_on=date(2027, 1, 10))
    q4 = store_installments(store=store, year=2026)[3]
    q1 = store_installments(store=store, year=2027)[0]
    late_net, early_net = 1000 - late.fee, 1000 - early.fee
    assert (q4.profit, q4.estimate, q4.paid) == (late_net, prorate(late_net, 2000, 10_000), 150)
    assert (q1.profit, q1.estimate, q1.paid) == (early_net, prorate(early_net, 2000, 10_000), 0)


@pytest.mark.django_db
def test_the_reminder_goes_a_week_before_the_due_date_once(store, django_capture_on_commit_callbacks):
    books_settings_update(store=store, tax_rate="25")
    with django_capture_on_commit_callbacks(execute=True):
        assert tax_reminders_send(today=date(2026, 4, 7)) == 0  # Apr 15 is eight days away
        assert tax_reminders_send(today=date(2026, 4, 8)) == 1
        assert tax_reminders_send(today=date(2026, 4, 9)) == 0  # sent already
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [store.owner.email]
    assert message.subject == "Estimated tax for 2026 Q1 is due April 15"
    assert "Estimate for this period: $0.00" in message.body
    assert TaxReminder.objects.filter(store=store, year=2026, quarter=1).count() == 1
