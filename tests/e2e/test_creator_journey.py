import re

import pytest
from django.core import mail

from stall.ledger.selectors import account_balance
from stall.orders.models import Order, OrderStatus
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_creator_sells_a_new_product_and_refunds_the_sale(live_server, desktop, phone, shot, tmp_path):
    """A creator logs in, creates a published product with a file, sees a buyer's sale in the orders,
    refunds it in full; the buyer is emailed, the download stops working and the balance is back to
    minus the processor's fee."""
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Beat Shop", slug="beats")

    page = desktop.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill("maker@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/dashboard/{store.slug}/")
    shot(page, "1-overview-empty")

    page.goto(f"{live_server.url}/dashboard/{store.slug}/products/new/")
    page.get_by_label("Name").fill("Beat Tape")
    page.get_by_label("Price (USD)").fill("abc")
    page.get_by_role("button", name="Create product").click()
    assert page.get_by_text("“abc” is not an amount.").is_visible()
    shot(page, "2-bad-price")
    page.get_by_label("Price (USD)").fill("4.00")
    page.get_by_label("Description").fill("Ten **lo-fi** beats.")
    page.get_by_label("Status").select_option("published")
    page.get_by_role("button", name="Create product").click()
    page.wait_for_url(re.compile(r".*/products/prod_\w+/$"))

    beat = tmp_path / "beat-tape.zip"
    beat.write_bytes(b"PK\x03\x04 pretend zip of ten beats")
    page.get_by_label("Add files").set_input_files(str(beat))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_text("beat-tape.zip").first.is_visible()
    shot(page, "3-product-with-file")

    buyer = phone.new_page()
    buyer.goto(f"{live_server.url}/s/beats/beat-tape/")
    buyer.get_by_role("link", name="Buy").click()
    buyer.get_by_label("Your email").fill("fan@example.com")
    buyer.get_by_role("button", name="Continue").click()
    buyer.get_by_role("button", name="Pay $4.00").click()
    buyer.wait_for_url("**/complete/")
    download_href = buyer.get_by_role("link", name="Download").get_attribute("href")

    page.goto(f"{live_server.url}/dashboard/{store.slug}/orders/")
    page.get_by_label("Search orders").fill("fan@")
    page.get_by_role("button", name="Search").click()
    order = Order.objects.get(email="fan@example.com")
    shot(page, "4-orders")
    page.get_by_role("link", name=re.compile(order.pk[-8:])).first.click()
    page.wait_for_url(f"**/orders/{order.pk}/")
    shot(page, "5-order")
    fee = order.fee
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 400 - fee

    page.get_by_label("Amount").fill("5.00")
    page.get_by_role("button", name="Refund").click()
    assert page.get_by_text("At most $4.00 of this order can be refunded.").is_visible()
    page.get_by_label("Amount").fill("")
    page.get_by_label("Reason").fill("Asked by the buyer")
    page.get_by_role("button", name="Refund").click()
    page.wait_for_load_state("networkidle")
    shot(page, "6-refunded")

    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 400)
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == -fee
    assert [m.subject for m in mail.outbox if m.to == ["fan@example.com"]] == [
        "Your receipt from Beat Shop", "Refund from Beat Shop",
    ]
    response = buyer.goto(f"{live_server.url}{download_href}")
    assert response.status == 403
    assert buyer.get_by_text("This purchase was refunded").is_visible()
