"""A wallet, a tab and refunds in stores of six currencies, with the money settings each gets.

Issue #13: a KRW store had ₩5 top-ups and a ₩1 tab, so a ₩3,000 item could not be paid. Each
store here sells an item worth about three dollars, and a buyer tops up the middle preset, buys
it from the wallet, puts a small item on the tab, settles the tab by card and has both refunded.
"""

import pytest

from stall.accounts.services import buyer_for_email
from stall.core.money import money_setting, money_setting_list
from stall.orders.refunds import refund_create
from stall.payments.rails.wallet import wallet_for
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.selectors import tab_open_get, tab_owed
from stall.wallets.services import tab_settle, top_up_presets, wallet_top_up

from .conftest import assert_ledger_balanced, sign_in, spend, store_balance, words

pytestmark = pytest.mark.django_db

# currency: (an item worth about $3, a small item for the first tab)
ITEMS = {
    "USD": (300, 50), "EUR": (300, 50), "BRL": (1500, 250), "KRW": (3000, 500), "JPY": (300, 50),
    "KWD": (1000, 150),
}


@pytest.mark.parametrize("currency", sorted(ITEMS))
def test_top_up_spend_tab_settle_and_refund_in_each_currency(currency):
    store = StoreFactory(currency=currency)
    item = ProductFactory(store=store, amount=ITEMS[currency][0], currency=currency)
    small = ProductFactory(store=store, amount=ITEMS[currency][1], currency=currency)
    buyer = buyer_for_email(email=f"{currency.lower()}@example.com")

    presets = top_up_presets(currency)
    assert presets == money_setting_list("STALL_TOP_UP_PRESETS", currency)
    top_up = wallet_top_up(buyer=buyer, amount=presets[1], currency=currency, payment_method="sandbox_visa")
    assert top_up.status == "succeeded"
    bought = spend(store=store, product=item, buyer=buyer)
    wallet = wallet_for(buyer=buyer, currency=currency)
    assert wallet.account.balance == presets[1] - item.amount

    on_tab = spend(store=store, product=small, buyer=buyer, method="tab")
    tab = tab_open_get(buyer=buyer, currency=currency)
    assert tab_owed(tab=tab) == small.amount <= money_setting("STALL_TAB_FIRST_LIMIT", currency)
    settlement = tab_settle(buyer=buyer, currency=currency, payment_method="sandbox_visa")
    assert settlement.status == "succeeded" and tab_open_get(buyer=buyer, currency=currency) is None

    refund_create(store=store, order_id=bought.pk)
    refund_create(store=store, order_id=on_tab.pk)
    bought.refresh_from_db()
    on_tab.refresh_from_db()
    assert (bought.net, on_tab.net) == (0, 0)
    assert store_balance(store) == 0
    assert_ledger_balanced()


def test_a_krw_wallet_page_offers_won_sized_top_ups(client):
    """The wallet page of a KRW store's buyer offers ₩5,000, ₩10,000 and ₩20,000."""
    store = StoreFactory(currency="KRW", slug="seoul")
    buyer = buyer_for_email(email="reader@example.com")
    sign_in(client, buyer)
    text = words(client.get("/wallet/?store=seoul"))
    for amount in ("₩5,000", "₩10,000", "₩20,000"):
        assert amount in text, amount
    assert "₩5 " not in text and store.currency == "KRW"


def test_the_wallet_page_shows_the_wallet_that_holds_money_and_the_tab_page_the_open_tab(client):
    """With no store and no ?currency=, the wallet page opens on the wallet holding money (not an
    empty EUR one listed first), and the tab page on the open tab, whatever its currency."""
    buyer = buyer_for_email(email="reader@example.com")
    wallet_for(buyer=buyer, currency="EUR")  # empty, and first by code
    wallet_top_up(buyer=buyer, amount=10000, currency="KRW", payment_method="sandbox_visa")
    store = StoreFactory(currency="JPY")
    spend(store=store, product=ProductFactory(store=store, amount=50, currency="JPY"), buyer=buyer, method="tab")
    sign_in(client, buyer)
    assert "₩10,000" in words(client.get("/wallet/"))
    tab_page = words(client.get("/wallet/tab/"))
    assert "¥50" in tab_page, tab_page
