"""The dashboard with test orders (issue #14): marked "Test", kept out of the balance and sales."""

import re

import pytest

from stall.ledger.selectors import account_balance
from stall.testing import buy, product_with_file

pytestmark = pytest.mark.django_db


def balance(store, owner=None) -> int:
    return account_balance(
        kind="store_balance", owner=owner or store.pk, currency=store.currency
    ).amount


def status_cell(page: str, order_id: str) -> str:
    """The status cell of one row of the orders table."""
    row = re.search(rf'<tr>\s*<td class="c-id">[^\n]*{order_id}.*?</tr>', page, re.S).group(0)
    return re.search(r'<td class="c-status">(.*?)</td>', row, re.S).group(1)


@pytest.fixture
def orders(store, settings):
    """A $10.00 sandbox sale made while the Stall took no real money (it counts: 59¢ card fee), then
    Stripe keys are set and the sandbox switched on beside them, and a $5.00 test card sale."""
    product = product_with_file(store=store, name="Sample Pack", amount=1000)
    real = buy(store=store, product=product, email="fan@example.com")
    settings.STRIPE_SECRET_KEY, settings.STALL_SANDBOX_ENABLED = "sk_test_platform", True
    test = buy(
        store=store,
        product=product_with_file(store=store, name="Extra", amount=500),
        email="tester@example.com",
    )
    assert (real.livemode, test.livemode) == (True, False)
    return real, test


def test_the_overview_leaves_test_orders_out_of_the_balance_and_sales(dash, store, orders):
    """Balance, order count, gross sales and fee rate are the real sale's alone; a line counts
    the test order apart, and the recent orders mark it "Test"."""
    real, test = orders

    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert (balance(store), balance(store, f"{store.pk}:test")) == (941, 500 - 45)
    stats = re.findall(r'<div class="stat">(.*?)</div>', page)
    assert stats[:4] == ["$9.41", "1", "$10.00", "5.90%"]  # fee rate: 59¢ of $10.00
    assert (
        "1 test order ($5.00), paid with test cards or test money, "
        "is left out of the balance and these figures."
        in page
    )
    assert "Test</span>" in status_cell(page, test.pk)
    assert "Test</span>" not in status_cell(page, real.pk)


def test_the_orders_list_and_the_order_page_mark_a_test_order(dash, store, orders):
    """The orders list marks the test order "Test" and not the real one; the test order's page
    says what a test order is, the real order's page does not."""
    real, test = orders

    listing = dash.get(f"/dashboard/{store.slug}/orders/").content.decode()
    assert (
        '<span class="badge badge-test" title="Paid with test money: not in your balance">'
        "Test</span>"
        in status_cell(listing, test.pk)
    )
    assert "badge-test" not in status_cell(listing, real.pk)
    test_page = dash.get(f"/dashboard/{store.slug}/orders/{test.pk}/").content.decode()
    assert "A test order: paid with test cards or test money. No real money moved" in test_page
    real_page = dash.get(f"/dashboard/{store.slug}/orders/{real.pk}/").content.decode()
    assert "A test order" not in real_page and "badge-test" not in real_page


def test_the_payments_page_says_whether_test_cards_are_taken(dash, store, settings):
    """Next to the platform's Stripe account, the Payments page says test mode is on when the
    sandbox was switched on, and that test cards are off when it was left to Stall."""
    settings.STRIPE_SECRET_KEY = "sk_test_platform"
    page = dash.get(f"/dashboard/{store.slug}/payments/").content.decode()
    assert "Sandbox test cards are off here: this store takes real card payments." in page
    assert "Test mode" not in page

    settings.STALL_SANDBOX_ENABLED = True
    page = dash.get(f"/dashboard/{store.slug}/payments/").content.decode()
    assert "Test mode</span> Sandbox test cards (sandbox_visa…) are taken too" in page
