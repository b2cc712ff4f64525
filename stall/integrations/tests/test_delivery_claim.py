"""A delivery being sent is claimed: a second worker, or the retry sweep, does not send it too."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from stall.integrations import webhooks
from stall.integrations.models import DeliveryStatus, Event, WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)


class HeldReceiver:
    """A local endpoint that keeps its first request waiting until ``release`` is set, then
    answers 200; later requests are answered at once."""

    def __init__(self):
        self.requests: list[str] = []  # webhook-id of each request, in arrival order
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(self.headers["webhook-id"])
                if len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(10)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def due_delivery(store, receiver) -> WebhookDelivery:
    """A delivery of a new event, due now, that no worker has picked up yet."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = Event.objects.create(store=store, type="order.paid", data={"object": {}})
    return WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=timezone.now()
    )


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = HeldReceiver()
    try:
        yield r
    finally:
        r.close()


def test_a_delivery_in_flight_is_not_sent_again_by_a_second_attempt(store, receiver, settings):
    """While one attempt waits for the receiver's answer, a second attempt at the same delivery
    (another worker's task, or the retry sweep) sends nothing; the first records the outcome."""
    settings.STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS = 300
    delivery = due_delivery(store, receiver)

    def first_attempt():
        try:
            webhooks.delivery_attempt(delivery_id=delivery.pk)
        finally:
            connection.close()

    first = threading.Thread(target=first_attempt)
    first.start()
    try:
        assert receiver.first_arrived.wait(10)
        claimed = WebhookDelivery.objects.get(pk=delivery.pk)
        assert claimed.next_attempt_at > timezone.now() + timedelta(seconds=290)
        assert webhooks.deliveries_due() == []

        second = webhooks.delivery_attempt(delivery_id=delivery.pk)
        assert (second.status, second.attempts) == (DeliveryStatus.PENDING, 0)
    finally:
        receiver.release.set()
        first.join(10)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED, 1, 200,
    )
    assert receiver.requests == [delivery.event_id]


def test_a_claim_that_lapsed_is_due_again(store, receiver, settings):
    """An attempt whose process died keeps its claim only for STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS;
    after that the delivery is due and the sweep sends it."""
    receiver.release.set()
    delivery = due_delivery(store, receiver)
    claimed_at = timezone.now()
    lease = timedelta(seconds=settings.STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS)
    # What a worker killed between its claim and the receiver's answer leaves behind.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=claimed_at + lease)

    assert webhooks.deliveries_due(now=claimed_at + lease - timedelta(seconds=1)) == []
    assert webhooks.deliveries_due(now=claimed_at + lease) == [delivery.pk]
    webhooks.delivery_attempt(delivery_id=delivery.pk, now=claimed_at + lease)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)
    assert len(receiver.requests) == 1
