"""Wallet credit bought with a test card is test money (issue #14).

Where the Stall takes real money, a sandbox top-up makes the wallet a wallet of test money: its
spends are test orders, kept out of the store's real balance, and a store that takes no test cards
refuses it. A wallet holds one kind of money at a time; a tab's purchases are real, so a test card
does not settle a tab. Stripe is localstripe (for real money), and pages go through the test client.
"""

import pytest

from stall.ledger.models import Transfer
from stall.ledger.selectors import account_balance
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.refunds import refund_create
from stall.payments.errors import TestMoneyRefused
from stall.payments.models import Payment, PaymentPurpose, Wallet
from stall.payments.rails.wallet import wallet_for
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    PUBLISHABLE_KEY,
    SECRET_KEY,
    VISA,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)
from stall.testing import StoreFactory
from stall.wallets.errors import TopUpInvalid
from stall.wallets.models import Tab, TabStatus
from stall.wallets.services import tab_settle, wallet_top_up

from .conftest import assert_ledger_balanced, open_checkout, spend, store_balance

pytestmark = pytest.mark.django_db


def store_test_balance(store) -> int:
    owner = f"{store.pk}:test"
    return account_balance(kind="store_balance", owner=owner, currency=store.currency).amount


def wallet_of(buyer) -> Wallet:
    return wallet_for(buyer=buyer, currency="USD")


@pytest.fixture
def test_mode(settings, localstripe):
    """STALL_SANDBOX_ENABLED=1 next to the platform's Stripe keys (on localstripe)."""
    settings.STRIPE_SECRET_KEY, settings.STRIPE_PUBLISHABLE_KEY = SECRET_KEY, PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = localstripe
    settings.STALL_SANDBOX_ENABLED = True
    return settings


def platform_fees(owner: str) -> int:
    return account_balance(kind="platform_fees", owner=owner, currency="USD").amount


def test_a_test_card_top_up_is_test_money_and_buys_test_orders(
    test_mode, store, post, buyer, reader
):
    """Next to Stripe, a sandbox top-up leaves a wallet of test money; what it buys is a test order
    whose money (less the platform's 10%, test money too) is in the store's test balance, never
    its real one, and the wallet page says so. Refunded, it all goes back as test money."""
    test_mode.STALL_PLATFORM_FEE_BPS = 1000
    top_up = wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    assert (top_up.status, top_up.livemode) == ("succeeded", False)
    assert wallet_of(buyer).livemode is False

    order = spend(store=store, product=post, buyer=buyer)

    assert (order.livemode, order.payment.livemode, order.payment.rail) == (False, False, "wallet")
    assert (order.fee, order.platform_fee) == (2, 3)
    assert (store_balance(store), store_test_balance(store)) == (0, 25 - 2 - 3)
    assert (platform_fees("platform"), platform_fees("platform:test")) == (0, 3)
    assert wallet_of(buyer).balance == 475
    page = reader.get("/wallet/?currency=USD").content.decode()
    assert "Test money</span> Topped up with test cards: it buys test orders only" in page

    refund_create(store=store, order_id=order.pk)
    assert (wallet_of(buyer).balance, wallet_of(buyer).livemode) == (500, False)
    assert (store_balance(store), store_test_balance(store)) == (0, 0)
    assert (platform_fees("platform"), platform_fees("platform:test")) == (0, 0)
    assert_ledger_balanced()


def test_a_store_that_takes_no_test_cards_refuses_test_money(settings, stripe_store, buyer, client):
    """Left to Stall on a developer's machine, a store with its own Stripe keys takes no test
    cards. A wallet topped up with them elsewhere (a test wallet: the Stall takes real money there)
    is refused at that store, on the one-click path and on the general one (after its Stripe page
    opened an intent), and nothing moves; another store takes it as a test order."""
    from stall.testing import ProductFactory

    from .conftest import sign_in

    assert settings.STALL_SANDBOX_ENABLED is None
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    assert wallet_of(buyer).livemode is False
    keyed_post = ProductFactory(store=stripe_store, name="Real post", amount=25)
    transfers = Transfer.objects.count()

    with pytest.raises(
        TestMoneyRefused,
        match="^Your wallet holds test money from test cards, which this store does not take.",
    ):
        spend(store=stripe_store, product=keyed_post, buyer=buyer)
    zine = ProductFactory(store=stripe_store, name="Real zine", amount=300)
    checkout = open_checkout(stripe_store, zine, buyer.email)
    sign_in(client, buyer)
    client.get(f"/checkout/{checkout.pk}/")  # the Stripe page opens a PaymentIntent
    assert Payment.objects.get(checkout=checkout).rail == "stripe"
    with pytest.raises(TestMoneyRefused):
        checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=buyer)

    assert Transfer.objects.count() == transfers
    assert not Payment.objects.filter(rail="wallet").exists()
    assert wallet_of(buyer).balance == 500
    assert (store_balance(stripe_store), store_test_balance(stripe_store)) == (0, 0)

    elsewhere = StoreFactory()
    order = spend(store=elsewhere, product=ProductFactory(store=elsewhere, amount=25), buyer=buyer)
    assert order.livemode is False and store_test_balance(elsewhere) == 25 - order.fee


def test_a_real_top_up_clears_the_test_money_first(test_mode, store, post, buyer, card):
    """A real card's top-up of a wallet of test money clears what test money is left (back to the
    sandbox, with its fee pool's rest) before the real money goes in: the wallet then holds real
    money only, and its spends are real orders."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    spend(store=store, product=post, buyer=buyer)

    real = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA))

    assert (real.status, real.livemode, real.rail) == ("succeeded", True, "stripe")
    wallet = wallet_of(buyer)
    assert (wallet.livemode, wallet.balance) == (True, 1000)
    cleared = Transfer.objects.get(code="test_money_cleared")
    assert (cleared.amount, cleared.debit_account_id) == (475, wallet.account_id)
    assert cleared.reference == real.pk
    order = spend(store=store, product=post, buyer=buyer)
    assert order.livemode is True and store_balance(store) == 25 - order.fee
    assert_ledger_balanced()


def test_a_test_card_cannot_top_up_a_wallet_holding_real_money(test_mode, buyer, card):
    """A sandbox top-up of a wallet that holds real money is refused before any charge: the real
    money would otherwise turn into test money."""
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA))

    with pytest.raises(
        TopUpInvalid, match="^Your wallet holds real money: top it up with a real card."
    ) as caught:
        wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")

    assert caught.value.code == "test_card_refused"
    assert not Payment.objects.filter(rail="sandbox").exists()
    assert (wallet_of(buyer).livemode, wallet_of(buyer).balance) == (True, 1000)


def test_a_test_order_refunded_to_a_wallet_that_now_holds_real_money_goes_back_to_the_sandbox(
    test_mode, store, post, buyer, card
):
    """A refund of a test order does not put test money into a wallet holding real money: it goes
    back to the sandbox, out of the store's test balance; the wallet keeps its real money alone."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    order = spend(store=store, product=post, buyer=buyer)
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA))

    refund_create(store=store, order_id=order.pk)

    wallet = wallet_of(buyer)
    assert (wallet.livemode, wallet.balance) == (True, 1000)
    assert Transfer.objects.get(code="test_refund_to_sandbox").amount == 25
    # The sale's share of the test top-up's fee is not given back: that fee pool was cleared.
    assert order.fee == 2
    assert (store_balance(store), store_test_balance(store)) == (0, -2)
    assert_ledger_balanced()


def test_a_test_card_does_not_settle_a_tab_and_the_tab_page_does_not_offer_one(
    test_mode, store, post, buyer, reader
):
    """What is on a tab was delivered as real purchases: next to Stripe, a test card is refused for
    settling it (the tab stays open), and the tab page offers only a real card; the top-up form
    offers the test cards, saying "Test mode"."""
    order = spend(store=store, product=post, buyer=buyer, method="tab")
    assert order.livemode is True and store_balance(store) == 25

    with pytest.raises(
        TopUpInvalid,
        match="^Settle your tab with a real card: test cards do not pay for real purchases.$",
    ):
        tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")

    tab = Tab.objects.get(buyer=buyer)
    assert tab.status == TabStatus.OPEN and tab.settlement_id is None
    assert not Payment.objects.filter(purpose=PaymentPurpose.TAB_SETTLEMENT).exists()
    tab_page = reader.get(f"/wallet/tab/?currency=USD&store={store.slug}").content.decode()
    assert 'value="stripe"' in tab_page and "sandbox_" not in tab_page
    wallet_page = reader.get(f"/wallet/?currency=USD&store={store.slug}").content.decode()
    assert 'value="stripe"' in wallet_page and 'value="sandbox_visa"' in wallet_page
    assert "Test mode: the test cards move no real money." in wallet_page
