"""Paying a checkout through Stripe (localstripe), confirmed on the server: the API and services path."""

import pytest

from stall.checkout.models import CheckoutStatus
from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance
from stall.orders.checkout_pay import checkout_confirm
from stall.payments.errors import (
    PaymentDeclined,
    PaymentProcessorUnavailable,
    StripeKeyInvalid,
    StripeNotConfigured,
)
from stall.payments.models import Payment, PaymentStatus, StripeAccount
from stall.payments.rails import UnknownPaymentMethod, card_fee, rail_for
from stall.payments.stripe_services import stripe_account_set, stripe_payments_reconcile
from stall.testing import StoreFactory

from .conftest import (
    DECLINED_ON_CHARGE,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    THREE_D_SECURE,
    VISA,
    open_checkout,
)


def test_a_visa_card_pays_the_checkout_through_a_payment_intent(stripe_store, card, localstripe_client):
    """A pm_… card confirmed on the server completes the checkout: one PaymentIntent for the exact
    amount in lower-case currency, tagged with our ids; the store is credited the sale less the fee."""
    checkout = open_checkout(stripe_store, amount=1250)

    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=card(VISA))

    assert checkout.status == CheckoutStatus.COMPLETE
    payment = Payment.objects.get(checkout=checkout)
    assert (payment.rail, payment.status, payment.fee) == ("stripe", PaymentStatus.SUCCEEDED, card_fee(1250, "USD"))
    assert payment.fee == 66  # 2.9% of 12.50 = 36¢, + 30¢
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 1250, "usd")
    assert intent["metadata"] == {"stall_payment": payment.pk, "stall_checkout": checkout.pk, "stall_store": stripe_store.pk}
    assert checkout.order.amount_total == 1250
    assert account_balance(kind=AccountKind.STORE_BALANCE, owner=stripe_store.pk, currency="USD").amount == 1250 - 66


def test_the_api_pays_with_a_stripe_payment_method(stripe_store, api, card):
    """POST /checkouts/{id}/confirm with a pm_… answers the completed checkout and its order."""
    checkout = open_checkout(stripe_store)

    response = api.post(f"/checkouts/{checkout.pk}/confirm", {"payment_method": card(VISA)})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["payment"]["status"]) == ("complete", "succeeded")
    assert body["order"].startswith("ord_")


def test_a_declined_card_leaves_the_checkout_open_with_stripes_reason(stripe_store, card, api):
    """Stripe's decline becomes a 402 with its code and message; the checkout stays open and the
    buyer's next card pays it."""
    checkout = open_checkout(stripe_store)

    with pytest.raises(PaymentDeclined, match="^Your card was declined.$") as caught:
        checkout_confirm(checkout_id=checkout.pk, payment_method=card(DECLINED_ON_CHARGE))

    assert caught.value.code == "card_declined"
    checkout.refresh_from_db()
    assert (checkout.status, checkout.last_error_code, checkout.last_error_message) == (
        CheckoutStatus.OPEN, "card_declined", "Your card was declined."
    )
    assert Payment.objects.get(checkout=checkout).status == PaymentStatus.FAILED

    response = api.post(f"/checkouts/{checkout.pk}/confirm", {"payment_method": card(DECLINED_ON_CHARGE)})
    assert response.status_code == 402
    assert response.json() == {"error": {"code": "card_declined", "message": "Your card was declined.", "param": None}}

    assert checkout_confirm(checkout_id=checkout.pk, payment_method=card(VISA)).status == CheckoutStatus.COMPLETE


def test_an_unknown_stripe_payment_method_is_a_clean_failure(stripe_store):
    """A pm_ id Stripe does not know fails the payment with a clear message, not a server error."""
    checkout = open_checkout(stripe_store)

    with pytest.raises(PaymentDeclined, match="not known to the card processor") as caught:
        checkout_confirm(checkout_id=checkout.pk, payment_method="pm_doesnotexist")

    assert caught.value.code == "invalid_payment_method"
    assert Payment.objects.get(checkout=checkout).status == PaymentStatus.FAILED


def test_3d_secure_passed_at_the_bank_completes_theopen_checkout(stripe_store, card, client, buyer_browser, api):
    """A card that asks for 3-D Secure leaves the payment awaiting the buyer; the API sends them to
    our page; once the bank's check passes, the return from Stripe completes the checkout."""
    checkout = open_checkout(stripe_store)

    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=card(THREE_D_SECURE))

    assert checkout.status == CheckoutStatus.OPEN
    payment = Payment.objects.get(checkout=checkout)
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    body = api.get(f"/checkouts/{checkout.pk}").json()
    assert body["payment"]["next_action"]["url"].endswith(f"/checkout/{checkout.pk}/authenticate/")
    # That page hands a Stripe payment to the Stripe page, where Stripe.js runs the bank's check.
    assert client.get(f"/checkout/{checkout.pk}/authenticate/").url == f"/checkout/{checkout.pk}/"
    page = client.get(f"/checkout/{checkout.pk}/")
    assert page.context["next_action"] is True

    buyer_browser.authenticate(payment.rail_reference, page.context["client_secret"], success=True)
    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": payment.rail_reference})

    assert response.url == f"/checkout/{checkout.pk}/complete/"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.checkout.order.payment_id == payment.pk


def test_3d_secure_failed_at_the_bank_fails_the_payment(stripe_store, card, client, buyer_browser):
    """A failed bank check fails the payment with Stripe's reason and sends the buyer back to pay."""
    checkout = open_checkout(stripe_store)
    checkout_confirm(checkout_id=checkout.pk, payment_method=card(THREE_D_SECURE))
    payment = Payment.objects.get(checkout=checkout)
    page = client.get(f"/checkout/{checkout.pk}/")

    buyer_browser.authenticate(payment.rail_reference, page.context["client_secret"], success=False)
    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": payment.rail_reference})

    assert response.url == f"/checkout/{checkout.pk}/"
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_message) == (
        PaymentStatus.FAILED, "payment_intent_authentication_failure", "The provided PaymentMethod has failed authentication."
    )
    page = client.get(response.url)
    assert "The provided PaymentMethod has failed authentication." in page.content.decode()
    assert page.context["checkout"].status == CheckoutStatus.OPEN


def test_stripe_unreachable_is_a_503_and_the_payment_waits_for_reconciliation(stripe_store, card, closed_port_url, api, settings):
    """With Stripe unreachable the buyer hears 503 payment_processor_unavailable, never a 500; the
    payment stays processing (a second confirm charges nothing); once Stripe answers again, the
    reconciliation task sends the create again under the same idempotency key and completes it."""
    visa = card(VISA)
    checkout = open_checkout(stripe_store)
    localstripe_base = StripeAccount.objects.get(store=stripe_store).api_base
    StripeAccount.objects.filter(store=stripe_store).update(api_base=closed_port_url)

    with pytest.raises(PaymentProcessorUnavailable) as caught:
        checkout_confirm(checkout_id=checkout.pk, payment_method=visa)
    assert (caught.value.status, caught.value.code) == (503, "payment_processor_unavailable")
    payment = Payment.objects.get(checkout=checkout)
    assert (payment.status, payment.rail_reference) == (PaymentStatus.PROCESSING, "")

    other = open_checkout(stripe_store)
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    response = api.post(f"/checkouts/{other.pk}/confirm", {"payment_method": visa})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payment_processor_unavailable"

    StripeAccount.objects.filter(store=stripe_store).update(api_base=localstripe_base)
    assert stripe_payments_reconcile(older_than_minutes=0) == 2
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.rail_reference.startswith("pi_")
    checkout.refresh_from_db()
    assert checkout.status == CheckoutStatus.COMPLETE


def test_the_rail_is_picked_by_store_and_payment_method(store, stripe_store, settings, localstripe):
    """pm_… and stripe go to Stripe only where keys exist (the store's own win over the
    platform's); sandbox_… goes to the sandbox only where no Stripe keys are set for the store,
    unless the operator turned it off."""
    plain = StoreFactory()
    assert rail_for(store=stripe_store, payment_method="pm_123").name == "stripe"
    assert rail_for(store=plain, payment_method="sandbox_visa").name == "sandbox"
    turned_off = "^Test cards are turned off for this store: it takes real card payments.$"
    with pytest.raises(UnknownPaymentMethod, match=turned_off):
        rail_for(store=stripe_store, payment_method="sandbox_visa")
    with pytest.raises(StripeNotConfigured, match="does not take card payments through Stripe"):
        rail_for(store=plain, payment_method="pm_123")

    settings.STRIPE_SECRET_KEY, settings.STRIPE_PUBLISHABLE_KEY, settings.STRIPE_API_BASE = "sk_test_platform", "pk_test_platform", localstripe
    from stall.payments.selectors import stripe_config_for_store

    assert rail_for(store=plain, payment_method="stripe").name == "stripe"
    assert stripe_config_for_store(plain).secret_key == "sk_test_platform"
    assert stripe_config_for_store(stripe_store).secret_key == SECRET_KEY

    settings.STALL_SANDBOX_ENABLED = False
    with pytest.raises(UnknownPaymentMethod, match="^Test cards are turned off on this Stall.$") as caught:
        rail_for(store=plain, payment_method="sandbox_visa")
    assert caught.value.code == "sandbox_disabled"


def test_the_api_says_sandbox_is_off_when_it_is(api, product, settings):
    """With STALL_SANDBOX_ENABLED=0, paying with a test card is a 400 naming the payment method."""
    settings.STALL_SANDBOX_ENABLED = False
    checkout = api.post("/checkouts", {"email": "b@example.com", "product": product.pk}).json()

    response = api.post(f"/checkouts/{checkout['id']}/confirm", {"payment_method": "sandbox_visa"})

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "sandbox_disabled", "message": "Test cards are turned off on this Stall.", "param": "payment_method"}}


def test_a_store_key_stripe_refuses_is_not_saved(store, localstripe, settings, closed_port_url):
    """Setting a store's keys asks Stripe first: a key it refuses, a malformed key, a test/live
    mix, an unreachable Stripe or a custom API address where none is allowed save nothing."""
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    keys = {"store": store, "publishable_key": PUBLISHABLE_KEY, "api_base": localstripe}
    with pytest.raises(StripeKeyInvalid, match="^Stripe did not accept this secret key.$"):
        stripe_account_set(secret_key="sk_x", **keys)  # localstripe, like Stripe, answers 401
    with pytest.raises(StripeKeyInvalid, match="starts with sk_"):
        stripe_account_set(secret_key="pk_test_wrong_kind", **keys)
    with pytest.raises(StripeKeyInvalid, match="test key and the other a live key"):
        stripe_account_set(secret_key="sk_live_abc", **keys)
    with pytest.raises(StripeKeyInvalid, match="starts with whsec_"):
        stripe_account_set(secret_key=SECRET_KEY, webhook_secret="secret", **keys)
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    with pytest.raises(PaymentProcessorUnavailable):
        stripe_account_set(secret_key=SECRET_KEY, **{**keys, "api_base": closed_port_url})
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = False
    with pytest.raises(StripeKeyInvalid, match="custom Stripe API address is not allowed"):
        stripe_account_set(secret_key=SECRET_KEY, **keys)
    assert not StripeAccount.objects.exists()

    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    account = stripe_account_set(secret_key=SECRET_KEY, **keys)
    assert (account.secret_key, account.api_base) == (SECRET_KEY, localstripe)
