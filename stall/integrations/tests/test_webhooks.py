import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from stall.integrations import webhooks
from stall.integrations.models import (
    DeliveryStatus,
    Event,
    WebhookDelivery,
    WebhookEndpointStatus,
)
from stall.integrations.tasks import webhook_deliveries_retry
from stall.integrations.webhooks import WebhookEndpointInvalid


class Receiver:
    """A local HTTP endpoint that records every request and answers with scripted status codes.

    ``delay`` holds each answer back that many seconds (a slow receiver); ``location`` is sent as
    the Location header, for redirects. GET is recorded too, so a followed redirect would show.
    """

    def __init__(self, statuses=(), *, delay: float = 0.0, location: str = ""):
        self.statuses = list(statuses)
        self.delay = delay
        self.location = location
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.end_headers()
                self.wfile.write(b"x" * 5000 if status == 500 else b"ok")

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def emit(store, django_capture_on_commit_callbacks, type="order.paid", data=None):
    with django_capture_on_commit_callbacks(execute=True):
        return webhooks.event_emit(store_id=store.pk, type=type, data=data or {"object": {"id": "ord_test"}})


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook", "http://0.0.0.0/",
])
def test_private_and_loopback_targets_are_refused(store, url):
    """Endpoints in private, loopback or link-local ranges are refused unless the operator allows them."""
    with pytest.raises(WebhookEndpointInvalid, match="private, loopback or link-local") as exc:
        webhooks.webhook_endpoint_create(store=store, url=url, enabled_events=["*"])
    assert exc.value.code == "webhook_target_forbidden"


@pytest.mark.parametrize("url,message", [
    ("ftp://example.com/x", "must start with https://"),
    ("not a url", "must start with https://"),
    ("https://user:pw@example.com/", "must not contain a user name"),
])
def test_malformed_targets_are_refused(store, url, message):
    """A URL that is not http(s), or carries credentials, is refused with a clear message."""
    with pytest.raises(WebhookEndpointInvalid, match=message):
        webhooks.webhook_endpoint_create(store=store, url=url, enabled_events=["*"])


def test_unknown_event_types_are_refused(store, receiver):
    """Only known event types (or *) can be subscribed to."""
    with pytest.raises(WebhookEndpointInvalid, match="Unknown event type order.exploded"):
        webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.exploded"])


def test_delivery_is_signed_the_standard_webhooks_way(store, receiver, django_capture_on_commit_callbacks):
    """The receiver verifies the delivery with the reference Standard Webhooks library and the endpoint's secret."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.paid"])
    event = emit(store, django_capture_on_commit_callbacks, data={"object": {"id": "ord_1", "amount_total": 300}})

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    payload = Webhook(endpoint.secret).verify(body, headers)
    assert payload["id"] == event.pk == headers["webhook-id"]
    assert payload["type"] == "order.paid"
    assert payload["data"] == {"object": {"id": "ord_1", "amount_total": 300}}
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.secret_generate()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(body.replace(b"300", b"301"), headers)
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.response_body) == (DeliveryStatus.SUCCEEDED, 1, 200, "ok")


def test_endpoints_get_only_the_events_they_chose(store, receiver, django_capture_on_commit_callbacks):
    """An endpoint subscribed to order.refunded receives nothing for order.paid."""
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.refunded"])
    emit(store, django_capture_on_commit_callbacks, type="order.paid")
    assert receiver.requests == []
    emit(store, django_capture_on_commit_callbacks, type="order.refunded")
    assert len(receiver.requests) == 1


def test_a_failing_receiver_gets_the_event_once_it_recovers(store, receiver, django_capture_on_commit_callbacks):
    """Three failed attempts are retried on the backoff schedule; the fourth succeeds and retries stop.
    Every attempt carries the same webhook-id, so the receiver can tell it is one event."""
    receiver.statuses = [500, 503, 500]
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.PENDING, 1, 500)
    assert len(delivery.response_body) == webhooks.RESPONSE_BODY_LIMIT

    now = timezone.now()
    assert webhooks.deliveries_due(now=now) == []  # not before the backoff has passed
    for delay in (6, 6 + 301, 6 + 301 + 1801):
        for delivery_id in webhooks.deliveries_due(now=now + timedelta(seconds=delay)):
            webhooks.delivery_attempt(delivery_id=delivery_id, now=now + timedelta(seconds=delay))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.SUCCEEDED, 4, 200)
    assert [h["webhook-id"] for h, _ in receiver.requests] == [event.pk] * 4
    assert webhooks.deliveries_due(now=now + timedelta(days=3)) == []
    assert delivery.endpoint.consecutive_failures == 0


def test_retries_stop_after_the_schedule_and_the_delivery_fails(store, settings, receiver, django_capture_on_commit_callbacks):
    """A receiver that never answers 2xx gets eight attempts over about a day, then the delivery is failed."""
    receiver.statuses = [500] * 20
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    clock = timezone.now()
    for _ in range(10):
        clock += timedelta(hours=11)
        for delivery_id in webhooks.deliveries_due(now=clock):
            webhooks.delivery_attempt(delivery_id=delivery_id, now=clock)
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 8)
    assert len(receiver.requests) == 8
    assert sum(webhooks.RETRY_DELAYS) / 3600 == pytest.approx(27.6, abs=0.1)


def test_endpoint_is_disabled_after_consecutive_failures_and_the_creator_is_told(
    store, settings, receiver, django_capture_on_commit_callbacks
):
    """After STALL_WEBHOOK_DISABLE_AFTER failed attempts in a row the endpoint stops receiving and its creator is emailed."""
    settings.STALL_WEBHOOK_DISABLE_AFTER = 3
    receiver.statuses = [500] * 10
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            event = webhooks.event_emit(store_id=store.pk, type="order.paid", data={})
            webhooks.delivery_attempt(delivery_id=WebhookDelivery.objects.get(event=event).pk)
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpointStatus.DISABLED
    assert endpoint.disabled_reason == "Disabled after 3 failed deliveries in a row."
    assert [m.subject for m in mail.outbox] == [f"Webhook endpoint disabled: {receiver.url}"]
    assert mail.outbox[0].to == [store.owner.email]
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    sent = len(receiver.requests)
    emit(store, django_capture_on_commit_callbacks)
    assert len(receiver.requests) == sent


def test_redeliver_sends_the_event_again(store, receiver, django_capture_on_commit_callbacks):
    """Redelivering makes a new delivery of the same event, signed afresh, and logs it separately."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    first = WebhookDelivery.objects.get(event=event)
    with django_capture_on_commit_callbacks(execute=True):
        second = webhooks.webhook_delivery_redeliver(store=store, delivery_id=first.pk)
    second.refresh_from_db()
    assert second.pk != first.pk and second.status == DeliveryStatus.SUCCEEDED
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[1]
    assert Webhook(endpoint.secret).verify(body, headers)["id"] == event.pk


def test_rolled_secret_signs_new_deliveries(store, receiver, django_capture_on_commit_callbacks):
    """After the secret is rolled, deliveries verify with the new secret and not with the old one."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    old = endpoint.secret
    webhooks.webhook_endpoint_roll_secret(endpoint=endpoint)
    emit(store, django_capture_on_commit_callbacks)
    headers, body = receiver.requests[0]
    assert Webhook(endpoint.secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_unreachable_receiver_is_logged_and_retried(store, settings, django_capture_on_commit_callbacks):
    """A connection refused is recorded as the delivery's error and the delivery waits for its retry."""
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    url = r.url
    r.close()
    webhooks.webhook_endpoint_create(store=store, url=url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.PENDING and delivery.response_status is None
    assert delivery.error.startswith("ConnectError")


def test_payload_is_compact_json_with_the_event_envelope(store, receiver, django_capture_on_commit_callbacks):
    """The body is the event: id, object, type, created and data."""
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks, data={"object": {"id": "ord_9"}})
    _, body = receiver.requests[0]
    assert json.loads(body) == {
        "id": event.pk, "object": "event", "type": "order.paid",
        "created": int(event.created_at.timestamp()), "data": {"object": {"id": "ord_9"}},
    }


# A fixed instant for tests that move the clock with time-machine (tick=False: time stands still
# until the test moves it, so every recorded time is known exactly).
CLOCK = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)


def test_the_periodic_task_sends_a_delivery_again_once_its_backoff_has_passed(
    store, receiver, time_machine, django_capture_on_commit_callbacks
):
    """A delivery that failed is left alone by the every-minute task until its 5 s backoff has
    passed; then the task sends it again, the receiver gets the same event and it succeeds."""
    time_machine.move_to(CLOCK, tick=False)
    receiver.statuses = [500]
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        DeliveryStatus.PENDING, 1, CLOCK + timedelta(seconds=5),
    )

    # Calling the task enqueues it as Huey's scheduler does and, in the suite's immediate mode,
    # runs it at once. Huey keeps no result for periodic tasks, so what it did is asserted.
    time_machine.move_to(CLOCK + timedelta(seconds=4))
    webhook_deliveries_retry()
    assert len(receiver.requests) == 1

    time_machine.move_to(CLOCK + timedelta(seconds=65))  # the next run of the minutely task
    webhook_deliveries_retry()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED, 2, 200,
    )
    assert delivery.last_attempt_at == CLOCK + timedelta(seconds=65)
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[1]
    assert Webhook(endpoint.secret).verify(body, headers)["id"] == event.pk
    assert headers["webhook-timestamp"] == str(int((CLOCK + timedelta(seconds=65)).timestamp()))
    webhook_deliveries_retry()


def test_each_retry_waits_its_own_delay_and_the_eighth_failure_is_final(
    store, receiver, time_machine, django_capture_on_commit_callbacks
):
    """Against a receiver that always fails, attempt n + 1 falls due exactly the n-th delay of the
    schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) after attempt n, and not a second sooner;
    after the eighth attempt the delivery is failed and nothing more is sent."""
    schedule = [5, 300, 1800, 7200, 18000, 36000, 36000]  # as promised in webhooks' docstring
    time_machine.move_to(CLOCK, tick=False)
    receiver.statuses = [500] * 20
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(event=event)
    attempted_at = CLOCK
    for attempt, delay in enumerate(schedule, start=1):
        delivery.refresh_from_db()
        due = attempted_at + timedelta(seconds=delay)
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, attempt)
        assert (delivery.last_attempt_at, delivery.next_attempt_at) == (attempted_at, due)
        time_machine.move_to(due - timedelta(seconds=1))
        webhook_deliveries_retry()
        assert len(receiver.requests) == attempt
        time_machine.move_to(due)
        webhook_deliveries_retry()
        assert len(receiver.requests) == attempt + 1
        attempted_at = due
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.FAILED, 8, 500,
    )
    assert (delivery.last_attempt_at, delivery.next_attempt_at) == (attempted_at, None)
    time_machine.move_to(attempted_at + timedelta(days=30))
    webhook_deliveries_retry()
    assert len(receiver.requests) == 8


def test_a_host_that_turns_private_after_saving_is_not_called(
    store, settings, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    """An endpoint whose host resolved to a public address when it was saved and resolves to
    loopback at delivery time (DNS rebinding) is not called: the attempt is recorded as failed with
    the refusal, and retried later like any failure."""
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = False
    host = "hooks.rebinding.example"
    answers = {host: "93.184.215.14"}
    real_getaddrinfo = socket.getaddrinfo

    # DNS is the outside world and the only thing faked here: the name answers with a public
    # address at first and with loopback afterwards, as a rebinding attacker's name server would.
    # Stall's check and the HTTP client both resolve through socket.getaddrinfo, so both see it.
    def getaddrinfo(name, *args, **kwargs):
        return real_getaddrinfo(answers.get(name, name), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = receiver.server.server_address[1]
    webhooks.webhook_endpoint_create(
        store=store, url=f"http://{host}:{port}/hooks", enabled_events=["*"]
    )
    answers[host] = "127.0.0.1"
    event = emit(store, django_capture_on_commit_callbacks)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.PENDING, 1, None,
    )
    assert delivery.error == "Webhooks cannot go to private, loopback or link-local addresses."
    assert delivery.next_attempt_at == delivery.last_attempt_at + timedelta(seconds=5)


@pytest.fixture
def elsewhere():
    """A second local receiver: where a redirect points."""
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    store, receiver, elsewhere, status, django_capture_on_commit_callbacks
):
    """A delivery answered with a redirect is recorded as a failed attempt with that status and a
    retry 5 s later; the address the redirect points to receives nothing."""
    receiver.statuses = [status]
    receiver.location = elsewhere.url
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    event = emit(store, django_capture_on_commit_callbacks)

    assert elsewhere.requests == []
    assert len(receiver.requests) == 1
    delivery = WebhookDelivery.objects.get(event=event)
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.error) == (
        DeliveryStatus.PENDING, 1, status, "",
    )
    assert delivery.next_attempt_at == delivery.last_attempt_at + timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_one_delivery_send_it_once(store, receiver):
    """Two workers attempting the same due delivery at the same instant send it once: the receiver,
    slow to answer, sees one request, and the delivery succeeds after one attempt."""
    receiver.delay = 0.3  # the first send is still in flight when the second worker looks
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    # Made directly rather than by event_emit, whose after-commit task would send it at once.
    event = Event.objects.create(store=store, type="order.paid", data={"object": {"id": "ord_x"}})
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=timezone.now()
    )

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            webhooks.delivery_attempt(delivery_id=delivery.pk)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection; leave none open

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert errors == []
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED, 1, 200,
    )
