"""Expenses: recorded with a receipt, repeated monthly, imported from CSV; and every books form
refusing bad input with a message next to the field."""

from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from stall.books.categories import category_create
from stall.books.errors import CsvInvalid, ExpenseInvalid, UnknownCategory
from stall.books.models import BooksSettings, Envelope, Expense
from stall.books.services import (
    books_settings_update,
    envelope_create,
    expense_create,
    expenses_import_csv,
    expenses_recur,
)
from stall.testing import StoreFactory

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_an_expense_with_its_receipt(store):
    receipt = SimpleUploadedFile("invoice.pdf", PDF, content_type="application/pdf")
    expense = expense_create(store=store, date=date(2026, 2, 1), amount=1250, category="Software and subscriptions",
                             vendor="Editor", receipt=receipt)
    assert (expense.category, expense.currency, expense.amount) == ("software", "USD", 1250)
    with expense.receipt.open("rb") as f:
        assert f.read() == PDF


def test_bad_expenses_are_refused(store):
    with pytest.raises(ExpenseInvalid, match="above zero"):
        expense_create(store=store, date=date(2026, 2, 1), amount=-5, category="software")
    with pytest.raises(UnknownCategory, match="No expense category “Yachts”"):
        expense_create(store=store, date=date(2026, 2, 1), amount=500, category="Yachts")
    with pytest.raises(ExpenseInvalid, match="must be an image"):
        expense_create(store=store, date=date(2026, 2, 1), amount=500, category="software",
                       receipt=SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf"))
    assert not Expense.objects.exists()


def test_the_creator_extends_the_categories(store):
    category_create(store=store, name="Studio hire")
    assert expense_create(store=store, date=date(2026, 2, 1), amount=500, category="studio hire").category == "studio_hire"
    other = StoreFactory()
    with pytest.raises(UnknownCategory):
        expense_create(store=other, date=date(2026, 2, 1), amount=500, category="Studio hire")


def test_a_monthly_expense_repeats_on_its_day_or_the_months_last(store):
    expense_create(store=store, date=date(2026, 1, 31), amount=900, category="software", vendor="Host", monthly=True)
    assert expenses_recur(today=date(2026, 4, 15)) == 2  # Feb 28 and Mar 31; Apr 30 is still to come
    assert expenses_recur(today=date(2026, 4, 15)) == 0  # twice is once
    assert expenses_recur(today=date(2026, 4, 30)) == 1
    assert sorted(Expense.objects.values_list("date", flat=True)) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_a_csv_import_keeps_the_good_rows_and_reports_the_bad(store):
    text = ("Date,Amount,Category,Vendor,Note\n"
            "2026-01-05,12.50,software,Editor,\n"
            "2026-13-01,3.00,software,Bad date,\n"
            "2026-01-06,-4.00,software,Negative,\n"
            "2026-01-07,4.00,Yachts,Unknown,\n"
            "2026-01-08,\"1,200.00\",Advertising,Ads,launch\n")
    result = expenses_import_csv(store=store, text=text)
    assert result.created == 2
    assert result.errors == [
        (3, "“2026-13-01” is not a date (YYYY-MM-DD)."),
        (4, "Amount cannot be negative."),
        (5, "No expense category “Yachts”. Add it under Categories first."),
    ]
    assert sorted(Expense.objects.values_list("amount", "category")) == [(1250, "software"), (120000, "advertising")]


def test_a_csv_with_the_wrong_columns_is_refused_whole(store):
    with pytest.raises(CsvInvalid, match="missing columns amount, category; unknown column price"):
        expenses_import_csv(store=store, text="date,price\n2026-01-01,3.00\n")
    assert not Expense.objects.exists()


@pytest.fixture
def signed_in(client, store):
    client.force_login(store.owner)
    return client


def test_the_expense_form_refuses_a_negative_amount_and_an_unknown_category(signed_in, store):
    url = reverse("dashboard:books_expenses", args=[store.slug])
    page = signed_in.post(url, {"form": "expense", "date": "2026-02-01", "amount": "-3.00", "category": "software"})
    assert page.status_code == 400 and "Amount cannot be negative." in page.content.decode()
    page = signed_in.post(url, {"form": "expense", "date": "2026-02-01", "amount": "3.00", "category": "yachts"})
    assert page.status_code == 400 and "Select a valid choice." in page.content.decode()
    assert not Expense.objects.exists()


def test_the_expense_form_records_one_with_a_receipt_and_only_its_creator_reads_it(signed_in, client, store):
    url = reverse("dashboard:books_expenses", args=[store.slug])
    response = signed_in.post(url, {"form": "expense", "date": "2026-02-01", "amount": "7.25", "category": "supplies",
                                    "vendor": "Paper Co", "receipt": SimpleUploadedFile("r.png", PNG, "image/png")})
    assert response.status_code == 302
    expense = Expense.objects.get()
    assert (expense.amount, expense.vendor) == (725, "Paper Co")
    receipt_url = reverse("dashboard:books_receipt", args=[store.slug, expense.pk])
    assert b"".join(signed_in.get(receipt_url).streaming_content) == PNG
    other = StoreFactory()
    client.force_login(other.owner)
    assert client.get(reverse("dashboard:books_receipt", args=[other.slug, expense.pk])).status_code == 404
    assert client.get(receipt_url).status_code == 404


def test_the_csv_form_reports_wrong_columns_and_bad_rows(signed_in, store):
    url = reverse("dashboard:books_expenses", args=[store.slug])
    page = signed_in.post(url, {"form": "import", "csv-file": SimpleUploadedFile("x.csv", b"when,how much\n1,2\n")})
    assert page.status_code == 400 and "missing columns date, amount, category" in page.content.decode()
    page = signed_in.post(url, {"form": "import", "csv-file": SimpleUploadedFile(
        "x.csv", b"date,amount,category\n2026-01-01,2.00,office\n2026-01-02,x,office\n")})
    body = page.content.decode()
    assert page.status_code == 200 and "1 expense imported. 1 row skipped" in body and "Line 3: “x” is not an amount." in body


def test_the_split_form_refuses_more_than_100_percent(signed_in, store):
    books_settings_update(store=store, tax_rate="30")
    envelope_create(store=store, name="Owner pay", share="50")
    url = reverse("dashboard:books_set_aside", args=[store.slug])
    page = signed_in.post(url, {"form": "split", "tax_rate": "55", "country": "US"})
    assert page.status_code == 400 and "would add up to 105%" in page.content.decode()
    page = signed_in.post(url, {"form": "envelope", "new-name": "Emergency", "new-share": "21"})
    assert page.status_code == 400 and "would add up to 101%" in page.content.decode()
    page = signed_in.post(url, {"form": "split", "tax_rate": "-1", "country": "US"})
    assert page.status_code == 400
    assert BooksSettings.objects.get(store=store).tax_rate_bp == 3000
    assert Envelope.objects.count() == 1
    assert signed_in.post(url, {"form": "split", "tax_rate": "20", "country": "us"}).status_code == 302
    assert BooksSettings.objects.get(store=store).split.startswith("tax:2000;")


def test_the_tax_payment_form_refuses_a_negative_amount(signed_in, store):
    url = reverse("dashboard:books_taxes", args=[store.slug])
    page = signed_in.post(url, {"year": "2026", "quarter": "1", "amount": "-10", "paid_on": "2026-04-10"})
    assert page.status_code == 400 and "Amount cannot be negative." in page.content.decode()
    assert signed_in.post(url, {"year": "2026", "quarter": "1", "amount": "100", "paid_on": "2026-04-10"}).status_code == 302
    assert "$100.00" in signed_in.get(url + "?year=2026").content.decode()


def test_the_books_pages_open(signed_in, store):
    for name in ("books", "books_set_aside", "books_expenses", "books_taxes", "books_reports"):
        assert signed_in.get(reverse(f"dashboard:{name}", args=[store.slug])).status_code == 200, name
