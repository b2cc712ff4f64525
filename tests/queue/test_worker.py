"""Tasks through the real queue: serialized by the web side, run by a separate ``stall worker``.

The rest of the suite runs Huey in immediate mode. Here the test process enqueues into the queue
a deployment uses (Huey's SQLite file in the data directory, or Redis with ``REDIS_URL``), a
separate ``stall worker`` process consumes it against the test database, and what the worker does
is seen from outside: messages on a local SMTP server, requests on a local HTTP receiver, rows in
the database. Tests here use ``transaction=True`` so their rows are committed where the worker can
read them.

Each test runs once with Huey's SQLite queue and once with Redis (the ``queue`` fixture).
"""

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import huey.storage as huey_storage
import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django.utils import timezone
from huey import RedisHuey, SqliteHuey
from huey.contrib.djhuey import HUEY

from stall.integrations import webhooks
from stall.integrations.models import DeliveryStatus, Event, WebhookDelivery
from stall.orders.tasks import receipt_send
from stall.testing import buy, product_with_file

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
# These tests use database 14 of the local Redis (CI runs Redis on the standard port), under a
# queue name of this run's own (STALL_QUEUE_NAME), and delete that queue's keys only: two runs
# at once on one machine (two checkouts, or a developer's beside CI) do not eat each other's tasks.
REDIS_URL = "redis://127.0.0.1:6379/14"
QUEUE_NAME = "stall"  # the SQLite queue's name, which settings fix
REDIS_QUEUE_NAME = f"stall-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
WAIT_SECONDS = 30  # the longest any one wait may last before the test fails
# A worker's settings in these tests. A failed receipt is retried after 1 s instead of 60 s, and
# a webhook attempt's claim lapses after 15 s instead of 300 s, so retries and recoveries happen
# within the test; every other setting is the product's default. The lease outlasts the first
# worker's life in the killed-attempt test even when a minute's periodic tasks (a dozen of them
# now) run ahead of its receipt.
WORKER_ENV = {
    "STALL_TASK_RETRY_DELAY_SECONDS": "1",
    "STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS": "15",
    "STALL_WEBHOOK_ALLOW_LOOPBACK": "1",
    "STALL_FROM_EMAIL": "Stall <shop@example.com>",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


# --- The queue ---------------------------------------------------------------------------------

class Queue:
    """The queue a worker consumes; the test process's Huey enqueues into it too."""

    def __init__(self, kind: str, huey, data_dir: Path, env: dict):
        self.kind, self.huey, self.data_dir, self.env = kind, huey, data_dir, env

    def pending(self) -> list[tuple[str, tuple]]:
        """The tasks waiting in the queue, read back from their serialized form: (name, args)."""
        return [(task.name, task.args) for task in HUEY.pending()]

    def scheduled(self) -> list[tuple[str, tuple]]:
        """The tasks waiting for a later time (a retry's delay): (name, args)."""
        return [(task.name, task.args) for task in HUEY.scheduled()]

    def counts(self) -> tuple[int, int]:
        """How many tasks are waiting to run now, and how many are scheduled for later."""
        return HUEY.pending_count(), HUEY.scheduled_count()

    def left(self, name: str) -> list[tuple[str, tuple]]:
        """The tasks named ``name`` still queued or scheduled. (A worker stopped right after it
        started may leave a periodic task it had queued; these tests look at their own tasks.)"""
        return [task for task in self.pending() + self.scheduled() if task[0] == name]


@pytest.fixture(params=["sqlite", "redis"])
def queue(request, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "redis":
        # Settings keep redis out of huey.storage's sight when no REDIS_URL is set (an idle
        # process saves ~17 MB); this test process talks to Redis all the same.
        huey_storage.Redis, huey_storage.ConnectionPool = redis.Redis, redis.ConnectionPool
        huey_storage.ConnectionError = redis.exceptions.ConnectionError
        huey_storage.TimeoutError = redis.exceptions.TimeoutError
        if huey_storage.RedisStorage.redis_client is None:
            huey_storage.RedisStorage.redis_client = redis.Redis
        real = RedisHuey(REDIS_QUEUE_NAME, url=REDIS_URL)
        real.storage.flush_all()
        env = {"REDIS_URL": REDIS_URL, "STALL_QUEUE_NAME": REDIS_QUEUE_NAME}
    else:
        # Where settings put SqliteHuey's file for a worker whose STALL_DATA_DIR is data_dir.
        real = SqliteHuey(QUEUE_NAME, filename=str(data_dir / "queue.sqlite3"))
        env = {}
    HUEY.immediate = False
    HUEY.storage = real.storage
    try:
        yield Queue(request.param, real, data_dir, env)
    finally:
        HUEY.immediate = True  # back to the in-memory storage the rest of the suite uses
        if request.param == "redis":
            real.storage.flush_all()
            real.storage.conn.close()


# --- Mail -------------------------------------------------------------------------------------

class Inbox:
    """An aiosmtpd handler: refuses the first ``refuse_first`` messages with a 451; keeps the
    rest."""

    def __init__(self):
        self.refuse_first = 0
        self.offered = []  # every message a client tried to send
        self.accepted = []

    async def handle_DATA(self, server, session, envelope):
        self.offered.append(envelope)
        if len(self.offered) <= self.refuse_first:
            return "451 4.3.0 Try again later"
        self.accepted.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server on a free local port; the worker sends its mail here."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()


# --- Webhooks -----------------------------------------------------------------------------------

class Receiver:
    """A local webhook endpoint that records requests and answers 200. With ``hold_first`` the
    first request is kept waiting, unanswered, until the receiver is closed."""

    def __init__(self):
        self.hold_first = False
        self.requests: list[dict] = []  # the headers of every request that arrived
        self.answered: list[dict] = []  # those answered with 200
        self.first_arrived = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(headers)
                if receiver.hold_first and len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver._release.wait(WAIT_SECONDS)
                    return
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
                receiver.answered.append(headers)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True  # the endpoint is created in the test process
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


# --- The worker ---------------------------------------------------------------------------------

def database_url() -> str:
    """DATABASE_URL for the test database this test process is connected to."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.fail("A worker process cannot see an in-memory SQLite test database.")
        return f"sqlite:///{name}"
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A running ``stall worker`` process and its log."""

    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Huey's graceful stop (SIGINT): tasks in flight finish, then the process exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"The worker did not stop on SIGINT.\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9: the process dies wherever it is, with no chance to clean up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT_SECONDS)


@pytest.fixture
def start_worker(transactional_db, queue, smtp, tmp_path):
    """Start ``stall worker`` (the console script beside this Python) on the queue and the test
    database; every worker started is stopped at teardown, before the database is flushed."""
    workers: list[Worker] = []
    executable = Path(sys.executable).with_name("stall")
    # Nothing from the environment decides which database, queue or mail server the worker uses.
    unset = {"DATABASE_URL", "REDIS_URL", "STALL_QUEUE_NAME", "EMAIL_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        WORKER_ENV,
        **queue.env,
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        DJANGO_SETTINGS_MODULE="stall.settings",
        STALL_DATA_DIR=str(queue.data_dir),
        STALL_SECRET_KEY=settings.SECRET_KEY,
        DATABASE_URL=database_url(),
        EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
    )

    def start() -> Worker:
        log = tmp_path / f"worker-{len(workers) + 1}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(executable), "worker", "--workers", "2"],
                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


def wait_for(condition, what: str, worker: Worker | None, timeout: float = WAIT_SECONDS):
    """Poll ``condition`` until it is true; fail, with the worker's log, after ``timeout`` s or
    if the worker exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"The worker exited ({worker.process.returncode}) before {what}.\n"
                        f"{worker.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"No {what} after {timeout} s.\n{worker.log_tail() if worker else ''}")
        time.sleep(0.05)


# --- Tests ------------------------------------------------------------------------------------

RECEIPT = "receipt_send"
DELIVERY = "webhook_delivery_attempt"
DISPATCH = "events_dispatch_task"  # makes the deliveries of a commit's events (the outbox)


def receipt_of(envelope) -> tuple[list[str], str]:
    return envelope.rcpt_tos, parse(envelope)["Subject"]


def to_reader(messages) -> list:
    """The (recipients, subject) of the messages to the buyer: the worker also tells the store's
    owner about the sale (stall.audience's notifications), which these tests do not count."""
    return [receipt_of(e) for e in messages if receipt_of(e)[0] == ["reader@example.com"]]


def test_a_purchase_receipt_is_sent_once_by_the_worker(queue, start_worker, smtp, store):
    """A purchase leaves its receipt task serialized in the queue; a worker process sends that
    receipt by SMTP, once, and no receipt task is left queued or scheduled."""
    product = product_with_file(store=store, name="Zine", amount=300)
    order = buy(store=store, product=product, email="reader@example.com")
    assert [task for task in queue.pending() if task[0] == RECEIPT] == [(RECEIPT, (order.pk,))]
    # The store has no webhook endpoint: its order.paid event is recorded as dispatched and no
    # dispatch task is queued for it (one with an endpoint: test_the_scheduler_sends_…).
    assert sorted(name for name, _ in queue.pending()) == [RECEIPT]
    assert smtp.offered == []  # nothing runs in the test process

    worker = start_worker()
    wait_for(lambda: smtp.accepted, "receipt on the SMTP server", worker)
    worker.stop()

    assert to_reader(smtp.offered) == [
        (["reader@example.com"], f"Your receipt from {store.name}")
    ]
    assert to_reader(smtp.accepted) == to_reader(smtp.offered)
    plain = parse(next(e for e in smtp.accepted if receipt_of(e)[0] == ["reader@example.com"])).get_body(preferencelist=("plain",)).get_content()
    assert f"Order {order.pk}" in plain
    assert queue.left(RECEIPT) == []


def test_a_receipt_refused_twice_is_retried_and_delivered_once(
    queue, start_worker, smtp, store, monkeypatch
):
    """The SMTP server refuses the receipt twice with a 451; Huey retries the task (retries=5,
    after STALL_TASK_RETRY_DELAY_SECONDS) and the third try is delivered. The buyer gets one
    receipt and the task is not retried after it succeeded."""
    # Huey writes a task's retry delay into its message when the task is queued, so the delay is
    # the queuing process's setting. Queue as a web process started with the workers' setting.
    monkeypatch.setattr(
        receipt_send.task_class, "default_retry_delay",
        int(WORKER_ENV["STALL_TASK_RETRY_DELAY_SECONDS"]),
    )
    smtp.refuse_first = 2
    product = product_with_file(store=store, name="Zine", amount=300)
    order = buy(store=store, product=product, email="reader@example.com")
    assert [task for task in queue.pending() if task[0] == RECEIPT] == [(RECEIPT, (order.pk,))]

    worker = start_worker()
    wait_for(lambda: smtp.accepted, "receipt accepted by the SMTP server", worker)
    worker.stop()

    receipt = (["reader@example.com"], f"Your receipt from {store.name}")
    assert to_reader(smtp.offered) == [receipt] * 3
    assert to_reader(smtp.accepted) == [receipt]
    assert queue.left(RECEIPT) == []


def test_the_scheduler_sends_a_delivery_whose_queue_message_was_lost(
    queue, start_worker, receiver, store
):
    """A paid order's webhook delivery whose queued task is lost (the queue emptied, as by a Redis
    restarted without persistence) is sent by the periodic sweep, webhook_deliveries_retry, which
    the worker's scheduler runs when the worker starts and then every minute."""
    endpoint = webhooks.webhook_endpoint_create(
        store=store, url=receiver.url, enabled_events=["order.paid"]
    )
    product = product_with_file(store=store, name="Zine", amount=300)
    order = buy(store=store, product=product, email="reader@example.com")
    event = Event.objects.get(store=store, type="order.paid")
    assert sorted(queue.pending()) == [(DISPATCH, ([event.pk],)), (RECEIPT, (order.pk,))]
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()
    queue.huey.flush()
    assert queue.counts() == (0, 0)

    worker = start_worker()
    sent = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.SUCCEEDED)
    wait_for(sent.exists, "webhook delivery made and sent by the scheduled sweep", worker)
    worker.stop()

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED, 1, 200,
    )
    assert [h["webhook-id"] for h in receiver.requests] == [delivery.event_id]


def test_a_worker_killed_mid_delivery_loses_nothing_the_sweep_cannot_finish(
    queue, start_worker, smtp, receiver, store
):
    """A worker killed with SIGKILL while a webhook request is in flight has taken the task off
    the queue and recorded no outcome. Once the attempt's claim lapses, a new worker's sweep sends
    the event again with the same webhook-id; the delivery succeeds once, and the receipt the
    first worker had sent is not sent again."""
    receiver.hold_first = True
    endpoint = webhooks.webhook_endpoint_create(
        store=store, url=receiver.url, enabled_events=["order.paid"]
    )
    product = product_with_file(store=store, name="Zine", amount=300)
    buy(store=store, product=product, email="reader@example.com")

    first = start_worker()
    wait_for(receiver.first_arrived.is_set, "webhook request from the first worker", first)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    wait_for(lambda: smtp.accepted, "receipt from the first worker", first)
    first.kill()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    # The killed worker had taken the delivery's task off the queue. If a minute's tick fell in the
    # first worker's life, its outbox sweep (webhook_deliveries_retry) may have queued another
    # attempt of this same delivery: harmless, the attempt's claim makes it wait for the lease, and
    # the assertions below check the event still reaches the receiver exactly once.
    assert {args for name, args in queue.pending() if name == DELIVERY} <= {(delivery.pk,)}
    # The killed attempt's claim lasts STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS (15 s here); then the
    # delivery is due again, and the sweep a worker runs when it starts picks it up.
    pending = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING)
    wait_for(
        lambda: pending.filter(next_attempt_at__lte=timezone.now()).exists(),
        "delivery due again after the killed attempt", None,
    )
    second = start_worker()
    sent = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SUCCEEDED)
    wait_for(sent.exists, "webhook delivery finished by the second worker", second)
    second.stop()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        DeliveryStatus.SUCCEEDED, 1, 200,
    )
    assert [h["webhook-id"] for h in receiver.requests] == [delivery.event_id] * 2
    assert [h["webhook-id"] for h in receiver.answered] == [delivery.event_id]
    assert to_reader(smtp.offered) == [
        (["reader@example.com"], f"Your receipt from {store.name}")
    ]
