#!/usr/bin/env python
"""License validation over HTTP against `stall serve`, with a bare view's rate in the same run.

    .venv/bin/python bench/licenses.py [-n 4000] [-c 16] [--workers 2] [--threads 4] [--seconds 20]
                                       [--database-url postgres://…]

Setup (a script run with the bench's STALL_DATA_DIR, before the server starts): a store, a product
issuing license keys, and one paid order (one key, activated on one instance) per client.

Then, against one `stall serve` (gunicorn, 2 workers x 4 threads by default), each client keeps one
connection and sends, one after the other:

  bare       GET /healthz: the baseline, the bare view the other benches use
  validate   POST /api/v1/licenses/validate {license_key, instance_id}: what licensed software
             sends on every start (JSON in and out, the key found by its hash, the instance checked)

twice: with the license limits off, and with them counting (set so high that nothing is refused:
each call counts twice in the limits cache, per key and per address). DESIGN's target: validation
at least 50% of the bare view's rate.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import NO_LIMITS, free_port, percentile, wait_ready  # noqa: E402  (bench/checkout.py)

WARM_UP = 20  # requests per client before the clock starts


def setup(clients: int) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from stall.accounts.services import user_create
    from stall.catalog.models import ProductStatus
    from stall.catalog.services import product_create
    from stall.orders.licenses import license_activate, license_policy_set
    from stall.stores.services import store_create
    from stall.testing import buy

    owner = user_create(email="bench@example.com", password="a long bench password")
    store = store_create(owner=owner, name="Bench", slug="bench")
    product = product_create(store=store, name="Bench Tool", amount=900, status=ProductStatus.DRAFT)
    product.status = ProductStatus.PUBLISHED  # no files: a licence-only product
    product.save(update_fields=["status"])
    license_policy_set(product=product, enabled=True, activation_limit=3)
    keys = []
    for n in range(clients):
        order = buy(store=store, product=product, email=f"user{n}@example.com")
        key = order.license_keys.get().key
        instance = license_activate(key=key, instance_name=f"machine {n}")["instance"]["id"]
        keys.append({"key": key, "instance": instance})
    return {"keys": keys}


def _client(port: int, kind: str, key: dict, n: int, deadline: float, latencies: list, counts: dict,
            lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"license_key": key["key"], "instance_id": key["instance"]})
    headers = {"Content-Type": "application/json"}
    mine = []
    done = 0
    while done < n and time.monotonic() < deadline:
        start = time.perf_counter()
        if kind == "bare":
            conn.request("GET", "/healthz")
        else:
            conn.request("POST", "/api/v1/licenses/validate", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        mine.append(time.perf_counter() - start)
        done += 1
        status = response.status
        if kind == "validate" and status == 200 and not json.loads(data)["valid"]:
            status = "invalid"
        with lock:
            counts[status] = counts.get(status, 0) + 1
    conn.close()
    with lock:
        latencies.extend(mine)


def run(port: int, kind: str, keys: list, n: int, seconds: float) -> tuple[float, list, dict]:
    latencies: list = []
    counts: dict = {}
    lock = threading.Lock()
    per_client = max(1, n // len(keys))
    warm = [threading.Thread(target=_client, args=(port, kind, k, WARM_UP, time.monotonic() + 30, [], {}, lock)) for k in keys]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(port, kind, k, per_client, deadline, latencies, counts, lock))
               for k in keys]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies, counts


def serve(env: dict, args, port: int) -> subprocess.Popen:
    server = subprocess.Popen([str(BIN / "stall"), "serve", "--port", str(port), "--workers", str(args.workers),
                               "--threads", str(args.threads)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=4000, help="requests of each kind, at most")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients, one key each")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20, help="at most this long per kind")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        print(json.dumps(setup(args.setup)))
        return

    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-licenses-"))
    base = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", **NO_LIMITS}
    base.pop("DATABASE_URL", None)
    base.pop("REDIS_URL", None)
    if args.database_url:
        base["DATABASE_URL"] = args.database_url
        subprocess.run([str(BIN / "python"), "-c", (
            "import psycopg,sys; u=sys.argv[1].replace('postgres://','postgresql://',1); c=psycopg.connect(u, autocommit=True);"
            "c.execute('DROP SCHEMA public CASCADE'); c.execute('CREATE SCHEMA public')"), args.database_url], check=True)
    began = time.perf_counter()
    out = subprocess.run([str(BIN / "python"), __file__, "--setup", str(args.c)], env=base, check=True,
                         capture_output=True, text=True).stdout
    keys = json.loads(out.strip().splitlines()[-1])["keys"]
    print(f"setup              {time.perf_counter() - began:.1f} s ({args.c} orders, one activated key each)", flush=True)

    results = {}
    for limits in ("off", "counting"):
        env = dict(base)
        setting = "off" if limits == "off" else "1000000000/1m"
        env.update({"STALL_LIMIT_LICENSE_KEY": setting, "STALL_LIMIT_LICENSE_ADDRESS": setting})
        port = free_port()
        server = serve(env, args, port)
        try:
            for kind in ("bare", "validate"):
                results[(limits, kind)] = run(port, kind, keys, args.n, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)

    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"database           {db}")
    print(f"server             stall serve, {args.workers} gunicorn workers x {args.threads} threads + Huey worker")
    print(f"clients            {args.c}, one connection each, one request after the other")
    print(f"{'limits':<9} {'request':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for (limits, kind), (rate, latencies, counts) in results.items():
        p50 = percentile(latencies, 50) * 1000 if latencies else 0
        p99 = percentile(latencies, 99) * 1000 if latencies else 0
        print(f"{limits:<9} {kind:<10} {rate:8,.0f} {p50:8.1f} {p99:8.1f}  {counts}")
    for limits in ("off", "counting"):
        ratio = results[(limits, "validate")][0] / results[(limits, "bare")][0]
        print(f"ratio ({limits:<8}) validate / bare view = {ratio:.2f} (target >= 0.50)")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
