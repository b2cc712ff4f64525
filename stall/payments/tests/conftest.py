"""A real local Stripe peer (localstripe) for the Stripe tests, and helpers that act as the buyer's
browser (Stripe.js) and as Stripe itself (signed webhook deliveries)."""

import itertools
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import stripe

SECRET_KEY = "sk_test_stall_store"
PUBLISHABLE_KEY = "pk_test_stall_store"
WEBHOOK_SECRET = "whsec_stall_store_test"

VISA = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"  # attaches, then every charge is declined
DECLINED_ON_ATTACH = "4000000000000002"
THREE_D_SECURE = "4000002760003184"  # asks for 3-D Secure on every payment and setup


_product_names = itertools.count(1)


def open_checkout(store, amount: int = 300, email: str = "buyer@example.com"):
    """An open checkout for one new product (with a file) of ``store``."""
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.testing import product_with_file

    product = product_with_file(store=store, name=f"Zine {next(_product_names)}", amount=amount)
    return checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe():
    """localstripe on a free port, from scratch, for the whole session; its base URL."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)
    executable = Path(sys.executable).with_name("localstripe")
    process = subprocess.Popen(
        [str(executable), "--port", str(port), "--from-scratch"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"localstripe did not start; see {log.name}") from None
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    Path(log.name).unlink(missing_ok=True)


@pytest.fixture
def closed_port_url():
    """An address where nothing listens: Stripe "down"."""
    return f"http://127.0.0.1:{_free_port()}"


@pytest.fixture
def localstripe_client(localstripe):
    """The Stripe library pointed at localstripe, as the test's own view of "Stripe"."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe}, max_network_retries=0)


@pytest.fixture
def stripe_store(store, localstripe, settings):
    """The ``store`` fixture with its own Stripe keys, on localstripe."""
    from stall.payments.stripe_services import stripe_account_set

    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    stripe_account_set(
        store=store, secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, webhook_secret=WEBHOOK_SECRET,
        api_base=localstripe,
    )
    return store


@pytest.fixture
def card(localstripe_client):
    """Make a card PaymentMethod in localstripe, as Stripe.js would for the buyer: card(VISA) -> "pm_…"."""

    def make(number: str) -> str:
        return localstripe_client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
        ).id

    return make


@pytest.fixture
def buyer_browser(localstripe_client, card, localstripe):
    """What the buyer's browser does at Stripe: pay a page's PaymentIntent, pass or fail 3-D Secure."""
    import httpx

    class Browser:
        def pay(self, intent_id: str, number: str) -> dict:
            """Enter ``number`` in the Payment Element and press Pay (confirmPayment)."""
            localstripe_client.v1.payment_intents.update(intent_id, params={"payment_method": card(number)})
            try:
                return localstripe_client.v1.payment_intents.confirm(intent_id).to_dict()
            except stripe.CardError:
                return localstripe_client.v1.payment_intents.retrieve(intent_id).to_dict()

        def authenticate(self, intent_id: str, client_secret: str, success: bool) -> None:
            """Pass (or fail) the bank's 3-D Secure check, as localstripe's Stripe.js does."""
            response = httpx.post(
                f"{localstripe}/v1/payment_intents/{intent_id}/_authenticate",
                params={"success": "true" if success else "false"},
                data={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
            )
            assert response.status_code in (200, 402), response.text

        def confirm_setup(self, setup_id: str, client_secret: str) -> None:
            """Pass the bank's check when saving a card (confirmCardSetup's second step)."""
            response = httpx.post(
                f"{localstripe}/v1/setup_intents/{setup_id}/confirm",
                data={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
            )
            assert response.status_code == 200, response.text

    return Browser()


def signed_delivery(payload: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, signed the way Stripe signs them."""
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return body.encode(), header


def intent_event(event_id: str, event_type: str, intent: dict) -> dict:
    """A Stripe event carrying a PaymentIntent snapshot, shaped like Stripe's."""
    return {
        "id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
        "api_version": "2024-06-20", "livemode": False, "data": {"object": intent},
    }
