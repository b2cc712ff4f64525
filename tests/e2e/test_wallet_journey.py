"""Browser journeys for the wallet and the tab: sign in by magic link, top up, one-click purchase; put
small purchases on a tab and settle it."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.ledger.models import Account
from stall.ledger.selectors import account_balance, account_sums_from_transfers
from stall.orders.models import Order
from stall.payments.rails.wallet import wallet_for
from stall.testing import StoreFactory, UserFactory, product_with_file
from stall.wallets.models import Tab, TabStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


def sign_in_from_email(page, live_server, email: str) -> None:
    """Ask for a sign-in link on the page's "Sign in" form and follow the link from the email."""
    page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/library/\?next="))
    page.get_by_label("Email you bought with").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_text("a sign-in link is on its way")).to_be_visible()
    message = [m for m in mail.outbox if m.to == [email]][-1]
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", message.body).group(0))
    page.goto(f"{live_server.url}{link.path}?{link.query}")


def buy_to_payment_page(page, live_server, store, product, email: str) -> None:
    page.goto(f"{live_server.url}/s/{store.slug}/{product.slug}/")
    page.get_by_role("link", name="Buy").click()
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))


def test_a_new_reader_tops_up_and_buys_with_one_click(live_server, phone, shot):
    """A new reader signs in by magic link from the store's header, tops up $5 with sandbox_visa, buys a
    25¢ note with one click on the payment page, downloads it, and sees the wallet drop to $4.75."""
    store = StoreFactory(owner=UserFactory(), name="Ada's Field Notes", slug="ada")
    note = product_with_file(store=store, name="Field note", amount=25, content=b"a note\n")
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/ada/")
    sign_in_from_email(page, live_server, "reader@example.com")
    expect(page).to_have_url(re.compile(r"/s/ada/$"))
    expect(page.get_by_role("link", name="Wallet", exact=True)).to_be_visible()
    shot(page, "1-signed-in")

    page.get_by_role("link", name="Wallet", exact=True).click()
    expect(page).to_have_url(re.compile(r"/wallet/(\?store=ada)?$"))
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    shot(page, "2-empty-wallet")
    page.get_by_label(re.compile("4242")).first.check()
    page.get_by_role("button", name="Add $5.00").click()
    expect(page).to_have_url(re.compile(r"/wallet/\?currency=USD(&store=ada)?$"))
    expect(page.get_by_text("Added $5.00 to your wallet.")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$5.00")
    shot(page, "3-topped-up")

    buy_to_payment_page(page, live_server, store, note, "reader@example.com")
    pay = page.get_by_role("button", name="Pay from wallet (balance $5.00)")
    expect(pay).to_be_visible()
    shot(page, "4-payment-page")
    pay.click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"a note\n"
    shot(page, "5-thank-you")

    page.get_by_role("link", name="Wallet", exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text("$4.75")
    expect(page.get_by_text("−$0.25")).to_be_visible()
    expect(page.get_by_text("Field note", exact=True)).to_be_visible()
    shot(page, "6-wallet-after")
    buyer = buyer_for_email(email="reader@example.com")
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 475
    order = Order.objects.get(store=store)
    assert (order.payment.rail, order.amount_total, order.fee) == ("wallet", 25, 2)  # 25/500 of the 45¢ top-up fee
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 23
    assert_ledger_balanced()


def test_a_reader_with_an_empty_wallet_puts_two_purchases_on_a_tab_and_settles_it(live_server, phone, shot):
    """A second reader with nothing in their wallet puts two 25¢ purchases on a tab, opens the tab page
    from the wallet and settles the 50¢ with one card charge."""
    store = StoreFactory(owner=UserFactory(), name="Bo's Letters", slug="bo")
    first = product_with_file(store=store, name="Letter one", amount=25)
    second = product_with_file(store=store, name="Letter two", amount=25)
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/bo/")
    sign_in_from_email(page, live_server, "second@example.com")
    expect(page).to_have_url(re.compile(r"/s/bo/$"))

    for number, product in enumerate((first, second), start=1):
        buy_to_payment_page(page, live_server, store, product, "second@example.com")
        expect(page.get_by_text("Your wallet holds $0.00.")).to_be_visible()
        if number == 1:
            shot(page, "1-payment-page-empty-wallet")
        page.get_by_role("button", name="Put on my tab").click()
        expect(page).to_have_url(re.compile(r"/complete/$"))
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()

    page.get_by_role("link", name="Wallet", exact=True).click()
    page.get_by_role("link", name=re.compile("Your tab")).first.click()
    expect(page).to_have_url(re.compile(r"/wallet/tab/"))
    expect(page.get_by_test_id("owed")).to_have_text("$0.50")
    expect(page.get_by_text("Letter one")).to_be_visible()
    expect(page.get_by_text("Letter two")).to_be_visible()
    shot(page, "2-tab")
    page.get_by_label(re.compile("4242")).check()
    page.get_by_role("button", name="Settle now ($0.50)").click()
    expect(page.get_by_text("Your tab is settled: $0.50 paid.")).to_be_visible()
    expect(page.get_by_text("No open tab.")).to_be_visible()
    shot(page, "3-settled")

    tab = Tab.objects.get(buyer__email="second@example.com")
    assert (tab.status, tab.settlement.amount, tab.settlement.fee) == (TabStatus.SETTLED, 50, 31)
    assert sorted(Order.objects.filter(store=store).values_list("fee", flat=True)) == [15, 16]
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 50 - 31
    assert_ledger_balanced()


def test_a_full_tab_is_settled_with_the_next_purchase_in_one_charge(live_server, phone, shot):
    """A reader whose $1 tab is full is offered "Settle your tab ($1.00) and buy"; a 3-D Secure
    check cancelled at the bank shows why and leaves the tab owing; one $1.25 charge through
    3-D Secure then pays the tab and completes the purchase. A $6 purchase from the wallet asks
    to confirm first."""
    from stall.wallets.services import wallet_top_up

    store = StoreFactory(owner=UserFactory(), name="Cy's Comics", slug="cy")
    strip = product_with_file(store=store, name="Strip", amount=25, content=b"one strip\n")
    album = product_with_file(store=store, name="Album", amount=600)
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/cy/")
    sign_in_from_email(page, live_server, "third@example.com")
    expect(page).to_have_url(re.compile(r"/s/cy/$"))
    for _ in range(4):
        buy_to_payment_page(page, live_server, store, strip, "third@example.com")
        page.get_by_role("button", name="Put on my tab").click()
        expect(page).to_have_url(re.compile(r"/complete/$"))

    buy_to_payment_page(page, live_server, store, strip, "third@example.com")
    checkout_url = page.url
    shot(page, "1-tab-full")
    page.get_by_role("link", name="Settle your tab ($1.00) and buy").click()
    one_charge = "One card charge of $1.25 pays what your tab owes and this purchase."
    expect(page.get_by_text(one_charge)).to_be_visible()
    page.get_by_label(re.compile("3-D Secure")).check()
    shot(page, "2-settle-and-buy")
    page.get_by_role("button", name="Pay $1.25").click()
    expect(page).to_have_url(re.compile(r"/authenticate/\?checkout=chk_\w+$"))
    expect(page.get_by_text("to settle your tab")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page).to_have_url(checkout_url)
    not_completed = "The card's 3-D Secure check was not completed."
    expect(page.get_by_role("status")).to_have_text(not_completed)
    shot(page, "3-bank-cancelled")
    buyer = buyer_for_email(email="third@example.com")
    assert Tab.objects.get(buyer=buyer).status == TabStatus.OPEN

    page.get_by_role("link", name="Settle your tab ($1.00) and buy").click()
    page.get_by_label(re.compile("3-D Secure")).check()
    page.get_by_role("button", name="Pay $1.25").click()
    expect(page).to_have_url(re.compile(r"/authenticate/\?checkout=chk_\w+$"))
    shot(page, "4-bank")
    page.get_by_role("button", name="Confirm payment").click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"one strip\n"
    page.get_by_role("link", name="Wallet", exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    page.goto(f"{live_server.url}/wallet/tab/")
    expect(page.get_by_text("No open tab.")).to_be_visible()
    shot(page, "5-tab-settled")
    assert Tab.objects.get(buyer=buyer).status == TabStatus.SETTLED
    assert Order.objects.filter(store=store).count() == 5 and wallet_for(buyer=buyer, currency="USD").account.balance == 0

    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    buy_to_payment_page(page, live_server, store, album, "third@example.com")
    page.get_by_role("button", name="Pay from wallet (balance $10.00)").click()
    expect(page.get_by_role("heading", name="Pay $6.00 from your wallet?")).to_be_visible()
    shot(page, "6-confirm")
    page.get_by_role("button", name="Confirm and pay $6.00").click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    page.get_by_role("link", name="Wallet", exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text("$4.00")
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 400
    assert_ledger_balanced()
