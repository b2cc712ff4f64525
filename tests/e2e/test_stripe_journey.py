"""The Stripe payment page in a real browser.

Stripe.js cannot load here (no internet) and localstripe's stand-in has no Payment Element, so a
small test server plays Stripe's browser side: it serves a stand-in for the three Stripe.js calls
our stripe-checkout.js makes (elements().create("payment"), confirmPayment, handleNextAction)
and carries them out against localstripe with the test keys, as Stripe's own API would. A card
asking for 3-D Secure gets the dialog of Stripe's test mode, where the buyer completes or fails
the bank's check. Our page, our script, the redirect to the return URL and the server's
finalizing are all real.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe
from playwright.sync_api import expect

from stall.orders.models import Order
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    localstripe,
)
from stall.testing import product_with_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAKE_STRIPE_JS = """
(function () {
  var ORIGIN = document.currentScript.src.replace(/\\/v3\\/$/, "");
  function call(path, payload) {
    // text/plain keeps it a simple request: no CORS preflight.
    return fetch(ORIGIN + path, {method: "POST", body: JSON.stringify(payload)}).then(function (r) { return r.json(); });
  }
  // Stripe's test-mode bank check: a dialog where the buyer completes or fails 3-D Secure.
  function challenge(intent, clientSecret) {
    return new Promise(function (resolve) {
      var box = document.createElement("div");
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-label", "3D Secure test payment");
      box.innerHTML = '<button type="button" data-success="true">Complete</button>' +
                      '<button type="button" data-success="false">Fail</button>';
      document.body.appendChild(box);
      box.addEventListener("click", function (event) {
        var success = event.target.dataset.success;
        if (!success) return;
        box.remove();
        var answer = {intent: intent, client_secret: clientSecret, success: success === "true"};
        call("/authenticate", answer).then(resolve);
      });
    });
  }
  window.Stripe = function (publishableKey) {
    return {
      elements: function (options) {
        return {
          clientSecret: options.clientSecret,
          create: function (type) {
            return {mount: function (selector) {
              document.querySelector(selector).innerHTML =
                '<label for="card-number">Card number</label><input id="card-number" inputmode="numeric">';
            }};
          }
        };
      },
      confirmPayment: function (options) {
        var number = document.getElementById("card-number").value.replace(/\\s/g, "");
        var secret = options.elements.clientSecret;
        var intent = secret.split("_secret_")[0];
        var card = {intent: intent, number: number, client_secret: secret};
        return call("/confirm", card).then(function (result) {
          return result.requires_action ? challenge(intent, secret) : result;
        }).then(function (result) {
          if (result.error) return {error: result.error};
          window.location.assign(options.confirmParams.return_url + "?payment_intent=" + intent);
          return new Promise(function () {});
        });
      },
      handleNextAction: function (options) {
        var intent = options.clientSecret.split("_secret_")[0];
        return challenge(intent, options.clientSecret).then(function (result) {
          return result.error ? {error: result.error} : {paymentIntent: {id: intent}};
        });
      }
    };
  };
})();
"""


class StripeBrowserSide:
    """Serves the Stripe.js stand-in and carries out its calls at localstripe."""

    def __init__(self, api_base: str):
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": api_base}, max_network_retries=0)
        import httpx

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body: bytes, content_type="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, FAKE_STRIPE_JS.encode(), "text/javascript")

            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                intent = data["intent"]
                if self.path == "/confirm":
                    method = client.v1.payment_methods.create(params={
                        "type": "card", "card": {"number": data["number"], "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
                    client.v1.payment_intents.update(intent, params={"payment_method": method.id})
                    try:
                        confirmed = client.v1.payment_intents.confirm(intent)
                    except stripe.CardError as exc:
                        self._send(200, json.dumps({"error": {"message": exc.user_message or "Your card was declined."}}).encode())
                        return
                    # Stripe shows the bank's 3-D Secure dialog in the page next.
                    waits = confirmed.status == "requires_action"
                    self._send(200, json.dumps({"requires_action": waits}).encode())
                elif self.path == "/authenticate":
                    httpx.post(f"{api_base}/v1/payment_intents/{intent}/_authenticate",
                               params={"success": "true" if data["success"] else "false"},
                               data={"key": PUBLISHABLE_KEY, "client_secret": data["client_secret"]})
                    # As Stripe.js does: a failed check returns the intent's last error.
                    after = client.v1.payment_intents.retrieve(intent)
                    error = after.last_payment_error
                    answer = {"error": {"message": error.message}} if error else {}
                    self._send(200, json.dumps(answer).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.js_url = f"http://127.0.0.1:{self.server.server_address[1]}/v3/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stripe_js(localstripe, settings):  # noqa: F811 - the fixture imported above
    side = StripeBrowserSide(localstripe)
    settings.STRIPE_JS_URL = side.js_url
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    yield side
    side.close()


@pytest.fixture
def stripe_shop(creator, localstripe, stripe_js):  # noqa: F811
    from stall.payments.stripe_services import stripe_account_set
    from stall.testing import StoreFactory

    store = StoreFactory(owner=creator, name="Card Shop", slug="cards")
    stripe_account_set(store=store, secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY,
                       webhook_secret=WEBHOOK_SECRET, api_base=localstripe)
    return store


def open_stripe_page(page, live_server, store, product, email):
    page.goto(f"{live_server.url}/s/{store.slug}/{product.slug}/")
    page.get_by_role("link", name="Buy").click()
    page.get_by_label("Your email").fill(email)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Card number")).to_be_visible()


def expect_paid_with_download(page, order_id: str, total: str, email: str, content: bytes):
    """The success page after Stripe sent the buyer back: the order, its total and the download."""
    expect(page).to_have_url(re.compile(r"/complete/$"))
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Order ord_"))).to_have_text(
        f"Order {order_id} · {total}. A receipt is on its way to {email}"
        " with a link to your library."
    )
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == content


def test_buyer_pays_on_the_stripe_page_after_a_decline(live_server, stripe_shop, phone, shot):
    """A declined card shows Stripe's message on the page and charges nothing; after a reload a good
    card pays, Stripe sends the buyer back, and the order is paid with its download."""
    product = product_with_file(store=stripe_shop, name="Poster pack", amount=800)
    page = phone.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_stripe_page(page, live_server, stripe_shop, product, "card.buyer@example.com")
    shot(page, "1-stripe-page")

    page.get_by_label("Card number").fill("4000 0000 0000 0341")
    page.get_by_role("button", name="Pay $8.00").click()
    alert = page.locator("#payment-message")
    expect(alert).to_be_visible()
    expect(alert).to_have_text(re.compile(r"declined", re.IGNORECASE))
    expect(page.get_by_role("heading", name="Pay $8.00")).to_be_visible()
    shot(page, "2-declined")
    assert Order.objects.count() == 0

    # Real Stripe lets the buyer try another card on the same PaymentIntent; localstripe refuses
    # to confirm an intent twice, so the buyer reloads and the page makes a fresh one.
    page.reload()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Pay $8.00").click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    order = Order.objects.get(email="card.buyer@example.com")
    expect_paid_with_download(page, order.pk, "$8.00", "card.buyer@example.com", b"hello, reader\n")
    shot(page, "3-paid")
    assert (order.amount_total, order.payment.rail, order.payment.status) == (800, "stripe", "succeeded")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_card_asking_for_3d_secure_completes_after_the_bank_check(
    live_server, stripe_shop, desktop, shot
):
    """A 3-D Secure card whose bank check the buyer fails shows Stripe's reason on the page, and
    the reloaded page keeps it and charges nothing; the same card with the check completed pays,
    and the buyer is back on the success page with the download."""
    product = product_with_file(
        store=stripe_shop, name="Brushes", amount=500, content=b"ten brushes\n")
    page = desktop.new_page()
    open_stripe_page(page, live_server, stripe_shop, product, "secure.buyer@example.com")
    page.get_by_label("Card number").fill("4000 0027 6000 3184")
    page.get_by_role("button", name="Pay $5.00").click()
    bank = page.get_by_role("dialog", name="3D Secure test payment")
    shot(page, "1-bank-check")
    bank.get_by_role("button", name="Fail").click()
    failed = "The provided PaymentMethod has failed authentication."
    expect(page.locator("#payment-message")).to_have_text(failed)
    expect(page.get_by_role("button", name="Pay $5.00")).to_be_enabled()
    shot(page, "2-bank-check-failed")
    page.reload()
    expect(page.get_by_role("alert").first).to_have_text(f"{failed} Try another card.")
    assert Order.objects.count() == 0

    page.get_by_label("Card number").fill("4000 0027 6000 3184")
    page.get_by_role("button", name="Pay $5.00").click()
    bank.get_by_role("button", name="Complete").click()
    expect(page).to_have_url(re.compile(r"/complete/$"))
    order = Order.objects.get(email="secure.buyer@example.com")
    expect_paid_with_download(page, order.pk, "$5.00", "secure.buyer@example.com", b"ten brushes\n")
    shot(page, "3-paid")
    assert (order.amount_total, order.payment.status) == (500, "succeeded")


def test_a_signed_in_buyer_tops_up_10_dollars_by_card_on_stripe(live_server, stripe_shop, phone, shot):
    """A buyer signed in by magic link picks "Card" on the wallet page of a store with Stripe, adds
    $10.00 on Stripe's card page, and comes back to a wallet holding $10.00."""
    from urllib.parse import urlsplit

    from stall.accounts.services import buyer_for_email, buyer_magic_link
    from stall.payments.rails.wallet import wallet_for

    buyer = buyer_for_email(email="wallet.buyer@example.com")
    link = urlsplit(buyer_magic_link(email=buyer.email))
    page = phone.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}{link.path}?{link.query}")
    page.goto(f"{live_server.url}/wallet/?currency=USD&store={stripe_shop.slug}")
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")

    page.get_by_label("Card", exact=True).check()
    page.get_by_role("button", name="Add $10.00").click()
    expect(page).to_have_url(re.compile(r"/wallet/payments/pay_\w+/card/"))
    expect(page.get_by_role("heading", name="Top up your wallet: $10.00")).to_be_visible()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    shot(page, "1-card-page")
    page.get_by_role("button", name="Pay $10.00").click()
    expect(page).to_have_url(re.compile(r"/wallet/\?currency=USD&store=cards$"))
    expect(page.get_by_text("Added $10.00 to your wallet.")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$10.00")
    shot(page, "2-topped-up")
    wallet = wallet_for(buyer=buyer, currency="USD")
    assert wallet.account.balance == 1000
    assert not [e for e in errors if "Content Security Policy" in e], errors
