"""Browser journeys for the back office (#12): a creator reads the revenue chart over a year of
sales; records an expense with its receipt and downloads the profit and loss."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from playwright.sync_api import expect

from stall.books.models import Expense
from stall.catalog.models import ProductKind
from stall.insights.rollups import rollups_rebuild
from stall.testing import FACTORY_PASSWORD, ProductFactory, StoreFactory, UserFactory, buy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def log_in(page, live_server, email: str, slug: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{slug}/$"))


def test_a_creator_reads_the_revenue_chart_over_a_generated_year(live_server, desktop, phone, shot):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Type Foundry", slug="foundry")
    font = ProductFactory(store=store, name="Grotesk", amount=2500, kind=ProductKind.DOWNLOAD)
    today = datetime.now(UTC).date()
    # A sale on the 10th of each of the last twelve months, two in the month six months back.
    months = []
    for back in range(11, -1, -1):
        first = date(today.year, today.month, 1)
        for _ in range(back):
            first = (first - timedelta(days=1)).replace(day=1)
        day = min(first.replace(day=10), today)
        months.append(day)
        with time_machine.travel(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12), tick=False):
            buy(store=store, product=font, email=f"fan{back}@example.com")
            if back == 6:
                buy(store=store, product=font, email="twice@example.com")
    rollups_rebuild(start=months[0], end=today)

    page = desktop.new_page()
    log_in(page, live_server, creator.email, "foundry")
    page.get_by_role("link", name="Insights", exact=True).click()
    page.locator("select[name=range]").select_option("12m")
    page.locator("select[name=by]").select_option("month")
    page.get_by_role("button", name="Show").click()
    chart = page.get_by_role("img", name=re.compile("Gross sales by month"))
    expect(chart).to_be_visible()
    busy = months[5].strftime("%Y-%m")
    expect(page.locator(f'rect[aria-label="{busy}: $50.00"]')).to_have_count(1)
    expect(page.locator('rect[aria-label$=": $25.00"]')).to_have_count(11)
    expect(page.get_by_test_id("insights-stats")).to_contain_text("$325.00")  # 13 sales of $25
    page.get_by_text("Chart figures as a table").click()
    expect(page.get_by_test_id("revenue-table").get_by_role("row", name=re.compile(busy))).to_contain_text("$50.00")
    expect(page.get_by_role("cell", name="Grotesk")).to_be_visible()
    shot(page, "insights-desktop")

    small = phone.new_page()
    log_in(small, live_server, creator.email, "foundry")
    small.goto(f"{live_server.url}/dashboard/foundry/insights/?range=12m&by=month")
    expect(small.get_by_role("img", name=re.compile("Gross sales by month"))).to_be_visible()
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    shot(small, "insights-phone")


def test_a_creator_records_an_expense_with_a_receipt_and_downloads_the_pnl(live_server, desktop, shot, tmp_path):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Type Foundry", slug="foundry")
    buy(store=store, product=ProductFactory(store=store, name="Grotesk", amount=2500))
    receipt = tmp_path / "hosting-invoice.png"
    receipt.write_bytes(PNG)

    page = desktop.new_page()
    log_in(page, live_server, creator.email, "foundry")
    page.get_by_role("link", name="Books", exact=True).click()
    page.get_by_role("link", name="Expenses").click()
    # A negative amount is refused with the reason next to the field.
    page.get_by_label("Amount").fill("-12")
    page.get_by_label("Category", exact=True).select_option(label="Software and subscriptions")
    page.get_by_role("button", name="Record expense").click()
    expect(page.get_by_text("Amount cannot be negative.")).to_be_visible()
    page.get_by_label("Amount").fill("12.00")
    page.get_by_label("Vendor").fill("Hosting Co")
    page.get_by_label("Receipt").set_input_files(str(receipt))
    page.get_by_label("Repeats every month").check()
    page.get_by_role("button", name="Record expense").click()
    expect(page.get_by_text("Expense recorded.")).to_be_visible()
    row = page.get_by_test_id("expenses").get_by_role("row", name=re.compile("Hosting Co"))
    expect(row).to_contain_text("$12.00")
    href = row.get_by_role("link", name="Receipt").get_attribute("href")
    assert page.request.get(f"{live_server.url}{href}").body() == PNG  # served to the signed-in creator
    expense = Expense.objects.get(store=store)
    assert expense.receipt and expense.monthly
    shot(page, "expenses")

    page.get_by_role("link", name="Profit & loss").click()
    expect(page.get_by_test_id("pnl")).to_contain_text("$12.00")
    with page.expect_download() as download_info:
        page.get_by_test_id("pnl-csv").click()
    download = download_info.value
    assert download.suggested_filename == "foundry-profit-and-loss-by-month.csv"
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    month = date.today().strftime("%Y-%m")
    [this_month] = [r for r in rows if r[0] == month]
    assert (this_month[2], this_month[8]) == ("2500", "1200")
    assert int(this_month[9]) == int(this_month[7]) - 1200  # profit = net income − expenses
