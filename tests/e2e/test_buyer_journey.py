import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect

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
    expect(page).to_have_url(re.compile(rf"/s/ada/{product.slug}/$"))
    shot(page, "2-product")
    page.get_by_role("link", name="Buy").click()

    page.get_by_label("Your email").fill("new.buyer@example.com")
    page.get_by_label(re.compile("Pay what you want")).fill("0.50")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("The minimum for Sample Pack is $1.00.")).to_be_visible()
    shot(page, "3-below-minimum")
    page.get_by_label(re.compile("Pay what you want")).fill("7.50")
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))
    expect(page.get_by_role("heading", name="Pay $7.50")).to_be_visible()
    page.get_by_label(re.compile("4242")).check()
    shot(page, "4-sandbox-pay")
    page.get_by_role("button", name="Pay $7.50").click()

    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    order = Order.objects.get(email="new.buyer@example.com")
    expect(page.get_by_text(re.compile(r"^Order ord_"))).to_have_text(
        f"Order {order.pk} · $7.50. A receipt is on its way to new.buyer@example.com"
        " with a link to your library."
    )
    shot(page, "5-thank-you")
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as first:
        page.get_by_role("link", name="Download").click()
    assert first.value.suggested_filename == "zine.txt"
    assert Path(first.value.path()).read_bytes() == b"one hundred samples\n"

    assert order.amount_total == 750
    # $7.50 less the sandbox card fee: 2.9% of 750 = 21.75 → 22, plus 30 = 52.
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 750 - 52

    receipt = [m for m in mail.outbox if m.to == ["new.buyer@example.com"]]
    assert len(receipt) == 1 and receipt[0].subject == "Your receipt from Ada's Field Notes"
    library_link = re.search(r"http://\S+/library/enter/\S+/", receipt[0].body).group(0)
    path = library_link.split("8000", 1)[-1] if ":8000" in library_link else "/" + library_link.split("/", 3)[3]

    page.goto(f"{live_server.url}{path}")
    expect(page).to_have_url(re.compile(r"/library/$"))
    expect(page.get_by_text("Bought with new.buyer@example.com")).to_be_visible()
    expect(page.get_by_text("1 of 3 downloads used")).to_be_visible()
    shot(page, "6-library")
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as second:
        page.get_by_role("link", name="Download").click()
    assert Path(second.value.path()).read_bytes() == b"one hundred samples\n"
    page.reload()
    expect(page.get_by_text("2 of 3 downloads used")).to_be_visible()


def test_declined_card_keeps_the_checkout_open_and_3ds_completes_it(live_server, desktop, shot):
    """A declined card shows the processor's message and the buyer can retry on the same
    checkout; a 3-D Secure check the buyer cancels at the sandbox bank shows why and charges
    nothing; the same card confirmed at the bank completes the order and the buyer downloads
    the file."""
    store = StoreFactory(owner=UserFactory(), name="Studio", slug="studio")
    product = product_with_file(store=store, name="Template", amount=300)
    page = desktop.new_page()
    page.goto(f"{live_server.url}/s/studio/{product.slug}/")
    page.get_by_role("link", name="Buy").click()
    page.get_by_label("Your email").fill("buyer@example.com")
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))

    page.get_by_label(re.compile("declined")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
    expect(page.get_by_role("heading", name="Pay $3.00")).to_be_visible()
    shot(page, "1-declined")
    assert Order.objects.count() == 0

    page.get_by_label(re.compile("3-D Secure")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    expect(page).to_have_url(re.compile(r"/authenticate/$"))
    bank_says = "Your bank asks you to confirm a payment of $3.00 to Studio."
    expect(page.get_by_text(bank_says)).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_have_text("The card's 3-D Secure check was not completed.")
    expect(page.get_by_role("heading", name="Pay $3.00")).to_be_visible()
    shot(page, "2-3ds-cancelled")
    assert Order.objects.count() == 0

    page.get_by_label(re.compile("3-D Secure")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    expect(page).to_have_url(re.compile(r"/authenticate/$"))
    expect(page.get_by_text(bank_says)).to_be_visible()  # the bank again, not the pay page
    shot(page, "3-3ds")
    page.get_by_role("button", name="Confirm payment").click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    order = Order.objects.get(email="buyer@example.com")
    expect(page.get_by_text(re.compile(r"^Order ord_"))).to_have_text(
        f"Order {order.pk} · $3.00. A receipt is on its way to buyer@example.com"
        " with a link to your library."
    )
    shot(page, "4-paid")
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"hello, reader\n"
    assert Order.objects.filter(email="buyer@example.com", amount_total=300).count() == 1
