"""A wallet top-up paid over Lightning, in Chromium, against a real LNbits.

The store's LNbits wallet makes the invoice; the test pays it from a second LNbits wallet (with
FakeWallet as LNbits' funding source, a payment inside one LNbits settles at once). The buyer's
page, asking the server every few seconds, notices the payment on its own and lands on the wallet.
"""

import re

import pytest
from playwright.sync_api import expect
from test_wallet_journey import sign_in_from_email

from stall.accounts.services import buyer_for_email
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails.wallet import wallet_for
from stall.payments.tests.conftest import lightning_store, lnbits  # noqa: F401 - fixtures
from stall.wallets.tests.conftest import assert_ledger_balanced

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reader_tops_up_five_dollars_by_lightning(live_server, phone, shot, lightning_store, lnbits):
    store = lightning_store
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/{store.slug}/")
    sign_in_from_email(page, live_server, "sats@example.com")
    page.get_by_role("link", name="Wallet", exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")

    page.get_by_label("Lightning").first.check()
    page.get_by_role("button", name="Add $5.00").click()
    expect(page).to_have_url(re.compile(r"/wallet/payments/pay_\w+/lightning/"))
    expect(page.get_by_test_id("lightning-qr").locator("svg")).to_be_visible()
    bolt11 = page.get_by_test_id("lightning-bolt11").input_value()
    expect(page.get_by_test_id("lightning-link")).to_have_attribute("href", f"lightning:{bolt11}")
    shot(page, "1-invoice")

    assert lnbits.pay(bolt11).status_code == 201
    # No click: the page's script asks, sees the payment, and goes on to the wallet.
    expect(page.get_by_text("Added $5.00 to your wallet.")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("balance")).to_have_text("$5.00")
    shot(page, "2-topped-up")

    buyer = buyer_for_email(email="sats@example.com")
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 500
    payment = Payment.objects.get(buyer=buyer, rail="lightning")
    assert (payment.status, payment.fee) == (PaymentStatus.SUCCEEDED, 0)
    assert_ledger_balanced()
