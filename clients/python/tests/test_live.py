"""stall_client against a live `stall serve` (gunicorn and its Huey worker in subprocesses):
usage metered through the client is charged live by the worker; products, checkouts, orders,
refunds, charges and customers answer; a lost answer is retried with the same Idempotency-Key
and event ids and counted once; webhook signatures verify."""

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import httpx
import pytest
from stall_client import Stall, StallAPIError, WebhookVerificationError, webhook_verify

from tests.test_serve import ROOT, Server, server_env, template  # noqa: F401 - template is a fixture

pytestmark = pytest.mark.journey

SEED = """
import json, os
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
django.setup()
from stall.accounts.services import buyer_for_email
from stall.integrations.services import api_key_create
from stall.orders.services import customer_for_email
from stall.testing import StoreFactory
from stall.wallets.allowances import allowance_grant
from stall.wallets.services import wallet_top_up
store = StoreFactory(slug="client-shop", name="Client shop")
_, secret = api_key_create(store=store, name="client")
buyer = buyer_for_email(email="dev@example.com")
wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
print(json.dumps({"secret": secret, "customer": customer_for_email(store_id=store.pk, email=buyer.email).pk}))
"""


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory, template):  # noqa: F811
    """One server for the module (starting one costs seconds); its store seeded by a separate
    process. On PostgreSQL it writes to the test database, which pytest-django drops at the end."""
    tmp_path = tmp_path_factory.mktemp("client")
    with django_db_blocker.unblock():
        server = Server(tmp_path, template)
        try:
            server.wait_ready()
            env = server_env(tmp_path / "data") | {"PYTHONPATH": str(ROOT)}
            done = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            seeded = json.loads(done.stdout.strip().splitlines()[-1])
            yield server, seeded
        finally:
            server.kill()


def _until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_usage_metered_through_the_client_is_charged_live(live):
    server, seeded = live
    customer = seeded["customer"]
    with Stall(seeded["secret"], base_url=server.base) as stall:
        stall.meters.create(key="api_calls", name="API calls", event_name="api.call")
        plan = stall.plans.create(name="Pay per call", prices=[{"meter": "api_calls", "unit_price": "0.2"}])
        sub = stall.usage_subscriptions.create(customer=customer, plan=plan["id"], threshold=10)
        events = [{"id": f"call-{n}", "customer": customer, "name": "api.call"} for n in range(2500)]
        sent = stall.events.send(events)  # three batches: 1,000, 1,000, 500
        assert (sent.accepted, sent.duplicates, sent.refused) == (2500, 0, 0)
        again = stall.events.send(events[:1200])
        assert (again.accepted, again.duplicates) == (0, 1200)
        bad = stall.events.send([{"id": "x", "customer": customer, "name": "api.call", "timestamp": "soon"}])
        assert bad.refusals[0].error["code"] == "invalid_timestamp"

        usage = stall.customers.usage(customer, meter="api_calls")
        assert usage["meters"][0]["quantity"] == "2500"
        assert usage["total"] == {"exact": "500", "amount": 500}
        # The worker charges the wallet live, in whole cents, as the batches arrive.
        charged = _until(lambda: stall.usage_subscriptions.retrieve(sub["id"])["charged_this_period"] == 500)
        assert charged, stall.usage_subscriptions.retrieve(sub["id"])
        assert stall.customers.wallet(customer)["balance"] == 1500
        assert sum(c["amount"] for c in stall.charges.iterate()) == 500

        with pytest.raises(StallAPIError) as refused:
            stall.customers.usage(customer, meter="nope")
        assert (refused.value.status, refused.value.code, refused.value.param) == (404, "resource_missing", "meter")


def test_products_checkouts_orders_and_refunds(live):
    server, seeded = live
    with Stall(seeded["secret"], base_url=server.base) as stall:
        product = stall.products.create(name="Zine", amount=300)
        stall.products.upload_file(product["id"], filename="zine.txt", content=b"hello", content_type="text/plain")
        assert stall.products.update(product["id"], status="published")["status"] == "published"
        checkout = stall.checkouts.create(email="reader@example.com", product=product["id"])
        paid = stall.checkouts.confirm(checkout["id"], payment_method="sandbox_visa")
        order = stall.orders.retrieve(paid["order"])
        assert (order["amount_total"], order["status"]) == (300, "paid")
        refund = stall.refunds.create(order=order["id"], amount=100)
        assert refund["amount"] == 100
        assert stall.orders.retrieve(order["id"])["amount_refunded"] == 100
        assert [c["id"] for c in stall.customers.iterate()]


class LosingTransport(httpx.HTTPTransport):
    """Delivers each POST to Stall, then loses the first answer, as a dropped connection would."""

    def __init__(self):
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection lost", request=request)
        return response


def test_a_lost_answer_is_retried_with_the_same_key_and_counted_once(live):
    server, seeded = live
    customer = seeded["customer"]
    with Stall(seeded["secret"], base_url=server.base) as setup:
        setup.meters.create(key="retried", name="Retried calls", event_name="api.retried")
    transport = LosingTransport()
    with Stall(seeded["secret"], base_url=server.base, transport=transport, backoff=0.05) as stall:
        sent = stall.events.send([{"customer": customer, "name": "api.retried"} for _ in range(10)])
        assert transport.keys[0] == transport.keys[1]  # the retry carried the first key
        assert sent.accepted == 10  # Stall replayed its first answer
        assert stall.customers.usage(customer, meter="retried")["meters"][0]["quantity"] == "10"


def test_webhook_signatures_verify():
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    body, stamp = b'{"type": "usage.payment_failed"}', str(int(time.time()))
    mac = hmac.new(b"k" * 24, f"evt_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {"webhook-id": "evt_1", "webhook-timestamp": stamp, "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    webhook_verify(secret=secret, headers=headers, body=body)
    with pytest.raises(WebhookVerificationError):
        webhook_verify(secret=secret, headers=headers, body=body + b" ")
    with pytest.raises(WebhookVerificationError):
        webhook_verify(secret=secret, headers=headers, body=body, now=time.time() + 600)
