"""The buyer's Stripe page and the return from Stripe, through Django's test client against localstripe.

localstripe's Stripe.js has no Payment Element, so a browser cannot drive this page offline; the
``buyer_browser`` fixture does at localstripe what Stripe.js would (attach the card, confirm)."""

import datetime

from django.utils import timezone

from stall.checkout.models import Checkout, CheckoutStatus
from stall.core.middleware import ContentSecurityPolicyMiddleware
from stall.payments.models import Payment, PaymentStatus

from .conftest import DECLINED_ON_CHARGE, PUBLISHABLE_KEY, VISA, open_checkout


def _csp(response) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in response["Content-Security-Policy"].split(";"))}


def test_the_page_renders_stripes_payment_element_for_one_payment_intent(stripe_store, client, localstripe, localstripe_client, settings):
    """The checkout page of a Stripe store carries the intent's client secret, our publishable
    key, the absolute return URL and Stripe.js from STRIPE_JS_URL; reloading reuses the intent."""
    settings.STRIPE_JS_URL = f"{localstripe}/js.stripe.com/v3/"
    checkout = open_checkout(stripe_store, amount=500)

    response = client.get(f"/checkout/{checkout.pk}/")

    assert response.status_code == 200
    payment = Payment.objects.get(checkout=checkout)
    assert (payment.rail, payment.payment_method, payment.status) == ("stripe", "stripe", PaymentStatus.REQUIRES_ACTION)
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["amount"], intent["currency"], intent["status"]) == (500, "usd", "requires_payment_method")
    html = response.content.decode()
    assert f'data-client-secret="{intent["client_secret"]}"' in html
    assert f'data-publishable-key="{PUBLISHABLE_KEY}"' in html
    assert f'data-return-url="http://testserver/checkout/{checkout.pk}/stripe/return/"' in html
    assert f'<script src="{localstripe}/js.stripe.com/v3/" defer></script>' in html
    assert '<script src="/static/payments/stripe-checkout.js" defer></script>' in html
    assert response.context["next_action"] is False

    again = client.get(f"/checkout/{checkout.pk}/")
    assert again.context["client_secret"] == intent["client_secret"]
    assert Payment.objects.filter(checkout=checkout).count() == 1


def test_only_the_stripe_page_lets_stripe_js_in(stripe_store, client, localstripe):
    """The Stripe page's policy adds Stripe.js's origin (and the API's) to script, frame and
    connect sources, keeping 'self'; the same store's other pages keep the strict policy."""
    checkout = open_checkout(stripe_store)

    policy = _csp(client.get(f"/checkout/{checkout.pk}/"))

    assert policy["script-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
    assert policy["frame-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"]
    assert policy["connect-src"] == ["'self'", "https://js.stripe.com", "https://api.stripe.com", localstripe]
    assert policy["frame-ancestors"] == ["'none'"]
    store_page = client.get(f"/s/{stripe_store.slug}/")
    assert store_page["Content-Security-Policy"] == ContentSecurityPolicyMiddleware.POLICY


def test_paying_on_the_page_and_returning_completes_the_checkout(stripe_store, client, buyer_browser):
    """After Stripe.js confirms the intent, the return view asks Stripe and finalizes the order."""
    checkout = open_checkout(stripe_store)
    client.get(f"/checkout/{checkout.pk}/")
    payment = Payment.objects.get(checkout=checkout)

    assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"
    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": payment.rail_reference, "redirect_status": "succeeded"})

    assert response.url == f"/checkout/{checkout.pk}/complete/"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert client.get(response.url).status_code == 200
    # The buyer's browser returning twice (a reload) changes nothing.
    assert client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": payment.rail_reference}).url == response.url
    assert Payment.objects.get(checkout=checkout).order.amount_total == 300


def test_a_card_declined_on_the_page_shows_stripes_message_and_a_fresh_intent(stripe_store, client, buyer_browser):
    """A decline fails that payment with Stripe's reason; the page shows it and offers a new intent."""
    checkout = open_checkout(stripe_store)
    first = client.get(f"/checkout/{checkout.pk}/").context["client_secret"]
    payment = Payment.objects.get(checkout=checkout)

    assert buyer_browser.pay(payment.rail_reference, DECLINED_ON_CHARGE)["status"] == "requires_payment_method"
    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": payment.rail_reference})

    assert response.url == f"/checkout/{checkout.pk}/"
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "card_declined")
    page = client.get(response.url)
    assert '<div class="alert alert-error" role="alert">Your card was declined. Try another card.</div>' in page.content.decode()
    assert page.context["client_secret"] not in ("", first)
    assert Checkout.objects.get(pk=checkout.pk).status == CheckoutStatus.OPEN


def test_a_return_naming_another_intent_changes_nothing(stripe_store, client):
    """A return URL with an intent that is not this checkout's is refused with a message."""
    checkout = open_checkout(stripe_store)
    client.get(f"/checkout/{checkout.pk}/")

    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": "pi_someone_else"}, follow=True)

    assert response.redirect_chain[-1][0] == f"/checkout/{checkout.pk}/"
    assert "No payment of this checkout matches the one Stripe returned." in response.content.decode()
    assert Payment.objects.get(checkout=checkout).status == PaymentStatus.REQUIRES_ACTION


def test_an_expired_checkout_shows_no_card_form(stripe_store, client):
    """Past its expiry the page says so and neither makes an intent nor loads Stripe.js."""
    checkout = open_checkout(stripe_store)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))

    response = client.get(f"/checkout/{checkout.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "This checkout has expired." in html
    assert "stripe-checkout.js" not in html
    assert not Payment.objects.filter(checkout=checkout).exists()


def test_stripe_down_shows_the_buyer_a_503_page(stripe_store, client, closed_port_url, settings):
    """With Stripe unreachable the page answers 503 with a plain message, not a server error."""
    from stall.payments.models import StripeAccount

    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    StripeAccount.objects.filter(store=stripe_store).update(api_base=closed_port_url)
    checkout = open_checkout(stripe_store)

    response = client.get(f"/checkout/{checkout.pk}/")

    assert response.status_code == 503
    assert "The card processor could not be reached." in response.content.decode()
    assert Payment.objects.get(checkout=checkout).status == PaymentStatus.PROCESSING
