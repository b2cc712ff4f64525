#!/usr/bin/env python
"""Sandbox purchases over HTTP against `stall serve`, with a raw-database baseline in the same run.

    .venv/bin/python bench/checkout.py [-n 2000] [-c 32] [--workers 2] [--threads 4] [--server gunicorn|granian]
                                       [--database-url postgres://…]

Each purchase is what an integrator does: POST /api/v1/checkouts, then POST /api/v1/checkouts/{id}/confirm
with sandbox_visa — two requests, ending in a paid order, its entitlement and its ledger transfers.
The baseline writes the same rows per purchase (checkout, line, payment, buyer, customer, order, order
line, entitlement, order.paid event, two transfers, four account updates) with plain SQL in one transaction each, from one
connection; it is what the database alone can do on this machine. The ratio says what share of that
the whole stack (HTTP, Django, the ORM, the services) delivers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The bench measures throughput: its clients are one address and one API key doing thousands of
# purchases a minute, which the abuse limits (stall.core.limits) exist to stop.
NO_LIMITS = {f"STALL_LIMIT_{name}": "off" for name in ("API_KEY", "CHECKOUT_KEY", "CHECKOUT_ADDRESS", "MAGIC_LINK_EMAIL", "MAGIC_LINK_ADDRESS")}
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How long the other web workers may still be loading the application after the first one
# answers: the clients' kept-alive connections stay with the worker that accepted them, so a
# burst of them before the others listen puts all of them on one worker for the whole run (seen
# with bench/unlock.py --mode charge: 32 connections on one worker at 98% of a core, the other idle).
WORKERS_SETTLE = 3.0


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                time.sleep(WORKERS_SETTLE)
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("stall serve did not become ready")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def run_http(port: int, key: str, product_id: str, n: int, concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(n))

    def worker():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            try:
                body = json.dumps({"email": f"bench{i}@example.com", "items": [{"product": product_id}]})
                conn.request("POST", "/api/v1/checkouts", body=body, headers=headers)
                resp = conn.getresponse()
                data = json.loads(resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"create {resp.status} {data}")
                conn.request("POST", f"/api/v1/checkouts/{data['id']}/confirm",
                             body=json.dumps({"payment_method": "sandbox_visa"}), headers=headers)
                resp = conn.getresponse()
                data = json.loads(resp.read())
                if resp.status != 200 or data.get("status") != "complete":
                    raise RuntimeError(f"confirm {resp.status} {data}")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors += 1
                    if errors <= 3:
                        print("error:", exc, file=sys.stderr)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, errors


def raw_connection(database_url: str | None, data_dir: Path):
    """A plain DB-API connection to the bench's database in autocommit mode (the baselines send their
    own BEGIN and COMMIT), and a function that writes ``?`` placeholders in the driver's style."""
    if database_url:
        import psycopg

        conn = psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True)
        placeholder = "%s"
    else:
        import sqlite3

        conn = sqlite3.connect(data_dir / "stall.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        placeholder = "?"
    return conn, lambda sql: sql.replace("?", placeholder)


def run_baseline(database_url: str | None, data_dir: Path, n: int, store_id: str, product_id: str) -> float:
    """The same rows, written by plain SQL: one transaction per purchase, one connection."""
    sys.path.insert(0, str(ROOT))
    from stall.core.ids import new_id

    conn, q = raw_connection(database_url, data_dir)
    cur = conn.cursor()

    cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=?"), ("store_balance", store_id))
    balance = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=?"), ("processor_clearing", "sandbox"))
    clearing = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=?"), ("processor_fees", "sandbox"))
    fees = cur.fetchone()[0]
    amount, fee = 300, 39
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    start = time.perf_counter()
    for i in range(n):
        chk, pay, cus, order, ent = (new_id(p) for p in ("chk", "pay", "cus", "ord", "ent"))
        cur.execute("BEGIN")
        cur.execute(q("INSERT INTO checkout_checkout (id, store_id, status, email, currency, amount_subtotal, amount_total, expires_at, created_at, last_error_code, last_error_message) VALUES (?,?,?,?,?,?,?,?,?,?,?)"),
                    (chk, store_id, "open", f"raw{i}@example.com", "USD", amount, amount, now, now, "", ""))
        cur.execute(q("INSERT INTO checkout_checkoutline (checkout_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), (chk, product_id, "p", amount, 1))
        cur.execute(q("INSERT INTO payments_payment (id, purpose, store_id, checkout_id, rail, payment_method, status, amount, currency, fee, amount_refunded, rail_reference, failure_code, failure_message, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                    (pay, "checkout", store_id, chk, "sandbox", "sandbox_visa", "succeeded", amount, "USD", fee, 0, "sbx", "", "", now, now))
        cur.execute(q("INSERT INTO accounts_buyer (id, email, created_at) VALUES (?,?,?)"), (new_id("byr"), f"raw{i}@example.com", now))
        cur.execute(q("INSERT INTO audience_customer (id, store_id, email, name, created_at) VALUES (?,?,?,?,?)"), (cus, store_id, f"raw{i}@example.com", "", now))
        cur.execute(q("INSERT INTO orders_order (id, store_id, checkout_id, payment_id, customer_id, email, status, currency, amount_total, amount_refunded, fee, fee_refunded, platform_fee, platform_fee_refunded, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                    (order, store_id, chk, pay, cus, f"raw{i}@example.com", "paid", "USD", amount, 0, fee, 0, 0, 0, now))
        cur.execute(q("INSERT INTO orders_orderline (order_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), (order, product_id, "p", amount, 1))
        cur.execute(q("INSERT INTO orders_entitlement (id, store_id, order_id, product_id, email, download_limit, created_at) VALUES (?,?,?,?,?,?,?)"),
                    (ent, store_id, order, product_id, f"raw{i}@example.com", 10, now))
        cur.execute(q("UPDATE checkout_checkout SET status=?, completed_at=? WHERE id=?"), ("complete", now, chk))
        cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at) VALUES (?,?,?,?,?)"),
                    (new_id("evt"), store_id, "order.paid", '{"object": {}}', now))
        for key, debit, credit, amt, code in ((f"{pay}:sale", clearing, balance, amount, "sale"), (f"{pay}:processor_fee", balance, fees, fee, "processor_fee")):
            cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id=?"), (amt, debit))
            cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id=?"), (amt, credit))
            cur.execute(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, currency, two_phase, state, code, reference, created_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"),
                        (new_id("tr"), key, debit, credit, amt, "USD", False, "posted", code, order, now, now))
        cur.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def demo_store(database_url: str | None) -> tuple[Path, dict, str]:
    """A scratch Stall with the demo store and an API key for it: its data directory, the
    environment to run ``stall`` in (abuse limits off), and the key. On PostgreSQL the database at
    ``database_url`` is emptied first."""
    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-"))
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", **NO_LIMITS}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
        subprocess.run([str(BIN / "python"), "-c", (
            "import psycopg,sys; u=sys.argv[1].replace('postgres://','postgresql://',1); c=psycopg.connect(u, autocommit=True);"
            "c.execute('DROP SCHEMA public CASCADE'); c.execute('CREATE SCHEMA public')"), database_url], check=True)
    env["PYTHONPATH"] = str(ROOT)
    stall = str(BIN / "stall")
    subprocess.run([stall, "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    key = subprocess.run([stall, "apikey", "create", "--store", "demo"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    return data_dir, env, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="purchases")
    parser.add_argument("-c", type=int, default=32, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="web workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per web worker")
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    args = parser.parse_args()

    data_dir, env, key = demo_store(args.database_url)
    stall = str(BIN / "stall")
    product_id = subprocess.run([str(BIN / "python"), "-c", (
        "import django,os; os.environ['DJANGO_SETTINGS_MODULE']='stall.settings'; django.setup();"
        "from stall.catalog.models import Product; p=Product.objects.get(store__slug='demo', slug='field-recordings-vol-1');"
        "print(p.pk, p.store_id)")], env=env, check=True, capture_output=True, text=True).stdout.split()
    product_id, store_id = product_id

    port = free_port()
    server = subprocess.Popen([stall, "serve", "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads),
                               "--server", args.server], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        run_http(port, key, product_id, min(100, args.n), min(8, args.c))  # warm up every worker
        elapsed, latencies, errors = run_http(port, key, product_id, args.n, args.c)
    finally:
        server.terminate()
        server.wait(timeout=20)

    raw_elapsed = run_baseline(args.database_url, data_dir, args.n, store_id, product_id)
    rate = len(latencies) / elapsed
    raw_rate = args.n / raw_elapsed
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"database           {db}")
    print(f"server             stall serve, {args.workers} {args.server} workers x {args.threads} threads + Huey worker")
    print(f"purchases          {len(latencies)} ok, {errors} failed, {args.c} concurrent clients")
    print(f"purchases/s        {rate:,.0f}")
    print(f"latency p50        {statistics.median(latencies) * 1000:.1f} ms (two requests)")
    print(f"latency p99        {percentile(latencies, 99) * 1000:.1f} ms")
    print(f"baseline raw SQL   {raw_rate:,.0f} purchases/s (same rows, one connection, no HTTP)")
    print(f"ratio              {rate / raw_rate:.3f} of the raw baseline")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
