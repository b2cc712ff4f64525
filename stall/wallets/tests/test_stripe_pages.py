"""Wallet top-ups, tab settlements and settle-and-buy paid by "Card" on Stripe's Payment Element page,
against localstripe: the store's own Stripe keys, the buyer's browser at Stripe, and the return URL."""

from urllib.parse import urlsplit

import pytest

from stall.checkout.models import Checkout
from stall.ledger.models import Transfer
from stall.payments.models import Payment
from stall.payments.rails.wallet import wallet_for
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    DECLINED_ON_CHARGE,
    VISA,
    buyer_browser,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)
from stall.wallets.models import Tab, TabStatus

from .conftest import alerts, assert_ledger_balanced, open_checkout, sign_in, spend, words

pytestmark = pytest.mark.django_db


def balance(buyer) -> int:
    return wallet_for(buyer=buyer, currency="USD").account.balance


def top_up_by_card(client, store, amount="10.00"):
    body = {"action": "top_up", "currency": "USD", "store": store.slug, "amount": amount, "payment_method": "stripe"}
    return client.post("/wallet/", body)


def client_secret_of(page) -> str:
    html = page.content.decode()
    start = html.index('data-client-secret="') + len('data-client-secret="')
    return html[start:html.index('"', start)]


def test_the_top_up_and_settle_forms_offer_card_only_where_stripe_is_set_up(reader, buyer, stripe_store, post):
    """From a store with its own Stripe keys, the top-up and settle forms offer "Card" alone: that
    store takes real money, so its pages offer no test cards. With no Stripe account for the page
    (no store, no platform keys) the top-up form offers the test cards, saying "test mode" since
    this Stall takes real money; the settle form offers none (a tab's purchases are real), so no
    card at all."""
    spend(store=stripe_store, product=post, buyer=buyer, method="tab")
    for path in (f"/wallet/?currency=USD&store={stripe_store.slug}", f"/wallet/tab/?currency=USD&store={stripe_store.slug}"):
        html = reader.get(path).content.decode()
        assert 'value="stripe"' in html and "<span>Card</span>" in html and "Pay with" in html, path
        assert "sandbox_visa" not in html and "Test mode" not in html, path
    html = reader.get("/wallet/?currency=USD").content.decode()
    assert 'value="stripe"' not in html and 'value="sandbox_visa"' in html and "Test card" in html
    assert "Test mode: the test cards move no real money." in html
    html = reader.get("/wallet/tab/?currency=USD").content.decode()
    assert "sandbox_visa" not in html and 'value="stripe"' not in html
    assert "Card payments are not set up here yet." in html


def test_card_is_the_only_choice_when_the_sandbox_is_off(reader, stripe_store, settings):
    """With STALL_SANDBOX_ENABLED=0 the top-up form offers "Card" alone, without the sandbox note."""
    settings.STALL_SANDBOX_ENABLED = False
    html = reader.get(f"/wallet/?currency=USD&store={stripe_store.slug}").content.decode()
    assert 'value="stripe"' in html and "sandbox_visa" not in html and "no real money moves" not in html


def test_a_card_top_up_is_paid_on_stripes_page_and_fills_the_wallet(reader, buyer, stripe_store, buyer_browser, localstripe):
    """Choosing Card makes the payment and its PaymentIntent and opens the card page with the intent's
    client secret (and Stripe's API allowed by the page's CSP); paid at Stripe, the return URL credits
    $10.00 to the wallet and goes back to it with the news."""
    response = top_up_by_card(reader, stripe_store)
    payment = Payment.objects.get()
    assert (payment.purpose, payment.rail, payment.status, payment.amount) == ("top_up", "stripe", "requires_action", 1000)
    assert urlsplit(response["Location"]).path == f"/wallet/payments/{payment.pk}/card/"
    page = reader.get(response["Location"])
    assert page.status_code == 200
    assert client_secret_of(page).startswith(f"{payment.rail_reference}_secret_")
    assert 'data-return-url="http://testserver/wallet/payments/%s/card/return/"' % payment.pk in page.content.decode()
    assert "Top up your wallet: $10.00" in words(page) and "Pay $10.00" in words(page)
    assert localstripe in page["Content-Security-Policy"]
    assert balance(buyer) == 0

    assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"
    done = reader.get(f"/wallet/payments/{payment.pk}/card/return/?payment_intent={payment.rail_reference}", follow=True)
    assert done.redirect_chain[-1][0] == f"/wallet/?currency=USD&store={stripe_store.slug}"
    assert "Added $10.00 to your wallet." in words(done)
    assert balance(buyer) == 1000
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert_ledger_balanced()
    # The card page of a paid top-up goes back to the wallet; nothing is credited twice.
    again = reader.get(f"/wallet/payments/{payment.pk}/card/", follow=True)
    assert again.redirect_chain[-1][0] == f"/wallet/?currency=USD&store={stripe_store.slug}"
    assert balance(buyer) == 1000


def test_reloading_the_card_page_reuses_the_same_payment_intent(reader, buyer, stripe_store, localstripe_client):
    """Two visits to the card page show the same client secret: one payment, one PaymentIntent."""
    response = top_up_by_card(reader, stripe_store)
    first, second = (client_secret_of(reader.get(response["Location"])) for _ in range(2))
    assert first == second
    payment = Payment.objects.get()
    assert localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).client_secret == first


def test_a_declined_card_returns_with_the_message_and_moves_no_money(reader, buyer, stripe_store, buyer_browser):
    """A card Stripe declines: the return URL records the failure and shows Stripe's message on the
    wallet page; the wallet stays empty and no transfer is made."""
    response = top_up_by_card(reader, stripe_store)
    payment = Payment.objects.get()
    reader.get(response["Location"])
    assert buyer_browser.pay(payment.rail_reference, DECLINED_ON_CHARGE)["status"] == "requires_payment_method"
    done = reader.get(f"/wallet/payments/{payment.pk}/card/return/", follow=True)
    payment.refresh_from_db()
    assert (payment.status, payment.failure_message) == ("failed", "Your card was declined.")
    assert done.redirect_chain[-1][0] == f"/wallet/?currency=USD&store={stripe_store.slug}"
    assert alerts(done) == ["Your card was declined."]
    assert balance(buyer) == 0 and Transfer.objects.count() == 0


def test_a_tab_settled_by_card_is_paid_off(reader, buyer, stripe_store, post, buyer_browser):
    """Settling a 25¢ tab by Card charges the 50¢ minimum on Stripe's page; on return the tab is settled,
    the 25¢ change is in the wallet, and the ledger balances."""
    spend(store=stripe_store, product=post, buyer=buyer, method="tab")
    response = reader.post("/wallet/tab/", {"currency": "USD", "store": stripe_store.slug, "payment_method": "stripe"})
    payment = Payment.objects.get(purpose="tab_settlement")
    assert (payment.status, payment.amount) == ("requires_action", 50)
    page = reader.get(response["Location"])
    assert "Settle your tab: $0.50" in words(page)
    buyer_browser.pay(payment.rail_reference, VISA)
    done = reader.get(f"/wallet/payments/{payment.pk}/card/return/", follow=True)
    assert done.redirect_chain[-1][0] == f"/wallet/tab/?currency=USD&store={stripe_store.slug}"
    assert "Your tab is settled: $0.50 paid." in words(done)
    assert Tab.objects.get().status == TabStatus.SETTLED and balance(buyer) == 25
    assert_ledger_balanced()


def test_a_declined_settlement_keeps_the_tab_open(reader, buyer, stripe_store, post, buyer_browser):
    """A declined card on the settlement page reopens the tab: it still owes 25¢ and nothing moved to the wallet."""
    spend(store=stripe_store, product=post, buyer=buyer, method="tab")
    response = reader.post("/wallet/tab/", {"currency": "USD", "store": stripe_store.slug, "payment_method": "stripe"})
    payment = Payment.objects.get(purpose="tab_settlement")
    reader.get(response["Location"])
    buyer_browser.pay(payment.rail_reference, DECLINED_ON_CHARGE)
    done = reader.get(f"/wallet/payments/{payment.pk}/card/return/", follow=True)
    assert alerts(done) == ["Your card was declined."]
    assert Tab.objects.get().status == TabStatus.OPEN and balance(buyer) == 0
    assert "$0.25 owed" in words(done)
    assert_ledger_balanced()


def test_settle_and_buy_by_card_completes_the_checkout_on_return(reader, buyer, stripe_store, post, buyer_browser):
    """A full tab and a purchase: one card charge on Stripe's page settles the tab, and the return URL
    pays the checkout from the wallet and shows the thank-you page."""
    for _ in range(4):
        spend(store=stripe_store, product=post, buyer=buyer, method="tab")
    checkout = open_checkout(stripe_store, post)
    response = reader.post(f"/wallet/tab/settle/{checkout.pk}/", {"payment_method": "stripe"})
    payment = Payment.objects.get(purpose="tab_settlement")
    assert (payment.status, payment.amount) == ("requires_action", 125)
    assert urlsplit(response["Location"]).path == f"/wallet/payments/{payment.pk}/card/"
    reader.get(response["Location"])
    buyer_browser.pay(payment.rail_reference, VISA)
    done = reader.get(f"/wallet/payments/{payment.pk}/card/return/")
    assert done["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Checkout.objects.get(pk=checkout.pk).status == "complete"
    assert Tab.objects.get().status == TabStatus.SETTLED and balance(buyer) == 0
    assert_ledger_balanced()


def test_another_buyers_card_payment_is_not_found(client, reader, buyer, stripe_store):
    """The card page and its return URL are the paying buyer's own: another signed-in buyer gets a 404."""
    from stall.accounts.services import buyer_for_email

    top_up_by_card(reader, stripe_store)
    payment = Payment.objects.get()
    reader.logout()
    sign_in(client, buyer_for_email(email="other@example.com"))
    assert client.get(f"/wallet/payments/{payment.pk}/card/").status_code == 404
    assert client.get(f"/wallet/payments/{payment.pk}/card/return/").status_code == 404
    assert client.get("/wallet/payments/pay_nothing/card/").status_code == 404
