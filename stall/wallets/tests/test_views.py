"""The buyer's pages: signing in, the wallet (top-up, history, settings, auto top-up), 3-D Secure for
top-ups and settlements, the tab, paying a checkout from the wallet or the tab, and settle-and-buy."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import RequestFactory

from stall.accounts.services import buyer_for_email
from stall.checkout.models import Checkout
from stall.payments.models import Payment
from stall.payments.rails.wallet import wallet_for
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.models import Tab, TabStatus, Wallet
from stall.wallets.selectors import tab_open_get
from stall.wallets.services import wallet_top_up

from .conftest import (
    alerts,
    assert_ledger_balanced,
    field_errors,
    open_checkout,
    sign_in,
    spend,
    store_balance,
    words,
)

pytestmark = pytest.mark.django_db


def balance(buyer, currency="USD") -> int:
    return wallet_for(buyer=buyer, currency=currency).account.balance


def top_up(client, **data):
    body = {"action": "top_up", "currency": "USD", "payment_method": "sandbox_visa", **data}
    return client.post("/wallet/", body)


# --- signing in ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/wallet/", "/wallet/tab/", "/wallet/payments/pay_x/authenticate/"])
def test_the_wallet_pages_send_a_signed_out_visitor_to_sign_in_and_back(client, path):
    """Signed out, the wallet, tab and bank pages redirect to the sign-in form, which will come back here."""
    response = client.get(path)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.path, parse_qs(location.query)) == ("/library/", {"next": [path]})


def test_signing_in_by_email_lands_on_the_page_that_asked(client, db):
    """The sign-in form says what it signs in to, keeps ``next``, and the emailed link brings the buyer
    (created on first sign-in) back to their wallet, with Wallet and Sign out in the header."""
    page = client.get("/library/?next=/wallet/")
    assert "Sign in to your wallet and library" in words(page)
    assert '<input type="hidden" name="next" value="/wallet/">' in page.content.decode()
    client.post("/library/", {"email": "New.Reader@example.com", "next": "/wallet/"})
    link = re.search(r"http://\S+/library/enter/\S+", mail.outbox[0].body).group(0)
    assert "next=%2Fwallet%2F" in link and "sign in to your wallet" in mail.outbox[0].body
    response = client.get(urlsplit(link).path + "?" + urlsplit(link).query, follow=True)
    assert response.redirect_chain == [("/wallet/", 302)]
    text = words(response)
    assert "Signed in as new.reader@example.com" in text and "Sign out" in text and "Sign in" not in text


def test_the_sign_in_form_ignores_a_next_that_leaves_the_site(client, db):
    """A ``next`` pointing at another site is dropped: the link goes to the library."""
    client.post("/library/", {"email": "reader@example.com", "next": "https://evil.example/"})
    link = re.search(r"http://\S+/library/enter/\S+", mail.outbox[0].body).group(0)
    assert "next=" not in link


def test_the_header_offers_sign_in_to_visitors_and_the_wallet_to_buyers(client, store, buyer):
    """A store page shows "Sign in" (back to that page) to a visitor, "Wallet" and "Sign out" once signed in;
    the dashboard's creator pages show neither."""
    page = client.get(f"/s/{store.slug}/").content.decode()
    assert f'href="/library/?next=/s/{store.slug}/"' in page
    sign_in(client, buyer)
    text = words(client.get(f"/s/{store.slug}/"))
    assert "Wallet" in text and "Sign out" in text and "Sign in" not in text
    client.force_login(store.owner)
    dashboard = words(client.get(f"/dashboard/{store.slug}/"))
    assert "Wallet" not in dashboard and "Sign in" not in dashboard


def test_the_buyer_context_reads_nothing_without_a_signed_in_buyer(django_assert_num_queries, buyer):
    """The header's buyer is looked up only when the session names one, and then with one query."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    from stall.wallets.context_processors import buyer as buyer_context

    request = RequestFactory().get("/")
    request.session = SessionStore()
    with django_assert_num_queries(0):
        assert buyer_context(request) == {"buyer": None}
    request.session["buyer_id"] = buyer.pk
    lazy = buyer_context(request)["buyer"]
    with django_assert_num_queries(1):
        assert lazy.email == "reader@example.com"
        assert lazy.pk == buyer.pk


# --- the wallet page -----------------------------------------------------------------------------


def test_a_first_visit_from_a_store_opens_the_wallet_in_its_currency(client, buyer):
    """Coming from a EUR store, an empty EUR wallet is shown with presets in euros."""
    StoreFactory(currency="EUR", slug="eu-shop", name="EU Shop")
    sign_in(client, buyer)
    text = words(client.get("/wallet/?store=eu-shop"))
    assert "Balance €0.00" in text and "Add to your wallet €5.00 €10.00 €20.00" in text and "EU Shop" in text
    assert list(Wallet.objects.values_list("currency", flat=True)) == ["EUR"]


def test_a_preset_top_up_fills_the_wallet_and_shows_in_the_history(reader, buyer, store):
    """The $10 preset with the test Visa puts $10.00 in; the page says so and lists the top-up."""
    response = top_up(reader, preset="1000", store=store.slug)
    assert response.status_code == 302 and response["Location"] == f"/wallet/?currency=USD&store={store.slug}"
    text = words(reader.get(response["Location"]))
    assert "Added $10.00 to your wallet." in text and "Balance $10.00" in text
    assert "Top-up Visa •••• 4242" in text and "+$10.00" in text
    assert Payment.objects.get().store_id == store.pk
    assert_ledger_balanced()


def test_a_custom_top_up_is_read_in_the_buyers_locale(client, buyer):
    """"27,50" typed by a Brazilian-Portuguese reader is R$27.50 in a BRL wallet (BRL top-ups start
    at R$25, five times the dollar setting: stall.core.money.money_setting)."""
    sign_in(client, buyer)
    response = client.post(
        "/wallet/", {"action": "top_up", "currency": "BRL", "amount": "27,50", "payment_method": "sandbox_visa"},
        HTTP_ACCEPT_LANGUAGE="pt-br",
    )
    assert response.status_code == 302
    assert balance(buyer, "BRL") == 2750


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"amount": "abc"}, "amount", "“abc” is not an amount."),
        ({"amount": "-5"}, "amount", "Amount cannot be negative."),
        ({"amount": "4.99"}, "amount", "Top up between $5.00 and $200.00."),
        ({"amount": "200.01"}, "amount", "Top up between $5.00 and $200.00."),
        ({"amount": ""}, "amount", "Choose an amount or type one."),
        ({"preset": "333"}, "amount", "Choose one of the amounts shown, or type another."),
        ({"preset": "lots"}, "amount", "Choose one of the amounts shown, or type another."),
        ({"preset": "500", "payment_method": "sandbox_bogus"}, "payment_method", "Unknown payment method “sandbox_bogus”."),
        ({"preset": "500", "payment_method": ""}, "payment_method", "Choose a card."),
    ],
)
def test_a_bad_top_up_is_refused_on_its_field_and_charges_nothing(reader, buyer, data, field, message):
    """Junk, negative, too small, too large, missing amounts, unknown presets and cards: a 400 with the
    message next to the field, and no payment."""
    response = top_up(reader, **data)
    assert response.status_code == 400
    errors = field_errors(response)
    assert any(e.startswith(message) for e in errors), errors
    assert Payment.objects.count() == 0 and balance(buyer) == 0


def test_a_declined_top_up_shows_the_banks_message(reader, buyer):
    """A declined card is a 400 with "Your card was declined." above the form."""
    response = top_up(reader, preset="500", payment_method="sandbox_declined")
    assert response.status_code == 400
    assert alerts(response) == ["Your card was declined."]
    assert balance(buyer) == 0


def test_a_3ds_top_up_goes_through_the_bank_page_and_comes_back(reader, buyer):
    """sandbox_3ds sends the buyer to the bank's page; confirming tops up and returns to the wallet."""
    response = top_up(reader, preset="2000", payment_method="sandbox_3ds")
    payment = Payment.objects.get()
    assert urlsplit(response["Location"]).path == f"/wallet/payments/{payment.pk}/authenticate/"
    page = reader.get(response["Location"])
    assert "Your bank asks you to confirm a payment of $20.00 to top up your wallet." in words(page)
    done = reader.post(response["Location"], {"decision": "approve"}, follow=True)
    assert done.redirect_chain[-1][0] == "/wallet/?currency=USD"
    assert "Added $20.00 to your wallet." in words(done) and balance(buyer) == 2000
    # Coming back to the bank's page after it is done goes straight to the wallet.
    assert reader.get(response["Location"])["Location"] == "/wallet/?currency=USD"
    assert_ledger_balanced()


def test_a_3ds_top_up_the_buyer_cancels_adds_nothing(reader, buyer):
    """Cancelling on the bank's page says the check was not completed; the wallet stays empty."""
    response = top_up(reader, preset="500", payment_method="sandbox_3ds")
    done = reader.post(response["Location"], {"decision": "decline"}, follow=True)
    assert "The card's 3-D Secure check was not completed." in words(done)
    assert balance(buyer) == 0 and Payment.objects.get().status == "failed"


def test_one_buyer_never_sees_anothers_wallet_or_payments(client, buyer, store, post):
    """Another signed-in buyer sees their own empty wallet and tab, and a 404 on the first buyer's bank page."""
    payment = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_3ds")
    spend(store=store, product=post, buyer=buyer, method="tab")
    other = buyer_for_email(email="other@example.com")
    sign_in(client, other)
    wallet = words(client.get("/wallet/?currency=USD"))
    assert "Balance $0.00" in wallet and "reader@example.com" not in wallet and "Nothing yet" in wallet
    assert "No open tab" in words(client.get("/wallet/tab/?currency=USD"))
    assert client.get(f"/wallet/payments/{payment.pk}/authenticate/").status_code == 404


def test_the_history_names_spends_refunds_and_pages_back(reader, buyer, store, post):
    """Spends show the store and product, refunds say where from; 50 lines a page, then "Older"."""
    from stall.orders.refunds import refund_create

    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    orders = [spend(store=store, product=post, buyer=buyer) for _ in range(50)]
    refund_create(store=store, order_id=orders[0].pk)
    page = reader.get("/wallet/")
    text = words(page)
    assert f"Refund from {store.name} A 25¢ post" in text and f"{store.name} A 25¢ post" in text
    assert text.count("−$0.25") == 49 and "Older" in text
    older = re.search(r'href="(\?currency=USD&amp;before=[^"]+)"', page.content.decode()).group(1).replace("&amp;", "&")
    rest = words(reader.get(f"/wallet/{older}"))
    assert rest.count("−$0.25") == 1 and "Top-up Visa •••• 4242 " in rest and "Older" not in rest


def test_the_one_click_limit_is_saved_and_junk_refused(reader, buyer):
    """"1.50" saves $1.50; junk is a 400 on the field."""
    assert reader.post("/wallet/", {"action": "confirm_above", "currency": "USD", "confirm_above": "1.50"}).status_code == 302
    assert wallet_for(buyer=buyer, currency="USD").confirm_above == 150
    bad = reader.post("/wallet/", {"action": "confirm_above", "currency": "USD", "confirm_above": "lots"})
    assert bad.status_code == 400 and field_errors(bad) == ["“lots” is not an amount."]
    assert wallet_for(buyer=buyer, currency="USD").confirm_above == 150


def test_auto_top_up_is_turned_on_with_a_saved_card_and_off_again(reader, buyer):
    """Saving a test card turns auto top-up on (shown with the card); turning it off clears it."""
    response = reader.post("/wallet/", {"action": "auto_top_up", "currency": "USD", "below": "2", "auto_amount": "10", "payment_method": "sandbox_visa"})
    assert response.status_code == 302
    text = words(reader.get("/wallet/"))
    assert "On When your balance falls below $2.00, we add $10.00 with Visa •••• 4242." in text
    reader.post("/wallet/", {"action": "auto_top_up_off", "currency": "USD"})
    wallet = wallet_for(buyer=buyer, currency="USD")
    assert (wallet.auto_top_up_below, wallet.auto_top_up_amount, wallet.auto_top_up_method_id) == (None, None, None)
    assert "Off. Save a card" in words(reader.get("/wallet/"))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"below": "0"}, "Enter more than $0.00."),
        ({"below": "x"}, "“x” is not an amount."),
        ({"auto_amount": "1"}, "Top up between $5.00 and $200.00."),
        ({"payment_method": "sandbox_nope"}, "Unknown payment method “sandbox_nope”."),
    ],
)
def test_bad_auto_top_up_settings_are_refused_on_their_field(reader, buyer, data, message):
    """A zero or junk threshold, a top-up outside the limits, an unknown card: 400, nothing saved."""
    body = {"action": "auto_top_up", "currency": "USD", "below": "2", "auto_amount": "10", "payment_method": "sandbox_visa", **data}
    response = reader.post("/wallet/", body)
    assert response.status_code == 400
    assert any(e.startswith(message) for e in field_errors(response)), field_errors(response)
    assert wallet_for(buyer=buyer, currency="USD").auto_top_up_method_id is None


def test_an_unknown_currency_is_not_found(reader):
    """?currency=XYZ is a 404, not an error page."""
    assert reader.get("/wallet/?currency=XYZ").status_code == 404


# --- the tab page --------------------------------------------------------------------------------


def test_the_tab_page_shows_the_open_tab_and_settles_it_at_the_card_minimum(reader, buyer, store, post):
    """A 25¢ tab lists its purchase, owed, limit and dates; "Settle now" charges the 50¢ minimum, the change
    goes to the wallet, and the tab moves to the settled list."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    text = words(reader.get("/wallet/tab/?currency=USD"))
    tab = Tab.objects.get()
    assert "$0.25 owed of a $1.00 limit" in text and f"{store.name} A 25¢ post" in text
    assert f"Opened {tab.opened_at:%b} {tab.opened_at.day}, {tab.opened_at.year}" in text and "Settle by" in text
    assert "Cards charge at least $0.50" in text and "Settle now ($0.50)" in text
    response = reader.post("/wallet/tab/?currency=USD", {"payment_method": "sandbox_visa"}, follow=True)
    text = words(response)
    assert "Your tab is settled: $0.50 paid." in text and "No open tab" in text and "Paid by card $0.50" in text
    assert balance(buyer) == 25
    assert_ledger_balanced()


def test_settling_with_a_bad_card_shows_the_error(reader, buyer, store, post):
    """A declined or unknown card is a 400 on the settle form; the tab stays open."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    declined = reader.post("/wallet/tab/", {"payment_method": "sandbox_insufficient_funds"})
    assert declined.status_code == 400 and alerts(declined) == ["Your card has insufficient funds."]
    unknown = reader.post("/wallet/tab/", {"payment_method": "visa"})
    assert unknown.status_code == 400 and field_errors(unknown) == ["Unknown payment method “visa”."]
    assert Tab.objects.get().status == TabStatus.OPEN


def test_a_3ds_settlement_returns_to_the_tab(reader, buyer, store, post):
    """Settling with sandbox_3ds goes through the bank's page and back to the tab page."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    response = reader.post("/wallet/tab/", {"payment_method": "sandbox_3ds"})
    assert "to settle your tab" in words(reader.get(response["Location"]))
    done = reader.post(response["Location"], {"decision": "approve"}, follow=True)
    assert done.redirect_chain[-1][0] == "/wallet/tab/?currency=USD"
    assert "Your tab is settled: $0.50 paid." in words(done)


def test_an_overdue_tab_says_so(reader, buyer, store, post):
    """A tab past its settle-by date is marked overdue on its page."""
    from datetime import timedelta

    from django.utils import timezone

    spend(store=store, product=post, buyer=buyer, method="tab")
    Tab.objects.update(opened_at=timezone.now() - timedelta(days=31))
    assert "This tab is past its settle-by date." in words(reader.get("/wallet/tab/"))


# --- paying a checkout ---------------------------------------------------------------------------


def test_the_payment_page_asks_a_visitor_to_sign_in_for_the_wallet(client, store, post):
    """Signed out, the payment page offers a sign-in link back to itself, and the test cards as before."""
    checkout = open_checkout(store, post)
    page = client.get(f"/checkout/{checkout.pk}/").content.decode()
    assert f'href="/library/?next=%2Fcheckout%2F{checkout.pk}%2F"' in page
    assert "Visa •••• 4242" in page


def test_one_click_pays_from_the_wallet(reader, buyer, store, post):
    """With $5.00 in the wallet the page offers "Pay from wallet (balance $5.00)"; one POST completes it."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    checkout = open_checkout(store, post)
    assert "Pay from wallet (balance $5.00)" in words(reader.get(f"/checkout/{checkout.pk}/"))
    response = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"})
    assert response["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Checkout.objects.get(pk=checkout.pk).status == "complete" and balance(buyer) == 475
    assert store_balance(store) == 25 - 2  # 25¢ less its share of the 45¢ top-up fee: 45 × 25 ÷ 500
    assert_ledger_balanced()


def test_above_the_one_click_limit_the_buyer_confirms_first(reader, buyer, store):
    """A $6 purchase with the default $5 one-click limit shows a confirm step; confirming pays."""
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    checkout = open_checkout(store, ProductFactory(store=store, name="Big zine", amount=600))
    step = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"})
    assert step.status_code == 200
    assert "Pay $6.00 from your wallet?" in words(step) and "confirm payments above $5.00" in words(step)
    assert Checkout.objects.get(pk=checkout.pk).status == "open"
    done = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet", "confirm": "yes"})
    assert done["Location"] == f"/checkout/{checkout.pk}/complete/" and balance(buyer) == 400


def test_an_empty_wallet_offers_a_top_up_and_the_tab(reader, buyer, store, post):
    """With nothing in the wallet the page links to a top-up that comes back here, and offers the tab;
    a wallet POST anyway is refused with the wallet's message on the payment page."""
    checkout = open_checkout(store, post)
    page = reader.get(f"/checkout/{checkout.pk}/")
    text = words(page)
    assert "Your wallet holds $0.00. Top up your wallet" in text and "Put on my tab" in text
    assert f"next=%2Fcheckout%2F{checkout.pk}%2F" in page.content.decode()
    refused = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"}, follow=True)
    assert "Your wallet does not hold enough for this. Top it up, or put it on your tab." in words(refused)
    assert Payment.objects.count() == 0


def test_a_top_up_from_the_payment_page_returns_to_it(reader, buyer, store, post):
    """The top-up link carries the store and the way back; after topping up the buyer is back on the page."""
    checkout = open_checkout(store, post)
    response = top_up(reader, preset="500", store=store.slug, next=f"/checkout/{checkout.pk}/")
    assert response["Location"] == f"/checkout/{checkout.pk}/"
    assert "Pay from wallet (balance $5.00)" in words(reader.get(response["Location"]))


def test_putting_two_purchases_on_the_tab_then_a_full_tab_offers_settle_and_buy(reader, buyer, store, post):
    """Four 25¢ purchases fill a $1 tab; the fifth page offers "Settle your tab ($1.00) and buy", whose page
    charges $1.25 once and completes the purchase."""
    for _ in range(4):
        checkout = open_checkout(store, post)
        assert reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "tab"})["Location"].endswith("/complete/")
    checkout = open_checkout(store, post)
    text = words(reader.get(f"/checkout/{checkout.pk}/"))
    assert "Settle your tab ($1.00) and buy" in text and "Put on my tab" not in text
    refused = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "tab"}, follow=True)
    assert "This would take your tab over its limit. Settle the tab to continue." in words(refused)
    offer = words(reader.get(f"/wallet/tab/settle/{checkout.pk}/"))
    assert "One card charge of $1.25 pays what your tab owes and this purchase." in offer
    done = reader.post(f"/wallet/tab/settle/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert done["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Payment.objects.filter(purpose="tab_settlement").get().amount == 125
    assert Tab.objects.get().status == TabStatus.SETTLED and balance(buyer) == 0
    assert_ledger_balanced()


def test_settle_and_buy_with_a_small_tab_charges_the_minimum(reader, buyer, store):
    """A 10¢ tab and a 15¢ purchase that is overdue: one 50¢ charge, 25¢ change into the wallet."""
    from datetime import timedelta

    from django.utils import timezone

    dime = ProductFactory(store=store, name="Dime", amount=10)
    spend(store=store, product=dime, buyer=buyer, method="tab")
    Tab.objects.update(opened_at=timezone.now() - timedelta(days=40))
    checkout = open_checkout(store, ProductFactory(store=store, name="Note", amount=15))
    assert "Your tab is past its settle-by date." in words(reader.get(f"/checkout/{checkout.pk}/"))
    offer = words(reader.get(f"/wallet/tab/settle/{checkout.pk}/"))
    assert "Into your wallet (cards charge at least $0.50) $0.25" in offer
    reader.post(f"/wallet/tab/settle/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert Checkout.objects.get(pk=checkout.pk).status == "complete" and balance(buyer) == 25
    assert_ledger_balanced()


def test_settle_and_buy_through_3ds_completes_the_purchase_after_the_bank(reader, buyer, store, post):
    """With sandbox_3ds, settle-and-buy goes through the bank's page, then to the thank-you page."""
    for _ in range(4):
        spend(store=store, product=post, buyer=buyer, method="tab")
    checkout = open_checkout(store, post)
    response = reader.post(f"/wallet/tab/settle/{checkout.pk}/", {"payment_method": "sandbox_3ds"})
    assert f"checkout={checkout.pk}" in response["Location"]
    done = reader.post(response["Location"], {"decision": "approve"})
    assert done["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Checkout.objects.get(pk=checkout.pk).status == "complete"
    assert_ledger_balanced()


def test_settle_and_buy_with_a_declined_card_keeps_everything_open(reader, buyer, store, post):
    """A declined card is a 400 on the offer page; the tab is open again and the checkout unpaid."""
    for _ in range(4):
        spend(store=store, product=post, buyer=buyer, method="tab")
    checkout = open_checkout(store, post)
    response = reader.post(f"/wallet/tab/settle/{checkout.pk}/", {"payment_method": "sandbox_declined"})
    assert response.status_code == 400 and alerts(response) == ["Your card was declined."]
    assert Checkout.objects.get(pk=checkout.pk).status == "open"
    assert tab_open_get(buyer=buyer, currency="USD").account.debit_limit == 100


def test_the_pay_endpoints_refuse_a_signed_out_visitor_and_unknown_methods(client, reader, store, post):
    """Signed out, paying from a wallet sends the visitor to sign in; an unknown method is refused."""
    checkout = open_checkout(store, post)
    signed_in = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "sandbox_visa"}, follow=True)
    assert "Choose your wallet or your tab." in words(signed_in)
    reader.post("/library/logout/")
    response = reader.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"})
    assert urlsplit(response["Location"]).path == "/library/"
    assert reader.get(f"/wallet/tab/settle/{checkout.pk}/")["Location"].startswith("/library/?next=")
    assert reader.post("/wallet/pay/chk_nothing/", {"payment_method": "wallet"}).status_code == 404


def test_an_allowance_charge_shows_in_the_history_as_charged_by_the_store(reader, buyer, store):
    """A store's charge against an allowance is listed as "Charged by <store>" with its description."""
    from stall.accounts.models import Customer
    from stall.wallets.allowances import allowance_grant, charge_create

    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    allowance_grant(buyer=buyer, store=store, amount=300, period="day")
    customer = Customer.objects.get(store=store, email=buyer.email)
    charge_create(store=store, customer_id=customer.pk, amount=40, currency="USD", description="100 API calls")
    text = words(reader.get("/wallet/"))
    assert f"Charged by {store.name} 100 API calls" in text and "−$0.40" in text
