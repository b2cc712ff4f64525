"""Income from the ledger, the P&L and its CSV, and the beancount journal that beancount itself
parses with balances equal to the ledger's."""

import csv
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from beancount import loader
from beancount.core import data
from django.test import override_settings
from django.urls import reverse

from stall.books.beancount_export import beancount_journal
from stall.books.selectors import income_by, profit_and_loss
from stall.books.services import books_settings_update, envelope_create, expense_create
from stall.catalog.models import ProductKind
from stall.ledger.models import Account, AccountKind
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(store):
    """Two months of a store: sales of two kinds, a partial refund, a tax reserve and an envelope,
    and expenses, one of them in euros."""
    books_settings_update(store=store, tax_rate="25")
    envelope_create(store=store, name="Owner pay", share="30")
    zine = ProductFactory(store=store, amount=1200, kind=ProductKind.DOWNLOAD)
    tip = ProductFactory(store=store, amount=500, kind=ProductKind.TIP, name="Tip")
    orders = []
    with time_machine.travel("2026-03-05 12:00Z", tick=False):
        orders.append(buy(store=store, product=zine))
        orders.append(buy(store=store, product=tip))
        expense_create(store=store, date=date(2026, 3, 2), amount=1999, category="software", vendor="Editor \"Pro\"")
    with time_machine.travel("2026-04-10 12:00Z", tick=False):
        orders.append(buy(store=store, product=zine))
        refund_create(store=store, order_id=orders[0].pk, amount=400)
        expense_create(store=store, date=date(2026, 4, 3), amount=800, category="Advertising")
        expense_create(store=store, date=date(2026, 4, 4), amount=500, currency="EUR", category="supplies")
    return orders


@override_settings(STALL_PLATFORM_FEE_BPS=0)
def test_income_per_month_and_kind_is_what_the_ledger_moved(store, history):
    first, tip, second = history
    income = income_by(store=store, granularity="month")
    march_dl, march_tip = income[("2026-03", "download", "USD")], income[("2026-03", "tip", "USD")]
    assert (march_dl.gross, march_dl.refunds, march_dl.processing_fees) == (1200, 0, first.fee)
    assert (march_tip.gross, march_tip.processing_fees, march_tip.net) == (500, tip.fee, 500 - tip.fee)
    april = income[("2026-04", "download", "USD")]
    assert (april.gross, april.refunds, april.processing_fees) == (1200, 400, second.fee)
    # The month's net equals what the orders left in the store: the ledger's own figure.
    balance = Account.objects.get(kind=AccountKind.STORE_BALANCE, owner=store.pk)
    reserve = Account.objects.get(kind=AccountKind.TAX_RESERVE, owner=store.pk)
    envelope = Account.objects.get(kind=AccountKind.ENVELOPE)
    assert sum(i.net for i in income.values()) == balance.balance + reserve.balance + envelope.balance


def test_the_profit_and_loss_by_month_quarter_and_year(store, history):
    first, tip, second = history
    by_month = {(r.period, r.currency): r for r in profit_and_loss(store=store, granularity="month")}
    march = by_month[("2026-03", "USD")]
    assert (march.income.net, march.expenses, march.profit) == (1700 - first.fee - tip.fee, {"software": 1999},
                                                                1700 - first.fee - tip.fee - 1999)
    assert by_month[("2026-04", "EUR")].expenses == {"supplies": 500}
    year = {(r.period, r.currency): r for r in profit_and_loss(store=store, granularity="year")}
    assert year[("2026", "USD")].profit == march.profit + by_month[("2026-04", "USD")].profit
    quarters = [r.period for r in profit_and_loss(store=store, granularity="quarter")]
    assert quarters == ["2026-Q1", "2026-Q2", "2026-Q2"]  # Q2 in EUR and in USD


def test_the_csv_export(client, store, history):
    client.force_login(store.owner)
    response = client.get(reverse("dashboard:books_report_csv", args=[store.slug]) + "?by=quarter")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["period", "currency", "gross"]
    q1 = next(r for r in rows if r[:2] == ["2026-Q1", "USD"])
    assert (q1[2], q1[8]) == ("1700", "1999")
    assert q1[10] == "Software and subscriptions: 1999"


def _beancount_balances(text):
    entries, errors, _ = loader.load_string(text)
    assert errors == [], [e.message for e in errors]
    totals = defaultdict(Decimal)
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                totals[(posting.account, posting.units.currency)] += posting.units.number
    return totals, entries


def test_the_beancount_journal_parses_and_its_balances_are_the_ledgers(client, store, history):
    """beancount loads the journal with no error (its balance assertions included), and summing its
    postings gives the ledger's balances for the store, the tax reserve and the envelope."""
    client.force_login(store.owner)
    response = client.get(reverse("dashboard:books_journal", args=[store.slug]))
    assert response.status_code == 200
    text = response.content.decode()
    totals, entries = _beancount_balances(text)
    balance = Account.objects.get(kind=AccountKind.STORE_BALANCE, owner=store.pk).balance
    reserve = Account.objects.get(kind=AccountKind.TAX_RESERVE, owner=store.pk).balance
    envelope = Account.objects.get(kind=AccountKind.ENVELOPE).balance
    assert totals[("Assets:Stall:Balance", "USD")] == Decimal(balance) / 100
    assert totals[("Assets:Stall:TaxReserve", "USD")] == Decimal(reserve) / 100
    assert totals[("Assets:Stall:Envelope:OwnerPay", "USD")] == Decimal(envelope) / 100
    assert totals[("Income:Sales:Download", "USD")] == Decimal("-24.00")
    assert totals[("Income:Sales:Tip", "USD")] == Decimal("-5.00")
    assert totals[("Income:Refunds:Download", "USD")] == Decimal("4.00")
    assert totals[("Expenses:SoftwareAndSubscriptions", "USD")] == Decimal("19.99")
    assert totals[("Expenses:Supplies", "EUR")] == Decimal("5.00")
    assert sum(1 for e in entries if isinstance(e, data.Balance)) == 3


def test_a_wrong_balance_would_fail_beancounts_check(store, history):
    """The balance assertions are real: change the ledger behind the journal's back and beancount
    refuses it."""
    text = beancount_journal(store=store)
    Account.objects.filter(kind=AccountKind.TAX_RESERVE).update(credits_posted=10**6)
    tampered = text.split("\n")
    broken = beancount_journal(store=store).split("\n")
    assert [line for line in broken if " balance " in line] != [line for line in tampered if " balance " in line]
    entries, errors, _ = loader.load_string("\n".join(
        [line for line in tampered if " balance " not in line] + [line for line in broken if " balance " in line]))
    assert errors and "Balance failed" in errors[0].message
