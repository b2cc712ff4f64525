"""Quarterly estimated tax.

US creators pay estimated tax in four installments (IRS Form 1040-ES). The periods are not
calendar quarters: income earned Jan 1–Mar 31 is due Apr 15, Apr 1–May 31 by Jun 15,
Jun 1–Aug 31 by Sep 15, and Sep 1–Dec 31 by Jan 15 of the next year. A due date on a Saturday or
Sunday moves to the Monday (public holidays are not known here: the page says so).

The estimate for each period is the tax on the year-to-date profit at the period's end (profit ×
the creator's rate, never below zero) less what the earlier periods' estimates already asked
for, never below zero: a loss quarter asks for nothing and lowers what the next ones ask.
The safe harbour (paying it avoids the underpayment penalty whatever this year's profit): 100% of
last year's tax, 110% when last year's adjusted gross income was above $150,000, in four equal
installments (the last taking the rounding).

Elsewhere, a plain summary per calendar quarter: profit, the set-aside rate's share of it, and
what was recorded as paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from stall.core.money import prorate

from .models import FULL, BooksSettings, TaxPayment
from .selectors import profit_and_loss

US_PERIODS = ((1, 1, 3, (4, 15)), (2, 4, 5, (6, 15)), (3, 6, 8, (9, 15)), (4, 9, 12, (1, 15)))
CALENDAR_QUARTERS = ((1, 1, 3, (4, 30)), (2, 4, 6, (7, 31)), (3, 7, 9, (10, 31)), (4, 10, 12, (1, 31)))
SAFE_HARBOUR_AGI = 150_000_00  # USD, minor units
REMIND_DAYS_BEFORE = 7


def _weekday_after(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class TaxPeriod:
    year: int
    quarter: int
    first_month: int
    last_month: int
    due: date

    @property
    def start(self) -> date:
        return date(self.year, self.first_month, 1)

    @property
    def end(self) -> date:
        return (date(self.year + (self.last_month == 12), self.last_month % 12 + 1, 1)) - timedelta(days=1)


def tax_periods(year: int, *, us: bool = True) -> list[TaxPeriod]:
    table = US_PERIODS if us else CALENDAR_QUARTERS
    return [
        TaxPeriod(year, q, first, last, _weekday_after(date(year + (due[0] == 1), due[0], due[1])))
        for q, first, last, due in table
    ]


@dataclass(frozen=True)
class Installment:
    period: TaxPeriod
    profit: int  # in the period
    profit_ytd: int  # from Jan 1 to the period's end
    estimate: int  # what this period's payment should be
    safe_harbour: int | None  # this period's share of the safe harbour, when last year's tax is known
    paid: int  # recorded payments for the period


def installments(*, monthly_profit: dict[int, int], rate_bp: int, year: int, us: bool = True,
                 last_year_tax: int | None = None, last_year_agi: int | None = None,
                 paid: dict[int, int] | None = None) -> list[Installment]:
    """The four periods' figures from the profit of each month (1–12) of ``year``."""
    paid = paid or {}
    annual_safe = None
    if us and last_year_tax is not None:
        annual_safe = prorate(last_year_tax, 110, 100) if (last_year_agi or 0) > SAFE_HARBOUR_AGI else last_year_tax
    out, asked, ytd = [], 0, 0
    for period in tax_periods(year, us=us):
        profit = sum(monthly_profit.get(m, 0) for m in range(period.first_month, period.last_month + 1))
        ytd += profit
        if us:
            owed_so_far = max(0, prorate(ytd, rate_bp, FULL))
            estimate = max(0, owed_so_far - asked)
            asked += estimate
        else:
            estimate = max(0, prorate(profit, rate_bp, FULL))
        safe = None
        if annual_safe is not None:
            safe = prorate(annual_safe, period.quarter, 4) - prorate(annual_safe, period.quarter - 1, 4)
        out.append(Installment(period, profit, ytd, estimate, safe, paid.get(period.quarter, 0)))
    return out


def store_installments(*, store, year: int) -> list[Installment]:
    """The store's four periods of ``year``, from its P&L in its own currency."""
    settings = BooksSettings.objects.filter(store=store).first() or BooksSettings(store=store)
    pnl = profit_and_loss(store=store, granularity="month", start=date(year, 1, 1), end=date(year, 12, 31))
    monthly = {int(row.period[5:7]): row.profit for row in pnl if row.currency == store.currency}
    paid: dict[int, int] = {}
    for quarter, amount in TaxPayment.objects.filter(store=store, year=year).values_list("quarter", "amount"):
        paid[quarter] = paid.get(quarter, 0) + amount
    us = settings.country == "US"
    return installments(monthly_profit=monthly, rate_bp=settings.tax_rate_bp, year=year, us=us,
                        last_year_tax=settings.last_year_tax, last_year_agi=settings.last_year_agi, paid=paid)


def period_due_soon(*, today: date) -> TaxPeriod | None:
    """The US period whose due date is at most a week away (today included), if any."""
    for year in (today.year - 1, today.year):
        for period in tax_periods(year):
            if today <= period.due <= today + timedelta(days=REMIND_DAYS_BEFORE):
                return period
    return None
