import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from stall.catalog.models import ProductStatus
from stall.catalog.services import product_create
from stall.checkout.discounts import discount_create
from stall.orders.models import Entitlement, Order
from stall.testing import StoreFactory, UserFactory, product_with_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_buyer_applies_a_shared_code_to_a_cart_of_two_products_and_a_bundle(live_server, phone, shot):
    """A buyer follows the creator's ?code=SPRING link, puts a book, a zine and a bundle (poster +
    stickers) in the cart with plain forms, checks out once with the code pre-filled, sees the
    lines, the discount and the total, pays with the sandbox card and downloads all four files."""
    store = StoreFactory(owner=UserFactory(), name="Ada's Field Notes", slug="ada")
    product_with_file(store=store, name="Book", amount=1000, content=b"the book\n")
    product_with_file(store=store, name="Zine", amount=300, content=b"the zine\n")
    poster = product_with_file(store=store, name="Poster", amount=500, content=b"the poster\n")
    stickers = product_with_file(store=store, name="Stickers", amount=400, content=b"the stickers\n")
    product_create(store=store, name="Starter Pack", amount=800, kind="bundle", status=ProductStatus.PUBLISHED,
                   parts=[poster.pk, stickers.pk])
    discount_create(store=store, code="SPRING", kind="percent", percent_off=20)

    page = phone.new_page()
    page.goto(f"{live_server.url}/s/ada/?code=SPRING")
    for name in ("Book", "Zine", "Starter Pack"):
        page.get_by_role("link", name=re.compile(rf"\b{name}\b")).click()
        expect(page.get_by_test_id("code-note")).to_have_text("Code SPRING will be applied at checkout.")
        if name == "Starter Pack":
            expect(page.get_by_test_id("bundle-parts")).to_contain_text("Poster")
            shot(page, "1-bundle-page")
        page.get_by_role("button", name="Add to cart").click()
        expect(page).to_have_url(re.compile(r"/s/ada/cart/$"))
        page.get_by_role("link", name="Keep shopping").click()
    page.get_by_test_id("cart-link").click()
    expect(page.get_by_test_id("cart-subtotal")).to_have_text("$21.00")
    expect(page.get_by_label("Discount code")).to_have_value("SPRING")
    shot(page, "2-cart")
    page.get_by_label("Your email").fill("reader@example.com")
    page.get_by_role("button", name="Check out").click()

    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))
    lines = page.get_by_test_id("checkout-lines")
    for text in ("Book", "Zine", "Starter Pack", "Discount (SPRING)", "−$4.20"):
        expect(lines).to_contain_text(text)
    expect(page.get_by_test_id("checkout-total")).to_have_text("$16.80")
    page.get_by_label(re.compile("4242")).check()
    shot(page, "3-pay")
    page.get_by_role("button", name="Pay $16.80").click()

    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    shot(page, "4-thank-you")
    order = Order.objects.get(email="reader@example.com")
    assert (order.amount_total, order.lines.count(), Entitlement.objects.filter(order=order).count()) == (1680, 3, 4)
    contents = []
    links = page.get_by_role("link", name="Download")
    expect(links).to_have_count(4)
    for index in range(4):
        with page.expect_download() as download:
            links.nth(index).click()
        contents.append(Path(download.value.path()).read_bytes())
    assert sorted(contents) == [b"the book\n", b"the poster\n", b"the stickers\n", b"the zine\n"]
