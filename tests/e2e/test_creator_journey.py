import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.ledger.selectors import account_balance
from stall.orders.models import Order, OrderStatus
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def overview_balance(page):
    """The Balance figure on the dashboard's overview."""
    return page.locator(".stats .card").filter(has_text="Balance").locator(".stat")


def test_creator_sells_a_new_product_and_refunds_the_sale(live_server, desktop, phone, shot, tmp_path):
    """A creator logs in, creates a product with its file and publishes it from one form, sees a buyer's sale in the orders,
    refunds it in full; the order page shows it refunded with the amount, the buyer is emailed, the
    download stops working and the balance is back to minus the processor's fee."""
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Beat Shop", slug="beats")

    page = desktop.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill("maker@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{store.slug}/$"))
    expect(overview_balance(page)).to_have_text("$0.00")
    shot(page, "1-overview-empty")

    page.goto(f"{live_server.url}/dashboard/{store.slug}/products/new/")
    page.get_by_label("Name").fill("Beat Tape")
    page.get_by_label("Price (USD)").fill("abc")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("“abc” is not an amount.")).to_be_visible()
    shot(page, "2-bad-price")
    page.get_by_label("Price (USD)").fill("4.00")
    page.get_by_label("Description").fill("Ten **lo-fi** beats.")
    beat = tmp_path / "beat-tape.zip"
    beat.write_bytes(b"PK\x03\x04 pretend zip of ten beats")
    page.get_by_label("Files").set_input_files(str(beat))
    page.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(re.compile(r"/products/prod_\w+/$"))
    expect(page.get_by_text("beat-tape.zip").first).to_be_visible()
    shot(page, "3-product-with-file")

    buyer = phone.new_page()
    buyer.goto(f"{live_server.url}/s/beats/beat-tape/")
    buyer.get_by_role("link", name="Buy").click()
    buyer.get_by_label("Your email").fill("fan@example.com")
    buyer.get_by_role("button", name="Continue").click()
    buyer.get_by_role("button", name="Pay $4.00").click()
    expect(buyer).to_have_url(re.compile(r"/complete/$"))
    expect(buyer.get_by_role("link", name="Download")).to_be_visible()
    download_href = buyer.get_by_role("link", name="Download").get_attribute("href")

    page.goto(f"{live_server.url}/dashboard/{store.slug}/orders/")
    page.get_by_label("Search orders").fill("fan@")
    page.get_by_role("button", name="Search").click()
    order = Order.objects.get(email="fan@example.com")
    rows = page.locator("table.orders tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator(".c-email")).to_have_text("fan@example.com")
    expect(rows.locator(".c-total")).to_have_text("$4.00")
    expect(rows.locator(".c-status")).to_have_text("Paid")
    shot(page, "4-orders")
    page.get_by_role("link", name=re.compile(order.pk[-8:])).first.click()
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Order Paid")
    expect(page.get_by_role("row", name="Refunded")).to_have_text("Refunded−$0.00")
    shot(page, "5-order")
    fee = order.fee
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 400 - fee

    page.get_by_label("Amount").fill("5.00")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_text("At most $4.00 of this order can be refunded.")).to_be_visible()
    page.get_by_label("Amount").fill("")
    page.get_by_label("Reason").fill("Asked by the buyer")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_role("status")).to_have_text("Refunded $4.00.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Order Refunded")
    expect(page.get_by_role("row", name="Refunded")).to_have_text("Refunded−$4.00")
    expect(page.get_by_role("row", name="Net")).to_have_text("NetWhat this order moved into your balance.-$0.42")
    expect(page.get_by_text("This order has been refunded in full.")).to_be_visible()
    refunds = page.locator("section").filter(
        has=page.get_by_role("heading", name="Refunds", exact=True)).get_by_role("listitem")
    expect(refunds).to_have_count(1)
    expect(refunds).to_have_text(re.compile(
        r"^\$4\.00 [A-Z][a-z]{2} \d{1,2}, \d{4} \d{2}:\d{2} · Asked by the buyer\s+Succeeded\s*$"))
    expect(refunds.locator(".badge")).to_have_text("Succeeded")
    expect(page.get_by_text(re.compile(r"^Revoked "))).to_be_visible()
    shot(page, "6-refunded")

    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 400)
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == -fee
    page.goto(f"{live_server.url}/dashboard/{store.slug}/")
    # The processor keeps its fee on a refund: 2.9% of $4.00 = 11.6 → 12¢, plus 30¢.
    assert fee == 42
    expect(overview_balance(page)).to_have_text("-$0.42")
    expect(page.locator("table.orders tbody tr .c-status")).to_have_text(["Refunded"])
    shot(page, "7-overview-after-refund")

    assert [m.subject for m in mail.outbox if m.to == ["fan@example.com"]] == [
        "Your receipt from Beat Shop", "Refund from Beat Shop",
    ]
    response = buyer.goto(f"{live_server.url}{download_href}")
    assert response.status == 403
    expect(buyer.get_by_text("This purchase was refunded")).to_be_visible()
