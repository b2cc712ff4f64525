"""Paying from the wallet or the tab in a store that takes cards through Stripe."""

from stall.accounts.services import BUYER_EMAIL_SESSION_KEY, BUYER_SESSION_KEY, buyer_for_email
from stall.ledger.selectors import account_balance
from stall.orders.models import Order
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails.wallet import wallet_for
from stall.wallets.services import wallet_top_up

from .conftest import VISA, open_checkout


def sign_in(client, buyer):
    session = client.session
    session[BUYER_SESSION_KEY], session[BUYER_EMAIL_SESSION_KEY] = buyer.pk, buyer.email
    session.save()


def test_the_wallet_pays_after_the_stripe_page_opened_an_intent(
    stripe_store, client, localstripe_client, card
):
    """The Stripe page opens a PaymentIntent as it loads; choosing the wallet cancels that intent at
    Stripe, and the order is paid from the wallet once, with no card charge."""
    buyer = buyer_for_email(email="reader@example.com")
    # Real money: a store with its own Stripe keys takes no test money (see test_test_mode.py).
    wallet_top_up(
        buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA), store=stripe_store
    )
    checkout = open_checkout(stripe_store, amount=300, email=buyer.email)
    sign_in(client, buyer)

    page = client.get(f"/checkout/{checkout.pk}/")
    assert "Pay from wallet" in page.content.decode()
    card_payment = Payment.objects.get(checkout=checkout, rail="stripe")

    response = client.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"})
    assert response.status_code == 302 and response.url == f"/checkout/{checkout.pk}/complete/"
    card_payment.refresh_from_db()
    assert card_payment.status == PaymentStatus.CANCELED
    assert localstripe_client.v1.payment_intents.retrieve(card_payment.rail_reference).status == "canceled"
    order = Order.objects.get(checkout=checkout)
    assert order.payment.rail == "wallet"
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 700
    assert account_balance(kind="store_balance", owner=stripe_store.pk, currency="USD").amount == 300 - order.fee


def test_a_card_payment_that_went_through_is_kept_when_the_buyer_then_picks_the_wallet(
    stripe_store, client, buyer_browser, card
):
    """If the card on the Stripe page already paid, choosing the wallet records the card payment
    and completes the checkout with it; the wallet is not charged."""
    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(
        buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA), store=stripe_store
    )
    checkout = open_checkout(stripe_store, amount=300, email=buyer.email)
    sign_in(client, buyer)
    client.get(f"/checkout/{checkout.pk}/")
    card_payment = Payment.objects.get(checkout=checkout, rail="stripe")
    buyer_browser.pay(card_payment.rail_reference, VISA)  # paid in another tab; the return never came

    response = client.post(f"/wallet/pay/{checkout.pk}/", {"payment_method": "wallet"})
    assert response.status_code == 302 and response.url == f"/checkout/{checkout.pk}/complete/"
    card_payment.refresh_from_db()
    assert card_payment.status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(checkout=checkout).payment_id == card_payment.pk
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 1000
