"""Browser journey for usage billing (#9): the creator defines a meter and a plan in the
dashboard, puts a customer (who allowed the store to charge their wallet) on it, the creator's
app sends usage with the Python client, and the creator sees the usage chart and the charges."""

import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.integrations.services import api_key_create
from stall.orders.services import customer_for_email
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory
from stall.wallets.allowances import allowance_grant
from stall.wallets.services import wallet_top_up

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from stall_client import Stall  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_creator_meters_api_calls_and_sees_usage_and_charges(live_server, desktop, phone, shot):
    creator = UserFactory(email="api-maker@example.com")
    store = StoreFactory(owner=creator, name="Bot Works", slug="bots")
    buyer = buyer_for_email(email="dev@example.com")
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
    customer = customer_for_email(store_id=store.pk, email=buyer.email)
    _, secret = api_key_create(store=store, name="app")

    page = desktop.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(creator.email)
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/bots/$"))

    # A meter of API calls.
    page.get_by_role("link", name="Usage", exact=True).click()
    page.get_by_role("link", name="New meter").click()
    page.get_by_label("Key").fill("api_calls")
    page.get_by_label("Name", exact=True).fill("API calls")
    page.get_by_label("Event name").fill("api.call")
    page.get_by_role("button", name="Create meter").click()
    expect(page.get_by_text("Meter “API calls” created.")).to_be_visible()

    # A plan at 0.2¢ a call; too many decimals first, then right.
    page.get_by_role("link", name="New plan").click()
    page.get_by_label("Name", exact=True).fill("Pay per call")
    page.get_by_label("API calls: price").select_option("per_unit")
    page.get_by_label("API calls: unit price (minor units)").fill("0.00000001")
    page.get_by_role("button", name="Create plan").click()
    expect(page.get_by_text("A unit price has at most 6 decimals of the minor unit.")).to_be_visible()
    shot(page, "1-plan-too-many-decimals")
    page.get_by_label("API calls: unit price (minor units)").fill("0.2")
    page.get_by_role("button", name="Create plan").click()
    expect(page.get_by_text("Plan “Pay per call” created.")).to_be_visible()

    # The customer on the plan, charged live every 10¢.
    page.get_by_role("link", name="Put a customer on a plan").click()
    page.get_by_label("Customer's email").fill(customer.email)
    page.get_by_label("Charge every (minor units)").fill("10")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text(f"{customer.email} is on the plan.")).to_be_visible()

    # The creator's app meters 120 calls with the Python client: 24¢, charged 10¢ at a time.
    with Stall(secret, base_url=live_server.url) as stall:
        for start in (0, 60):
            sent = stall.events.send(
                [{"id": f"req-{n}", "customer": customer.pk, "name": "api.call"} for n in range(start, start + 60)])
            assert sent.accepted == 60

    page.reload()
    meter = page.get_by_test_id("meter-api_calls")
    expect(meter.get_by_test_id("quantity")).to_have_text("120")
    expect(meter.locator("svg rect")).not_to_have_count(0)
    expect(page.get_by_test_id("usage-charged")).to_have_text("$0.24")
    expect(page.get_by_test_id("usage-charges").locator("tbody tr")).to_have_count(2)  # 12¢ and 12¢
    shot(page, "2-customer-usage")

    # On a phone the page reads as well.
    small = phone.new_page()
    small.context.add_cookies(page.context.cookies())
    small.goto(page.url)
    expect(small.get_by_test_id("usage-charged")).to_have_text("$0.24")
    shot(small, "3-customer-usage-phone")
