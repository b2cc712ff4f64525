import re

import pytest
from django.core import mail

from stall.catalog.models import PriceType
from stall.ledger.selectors import account_balance
from stall.orders.models import Order
from stall.testing import StoreFactory, UserFactory, product_with_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_new_buyer_pays_what_they_want_then_downloads_from_the_library(live_server, phone, shot):
    """A new buyer on a phone buys the pay-what-you-want product with sandbox_visa, downloads it on the
    success page, then opens the receipt's library link and downloads it again from the library."""
    store = StoreFactory(owner=UserFactory(), name="Ada's Field Notes", slug="ada")
    product = product_with_file(
        store=store, name="Sample Pack", amount=100, price_type=PriceType.PAY_WHAT_YOU_WANT, suggested_amount=500,
        content=b"one hundred samples\n", description="One hundred one-shot samples.", download_limit=3,
    )
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/ada/")
    shot(page, "1-store")
    page.get_by_role("link", name=re.compile("Sample Pack")).click()
    page.wait_for_url(f"**/s/ada/{product.slug}/")
    shot(page, "2-product")
    page.get_by_role("link", name="Buy").click()

    page.get_by_label("Your email").fill("new.buyer@example.com")
    page.get_by_label(re.compile("Pay what you want")).fill("0.50")
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_text("The minimum for Sample Pack is $1.00.").is_visible()
    shot(page, "3-below-minimum")
    page.get_by_label(re.compile("Pay what you want")).fill("7.50")
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/checkout/chk_*/")
    assert page.get_by_role("heading", name="Pay $7.50").is_visible()
    page.get_by_label(re.compile("4242")).check()
    shot(page, "4-sandbox-pay")
    page.get_by_role("button", name="Pay $7.50").click()

    page.wait_for_url("**/complete/")
    assert page.get_by_role("heading", name="Thank you!").is_visible()
    shot(page, "5-thank-you")
    with page.expect_download() as first:
        page.get_by_role("link", name="Download").click()
    assert first.value.suggested_filename == "zine.txt"
    assert open(first.value.path(), "rb").read() == b"one hundred samples\n"

    order = Order.objects.get(email="new.buyer@example.com")
    assert order.amount_total == 750
    # $7.50 less the sandbox card fee: 2.9% of 750 = 21.75 → 22, plus 30 = 52.
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 750 - 52

    receipt = [m for m in mail.outbox if m.to == ["new.buyer@example.com"]]
    assert len(receipt) == 1 and receipt[0].subject == "Your receipt from Ada's Field Notes"
    library_link = re.search(r"http://\S+/library/enter/\S+/", receipt[0].body).group(0)
    path = library_link.split("8000", 1)[-1] if ":8000" in library_link else "/" + library_link.split("/", 3)[3]

    page.goto(f"{live_server.url}{path}")
    page.wait_for_url("**/library/")
    assert page.get_by_text("Bought with new.buyer@example.com").is_visible()
    assert page.get_by_text("1 of 3 downloads used").is_visible()
    shot(page, "6-library")
    with page.expect_download() as second:
        page.get_by_role("link", name="Download").click()
    assert open(second.value.path(), "rb").read() == b"one hundred samples\n"
    page.reload()
    assert page.get_by_text("2 of 3 downloads used").is_visible()


def test_declined_card_keeps_the_checkout_open_and_3ds_completes_it(live_server, desktop, shot):
    """A declined card shows the processor's message and the buyer can retry on the same checkout; a card
    asking for 3-D Secure completes after the buyer confirms on the sandbox bank's page."""
    store = StoreFactory(owner=UserFactory(), name="Studio", slug="studio")
    product = product_with_file(store=store, name="Template", amount=300)
    page = desktop.new_page()
    page.goto(f"{live_server.url}/s/studio/{product.slug}/")
    page.get_by_role("link", name="Buy").click()
    page.get_by_label("Your email").fill("buyer@example.com")
    page.get_by_role("button", name="Continue").click()

    page.get_by_label(re.compile("declined")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    assert page.get_by_text("Your card was declined.").is_visible()
    shot(page, "1-declined")
    assert Order.objects.count() == 0

    page.get_by_label(re.compile("3-D Secure")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    page.wait_for_url("**/authenticate/")
    shot(page, "2-3ds")
    page.get_by_role("button", name="Confirm payment").click()
    page.wait_for_url("**/complete/")
    assert page.get_by_role("heading", name="Thank you!").is_visible()
    assert Order.objects.filter(email="buyer@example.com", amount_total=300).count() == 1
