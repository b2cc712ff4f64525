"""A real local Stripe peer (localstripe) for the Stripe tests, and helpers that act as the buyer's
browser (Stripe.js) and as Stripe itself (signed webhook deliveries); a real LNbits for the
Lightning tests, with a second wallet that pays as the buyer."""

import contextlib
import http.server
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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


# --- LNbits: a real Lightning wallet server, with FakeWallet as its funding source ---------------

LNBITS_ROOT = Path(__file__).resolve().parents[3] / ".lnbits-venv"
BTC_PRICE = 50_000  # the price LNbits is told, in every currency: 1.00 of it is 2,000 sats


class _Rates(http.server.BaseHTTPRequestHandler):
    """LNbits' price aggregator (price.lnbits.com's /rate/<currency>), so no test needs the network."""

    def do_GET(self):
        body = json.dumps({"rates": {"median": BTC_PRICE}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LNbits:
    """The test's view of a running LNbits: make wallets, and pay invoices as a buyer's wallet."""

    def __init__(self, url: str, token: str):
        import httpx

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self.admin = {"Authorization": f"Bearer {token}"}
        self.buyer = self.wallet("buyer", sats=1_000_000)

    def wallet(self, name: str, sats: int = 0) -> dict:
        """A new LNbits account with one wallet (its ``inkey``, ``adminkey``), funded with ``sats``."""
        wallet = self.http.post("/api/v1/account", json={"name": name}).raise_for_status().json()
        if sats:
            self.http.put("/users/api/v1/balance", json={"id": wallet["id"], "amount": sats}, headers=self.admin).raise_for_status()
        return wallet

    def pay(self, bolt11: str, wallet: dict | None = None):
        """Pay ``bolt11`` from the buyer's wallet: a payment inside one LNbits settles at once."""
        key = (wallet or self.buyer)["adminkey"]
        return self.http.post("/api/v1/payments", json={"out": True, "bolt11": bolt11}, headers={"X-Api-Key": key})


def _lnbits_site_packages() -> Path:
    found = sorted(LNBITS_ROOT.glob("lib/python3*/site-packages/lnbits"))
    if not (LNBITS_ROOT / "bin" / "lnbits").exists() or not found:
        pytest.fail(f"LNbits is needed for the Lightning tests, in {LNBITS_ROOT}: run `make lnbits` (make test does it).")
    return found[0].parent


def _first_install(url: str, process, log_name: str) -> str:
    """Wait for LNbits to be up and give its super user a password (its first-install step): the
    super user tops up the test's buyer wallet. Its token."""
    import httpx

    deadline = time.monotonic() + 90
    form = {"username": "stall", "password": "stall-tests-1", "password_repeat": "stall-tests-1"}
    while True:
        try:
            response = httpx.put(f"{url}/api/v1/auth/first_install", json=form, timeout=5)
            if response.status_code == 200:
                return response.json()["access_token"]
        except httpx.HTTPError:
            pass  # not listening yet; or still writing its settings ("not your first install")
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"LNbits did not start; see {log_name}")
        time.sleep(0.2)


@contextlib.contextmanager
def lnbits_running():
    """LNbits on a free port, from an empty data folder, until the block ends: an ``LNbits``.
    The economics bench (bench/economics.py) runs it too."""
    site = _lnbits_site_packages()
    rates = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rates)
    threading.Thread(target=rates.serve_forever, daemon=True).start()
    port, data = _free_port(), tempfile.mkdtemp(prefix="lnbits-")
    log = open(Path(data) / "lnbits.log", "w")
    env = {
        **os.environ, "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet", "LNBITS_DATA_FOLDER": data,
        "LNBITS_EXTENSIONS_PATH": str(Path(data) / "extensions"), "LNBITS_ADMIN_UI": "true",
        "LNBITS_PRICE_AGGREGATOR_URL": f"http://127.0.0.1:{rates.server_address[1]}",
        "LNBITS_EXCHANGE_RATE_PROVIDERS": "[]", "LNBITS_RATE_LIMIT_NO": "100000",
    }
    # LNbits finds its own static files relative to the working directory; its launcher starts the
    # server as a child process, so the whole process group is stopped at the end.
    process = subprocess.Popen(
        [str(LNBITS_ROOT / "bin" / "lnbits"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=site, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield LNbits(url, _first_install(url, process, log.name))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        rates.shutdown()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def lnbits():
    """LNbits for the whole session (lnbits_running)."""
    with lnbits_running() as server:
        yield server


@pytest.fixture
def lightning_store(store, lnbits, settings):
    """The ``store`` fixture with a new LNbits wallet of its own; the wallet's keys as ``store.lnbits``."""
    from stall.payments.lightning_services import lightning_account_set

    settings.STALL_LNBITS_ALLOW_PRIVATE = True
    # A public-looking address, which LNbits' default callback rules accept: webhooks are asked
    # for (and fail to arrive, there being no such host); the tests deliver them themselves.
    settings.BASE_URL = "http://stall.test"
    store.lnbits = lnbits.wallet(f"store {store.slug}")
    lightning_account_set(store=store, url=lnbits.url, invoice_key=store.lnbits["inkey"])
    return store
