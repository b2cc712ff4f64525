"""Scale-out, proven: two web servers and two task workers sharing PostgreSQL, Redis and S3.

The layout of the README's "Running on several machines", on one machine: two ``stall serve
--no-worker`` (each its own gunicorn, on its own port) and two ``stall worker`` (one of them
``--no-periodic``), every process with a data directory of its own, as if on machines of its own,
so that nothing can be shared through the local disk. What they share is what several machines
share: a fresh PostgreSQL database made for this test, the local Redis (a queue of this run's
own, the cache and the rate limits), a bucket on moto's S3 server, an SMTP server and the secret key.

Uploads go to both servers in turn; purchases run concurrently, each checkout created on one
server and confirmed on both at once (a double click split by a load balancer). Then every
receipt must arrive exactly once, every file be in the bucket byte for byte and downloadable from
both servers, each checkout have one order, the ledger balance, and each every-minute sweep run
once, not once per worker.

It needs PostgreSQL (two processes writing one SQLite file is not the layout), so it carries the
``scale_out`` mark: ``make test-sqlite`` deselects it and ``make test-postgres`` runs it. Run on
SQLite anyway, it fails saying so: it is never skipped quietly.
"""

import concurrent.futures
import email
import email.policy
import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
import redis
from aiosmtpd.controller import Controller
from django.db import connection
from moto.server import ThreadedMotoServer

pytestmark = pytest.mark.scale_out

ROOT = Path(__file__).resolve().parents[1]
STALL = Path(sys.executable).with_name("stall")
# Database 13 of the local Redis (tests/queue flushes 14), on the standard port as on CI.
REDIS_URL = "redis://127.0.0.1:6379/13"
QUEUE_NAME = f"stallscale{os.getpid()}"  # Huey keeps it in the list huey.redis.<name>
BUCKET = "stall-scale-out"
PURCHASES = 12
# Two products of two files each, uploaded alternately to the two servers. One file is larger
# than Django keeps in memory (FILE_UPLOAD_MAX_MEMORY_SIZE), so it reaches S3 from a temporary
# file on the server that took it.
FILE_SIZES = [(3_000_000, 1_000), (150_000, 20)]
PRICE = 500
WAIT_SECONDS = 60  # the longest any one wait may last before the test fails
PER_MINUTE_SWEEPS = ("webhook_deliveries_retry", "lightning_payments_reconcile_task")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, logs=()):
    """check()'s first truthy answer, polled until WAIT_SECONDS have passed."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"{what}: not within {WAIT_SECONDS} s.\n{tails}")


# --- The shared services --------------------------------------------------------------------------

def postgres_url(database: str) -> str:
    """A URL on the PostgreSQL server this test session uses, naming ``database``."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{database}"


@pytest.fixture
def cluster_database():
    """A fresh PostgreSQL database for the cluster, dropped at the end."""
    if connection.vendor != "postgresql":
        pytest.fail(
            "The scale-out test runs on PostgreSQL only: `make test-postgres`, or set "
            "DATABASE_URL=postgres://…; on SQLite deselect it with -m 'not scale_out'."
        )
    name = f"stall_scale_{os.getpid()}"
    with psycopg.connect(postgres_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        with psycopg.connect(postgres_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shared_redis():
    """Database 13 of the local Redis, not emptied: another run may be using it at the same time.
    The queue's name is this run's own; the cache's and the limits' entries expire by themselves
    and are named after this run's store and key."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield REDIS_URL
    finally:
        client.delete(*(f"huey.{kind}.{QUEUE_NAME}" for kind in ("redis", "schedule", "results", "counters")))
        client.close()


@pytest.fixture
def s3():
    """moto's S3 server on a free port, with an empty bucket; a boto3 client talking to it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    client.endpoint = endpoint
    try:
        yield client
    finally:
        server.stop()


class Inbox:
    """An aiosmtpd handler that keeps every message; the workers of both machines send here."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def receipts(self) -> list[email.message.EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["Subject"].startswith("Your receipt from")]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{controller.port}"
    try:
        yield inbox
    finally:
        controller.stop()


# --- The cluster ------------------------------------------------------------------------------------

class Cluster:
    """The processes, each with its own data directory and log, and the environment they share."""

    def __init__(self, tmp_path: Path, env: dict):
        self.tmp_path, self.env = tmp_path, env
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.servers: list[str] = []
        self.logs: list[Path] = []
        self.workers_started_at: float | None = None

    def run(self, name: str, *argv: str) -> str:
        """A one-off command (the migration, the store, the API key) on a machine of its own."""
        done = subprocess.run(
            [str(STALL), *argv], cwd=ROOT, env=self.machine_env(name), capture_output=True,
            text=True, timeout=WAIT_SECONDS, check=False,
        )
        assert done.returncode == 0, f"stall {' '.join(argv)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def machine_env(self, name: str) -> dict:
        data_dir = self.tmp_path / name
        data_dir.mkdir(exist_ok=True)
        return {**self.env, "STALL_DATA_DIR": str(data_dir)}

    def start(self, name: str, *argv: str) -> None:
        log = self.tmp_path / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(STALL), *argv], cwd=ROOT, env=self.machine_env(name), stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((name, process))

    def serve(self, name: str, port: int) -> None:
        self.start(name, "serve", "--no-worker", "--port", str(port), "--workers", "1", "--threads", "4")
        self.servers.append(f"http://127.0.0.1:{port}")

    def wait_ready(self) -> None:
        for base in self.servers:
            wait_for(f"{base}/healthz", lambda base=base: self.healthy(base), self.logs)
        for name, process in self.processes:
            if name.startswith("worker"):
                log = self.tmp_path / f"{name}.log"
                wait_for(f"{name} started", lambda log=log: "Huey consumer started" in log.read_text(), self.logs)

    def healthy(self, base: str) -> bool:
        self.assert_running()
        try:
            health = httpx.get(f"{base}/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return (health["status"], health["database"], health["queue"]) == ("ok", "ok", "ok")

    def assert_running(self) -> None:
        for name, process in self.processes:
            assert process.poll() is None, f"{name} exited with {process.returncode}:\n" + (
                (self.tmp_path / f"{name}.log").read_text(errors="replace")
            )

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT for the workers (Huey's graceful stop), SIGTERM for the servers; then kill."""
        for name, process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT if name.startswith("worker") else signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path, cluster_database, shared_redis, s3, smtp):
    """Migrated once, the demo store and an API key made, then two servers and two workers."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("STALL_", "AWS_", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"))
    }
    ports = [free_port(), free_port()]
    env |= {
        "DJANGO_SETTINGS_MODULE": "stall.settings",
        "DATABASE_URL": cluster_database,
        "REDIS_URL": shared_redis,
        "STALL_QUEUE_NAME": QUEUE_NAME,
        "STALL_S3_BUCKET": BUCKET,
        "STALL_S3_ENDPOINT_URL": s3.endpoint,
        "STALL_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EMAIL_URL": smtp.url,
        "STALL_SECRET_KEY": secrets.token_urlsafe(50),
        # The public address, in emails: a load balancer's in production; the first server here.
        "STALL_BASE_URL": f"http://127.0.0.1:{ports[0]}",
    }
    started = Cluster(tmp_path, env)
    try:
        started.run("setup", "demo")  # migrates first: the only migration of the cluster's database
        started.key = started.run("setup", "apikey", "create", "--store", "demo").strip()
        started.serve("web-1", ports[0])
        started.serve("web-2", ports[1])
        started.workers_started_at = time.time()
        started.start("worker-1", "worker")
        started.start("worker-2", "worker", "--no-periodic")
        started.wait_ready()
        yield started
    finally:
        started.stop()


# --- Through the API of both servers -----------------------------------------------------------------

def api(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def product_with_files(clients: list[httpx.Client], index: int, sizes: tuple[int, ...]) -> tuple[str, list[bytes]]:
    """A download made on one server, its files uploaded alternately to both, published on the
    other."""
    made = clients[index % 2].post("/products", json={"name": f"Scale pack {index}", "amount": PRICE})
    assert made.status_code == 200, made.text
    product_id = made.json()["id"]
    contents = []
    for n, size in enumerate(sizes):
        content = os.urandom(size)
        name = f"pack-{index}-{n}.bin"
        uploaded = clients[n % 2].post(f"/products/{product_id}/files", files={"file": (name, content)})
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["size"] == size
        contents.append(content)
    published = clients[(index + 1) % 2].post(f"/products/{product_id}", json={"status": "published"})
    assert published.status_code == 200, published.text
    return product_id, contents


def purchase(clients: list[httpx.Client], index: int, product_id: str) -> dict:
    """A checkout created on one server and paid with the sandbox's card on both at once: a
    double click whose two requests a load balancer sent to different machines. It must charge
    once; the second answer may still see the first payment under way."""
    buyer = f"buyer-{index}@example.com"
    created = clients[index % 2].post("/checkouts", json={"email": buyer, "product": product_id})
    assert created.status_code == 200, created.text
    checkout_id = created.json()["id"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as both:
        answers = list(both.map(
            lambda client: client.post(f"/checkouts/{checkout_id}/confirm", json={"payment_method": "sandbox_visa"}),
            clients,
        ))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    orders = {a.json()["order"] for a in answers} - {None}
    assert len(orders) == 1, [a.json() for a in answers]
    settled = clients[(index + 1) % 2].get(f"/checkouts/{checkout_id}").json()
    assert (settled["status"], settled["order"]) == ("complete", *orders), settled
    return {"email": buyer, "checkout": checkout_id, "order": settled["order"], "product": product_id}


def library_downloads(servers: list[str], receipt: email.message.EmailMessage, base_url: str, via: int) -> list[str]:
    """Sign in with the receipt's library link on server ``via``; the download paths listed."""
    text = receipt.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(base_url)}(/library/enter/\S+)", text).group(1)
    with httpx.Client(base_url=servers[via], follow_redirects=True, timeout=30) as browser:
        library = browser.get(link)
        assert library.status_code == 200 and str(library.url).endswith("/library/"), library.text[:500]
        return sorted(set(re.findall(r'href="(/d/[^"]+/)"', library.text)))


# --- What the cluster must show ------------------------------------------------------------------------

def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def bucket_contents(s3) -> dict[str, bytes]:
    """Every product file in the bucket (the private location), by key."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="private/").get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def ledger_and_orders(database_url: str) -> dict:
    with psycopg.connect(database_url) as db:
        debits, credits = db.execute(
            "SELECT sum(debits_posted), sum(credits_posted) FROM ledger_account"
        ).fetchone()
        # Each account's running totals against the posted transfers that make them.
        off = db.execute("""
            SELECT a.id FROM ledger_account a
            WHERE a.debits_posted <> (SELECT coalesce(sum(amount), 0) FROM ledger_transfer t
                                      WHERE t.debit_account_id = a.id AND t.state = 'posted')
               OR a.credits_posted <> (SELECT coalesce(sum(amount), 0) FROM ledger_transfer t
                                       WHERE t.credit_account_id = a.id AND t.state = 'posted')
        """).fetchall()
        orders = db.execute(
            "SELECT id, checkout_id, email, amount_total FROM orders_order ORDER BY email"
        ).fetchall()
    return {"debits": debits, "credits": credits, "accounts_off": off, "orders": orders}


def sweep_runs(cluster: Cluster) -> dict[str, int]:
    """How often each every-minute sweep ran, on either worker."""
    logs = cluster.log("worker-1") + cluster.log("worker-2")
    return {name: len(re.findall(rf"Executing stall\.\S+\.{name}:", logs)) for name in PER_MINUTE_SWEEPS}


def test_two_servers_and_two_workers_share_one_shop(cluster, s3, smtp):
    servers = cluster.servers
    clients = [api(base, cluster.key) for base in servers]

    products = [product_with_files(clients, i, sizes) for i, sizes in enumerate(FILE_SIZES)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        bought = list(pool.map(lambda i: purchase(clients, i, products[i % 2][0]), range(PURCHASES)))

    # Every receipt, sent by whichever worker took the task, arrives once.
    wait_for("a receipt for every purchase", lambda: len(smtp.receipts()) >= PURCHASES, cluster.logs)
    receipts = {m["To"]: m for m in smtp.receipts()}
    assert sorted(receipts) == sorted(b["email"] for b in bought)
    for b in bought:
        assert f"Order {b['order']}" in receipts[b["email"]].get_body(("plain",)).get_content()

    # Every uploaded file is in the bucket, byte for byte, and on no machine's disk.
    stored = bucket_contents(s3)
    for _, contents in products:
        for content in contents:
            assert [k for k, v in stored.items() if v == content], f"a {len(content)}-byte file is not in the bucket"
    assert not [p for p in cluster.tmp_path.glob("*/private/**/*") if p.is_file()]

    # Each buyer signs in on one server, and every download link works from both.
    files = {product_id: contents for product_id, contents in products}
    for i, b in enumerate(bought):
        paths = library_downloads(servers, receipts[b["email"]], cluster.env["STALL_BASE_URL"], via=i % 2)
        assert len(paths) == len(files[b["product"]])
        for base in servers:
            got = sorted(digest(httpx.get(base + path, timeout=30).content) for path in paths)
            assert got == sorted(map(digest, files[b["product"]])), f"a download from {base} differs"

    # Still one receipt each, now that every task has had time to run (twice, if it were to).
    queue = redis.Redis.from_url(REDIS_URL)
    wait_for(
        "an empty queue",
        lambda: queue.llen(f"huey.redis.{QUEUE_NAME}") == queue.zcard(f"huey.schedule.{QUEUE_NAME}") == 0,
        cluster.logs,
    )
    counts = {}
    for m in smtp.receipts():
        counts[m["To"]] = counts.get(m["To"], 0) + 1
    assert counts == {b["email"]: 1 for b in bought}

    # One order per checkout, and a ledger whose debits equal its credits, account by account.
    books = ledger_and_orders(cluster.env["DATABASE_URL"])
    assert sorted((o[1], o[2]) for o in books["orders"]) == sorted((b["checkout"], b["email"]) for b in bought)
    assert sorted(o[0] for o in books["orders"]) == sorted(b["order"] for b in bought)
    assert all(o[3] == PRICE for o in books["orders"])
    assert books["debits"] == books["credits"] and books["debits"] > 0
    assert books["accounts_off"] == []

    # The every-minute sweeps ran, once per minute of the workers' life, not once per worker.
    runs = wait_for("the periodic sweeps", lambda: (r := sweep_runs(cluster)) and all(r.values()) and r, cluster.logs)
    minutes = int((time.time() - cluster.workers_started_at) // 60) + 1
    assert all(1 <= n <= minutes for n in runs.values()), (runs, minutes)
    assert "Periodic tasks are disabled" in cluster.log("worker-2")
    cluster.assert_running()
