"""/metrics: Prometheus's text format behind a bearer token; requests counted across processes,
payments by rail and status and the queue's depth read at scrape time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from huey.contrib.djhuey import HUEY
from prometheus_client.parser import text_string_to_metric_families

from stall.accounts.services import buyer_for_email
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.tasks import idempotency_records_prune
from stall.orders.checkout_pay import checkout_confirm
from stall.payments.errors import PaymentDeclined
from stall.testing import buy
from stall.wallets.services import wallet_top_up

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scrape-me-9b1c"

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.STALL_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[tuple, float]:
    """Every sample as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def requests_count(samples, method: str, status: str) -> float:
    return samples.get(("stall_http_requests_total", (("method", method), ("status", status))), 0)


def test_no_token_configured_no_endpoint(client, settings):
    settings.STALL_METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_a_missing_or_wrong_token_learns_nothing(client, token):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.content == b"" and response["WWW-Authenticate"] == "Bearer"
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_payments_by_rail_and_status(client, token, store, product):
    buy(store=store, product=product)  # a card purchase
    with pytest.raises(PaymentDeclined):
        buy(store=store, product=product, payment_method="sandbox_declined")
    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=1000, currency="USD", payment_method="sandbox_visa")
    checkout = checkout_create(store=store, email=reader.email, items=[CheckoutItem(product_id=product.pk)])
    checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader)
    samples = scrape(client)

    def payments(rail, status, name="stall_payments"):
        labels = (("currency", "USD"), ("mode", "live"), ("rail", rail), ("status", status))
        return samples.get((name, labels))

    assert payments("sandbox", "succeeded") == 2  # the purchase and the top-up
    assert payments("sandbox", "failed") == 1
    assert payments("wallet", "succeeded") == 1
    assert payments("sandbox", "succeeded", "stall_payments_amount") == product.amount + 1000
    assert payments("wallet", "succeeded", "stall_payments_amount") == product.amount


def test_queue_depth(client, token):
    HUEY.immediate = False  # the suite runs tasks at once; here they wait in the real queue
    try:
        before = scrape(client)
        idempotency_records_prune()
        idempotency_records_prune()
        after = scrape(client)
        HUEY.flush()
    finally:
        HUEY.immediate = True
    assert before[("stall_queue_up", ())] == after[("stall_queue_up", ())] == 1
    assert after[("stall_queue_pending", ())] - before[("stall_queue_pending", ())] == 2


def test_requests_are_counted_across_processes(client, token, settings, tmp_path):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/no-such-page/").status_code == 404
    # Another process, as the second gunicorn worker is, writes its counts to the same directory.
    env = {**os.environ, "STALL_DATA_DIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(settings.STALL_METRICS_DIR),
           "DJANGO_SETTINGS_MODULE": "stall.settings"}
    env.pop("DATABASE_URL", None)
    code = ("import django; django.setup(); from django.test import Client; c = Client(SERVER_NAME='127.0.0.1'); "
            "[c.head('/healthz') for _ in range(2)]")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    after = scrape(client)
    assert requests_count(after, "GET", "404") - requests_count(before, "GET", "404") == 3
    assert requests_count(after, "HEAD", "200") - requests_count(before, "HEAD", "200") == 2
    durations = "stall_http_request_duration_seconds_count", ()
    assert after[durations] - before[durations] == 3 + 2 + 1  # and the first scrape itself
