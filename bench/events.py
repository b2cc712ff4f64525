#!/usr/bin/env python
"""Usage events through the batch API over HTTP against `stall serve`, with a raw bulk-insert
baseline of the same rows in the same run, and the time to aggregate one customer's month.

    .venv/bin/python bench/events.py [-n 200000] [-c 4] [--agg-events 10000000] [--database-url postgres://…]

Ingestion: ``-c`` clients each POST /api/v1/events batches of 1,000 events (an API key, an
Idempotency-Key per batch) until ``-n`` events are sent; every event is checked (customer,
meter, timestamp window, properties) and stored by one INSERT … ON CONFLICT DO NOTHING RETURNING
per batch. The baseline inserts the same rows (same columns, same index, batches of 1,000, one
transaction each) with plain SQL from one connection: what the database alone does here.

Ingestion keeps two meters on the events (a count and a sum of ``tokens``), so each accepted
event also lands in two hourly rollup rows, in the INSERT's transaction; the baseline writes the
events alone.

Aggregation: three more meters are made (max of ``tokens``, unique_count of ``user``, latest of
``seats``), then ``--agg-events`` events are written straight into the table with plain SQL (a
tenth of them one customer's, spread over 30 days, the rest 99 other customers'), with the
rollups the ingestion would have kept for them (computed here in the same pass: hourly rows for
each meter, distinct users per day and per hour). The customer's month is then aggregated through
stall.metering.selectors.meter_quantity for each kind, as the usage endpoint and live billing
do — over the calendar month (whole hours and days: rollups alone) and over the same month
shifted by 3h25m12s (the partial hour or day at each end read from the events) — and checked
against the same aggregation over the raw events in SQL; the best of 5 runs is printed.
``--agg-events 0`` skips it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import demo_store, free_port, raw_connection, wait_ready  # noqa: E402  (bench/checkout.py)

BATCH = 1000
CUSTOMERS = 100

SETUP = """
import json, os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
django.setup()
from stall.metering.services import meter_create
from stall.orders.services import customer_for_email
from stall.stores.models import Store
store = Store.objects.get(slug="demo")
meter_create(store=store, key="api_calls", name="API calls", event_name="api.call")
meter_create(store=store, key="tokens", name="Tokens", event_name="api.call", aggregation="sum", property="tokens")
ids = [customer_for_email(store_id=store.pk, email=f"bench{n}@example.com").pk for n in range(%d)]
print(json.dumps({"store": store.pk, "customers": ids}))
"""

MORE_METERS = """
import json, os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
django.setup()
from stall.metering.models import Meter
from stall.metering.services import meter_create
from stall.stores.models import Store
store = Store.objects.get(slug="demo")
meter_create(store=store, key="peak", name="Peak", event_name="api.call", aggregation="max", property="tokens")
meter_create(store=store, key="users", name="Users", event_name="api.call", aggregation="unique_count", property="user")
meter_create(store=store, key="seats", name="Seats", event_name="api.call", aggregation="latest", property="seats")
print(json.dumps(dict(Meter.objects.filter(store=store).values_list("key", "id"))))
"""

AGGREGATE = """
import json, os, sys, time, django
from datetime import datetime, timedelta, UTC
os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
django.setup()
from django.db.models import Count
from django.db.models.fields.json import KeyTextTransform
from stall.metering import selectors
from stall.metering.models import Meter
from stall.metering.selectors import meter_quantity
customer, start = sys.argv[1], datetime.fromisoformat(sys.argv[2])
out = {}
for label, a, b in (("month", start, start + timedelta(days=31)),
                    ("shifted", start + timedelta(seconds=12312), start + timedelta(days=31, seconds=12312))):
    for key in ("api_calls", "tokens", "peak", "users", "seats"):
        meter = Meter.objects.get(store__slug="demo", key=key)
        best, q = None, None
        for _ in range(5):
            t = time.perf_counter()
            q = meter_quantity(meter=meter, customer_id=customer, start=a, end=b)
            took = time.perf_counter() - t
            best = took if best is None else min(best, took)
        t = time.perf_counter()
        if meter.aggregation == "unique_count":  # the raw events' distinct texts (the bench's users are text)
            raw = selectors._events(meter=meter, customer_id=customer, start=a, end=b).aggregate(
                q=Count(KeyTextTransform("user", "properties"), distinct=True))["q"]
        else:
            raw = selectors._raw(meter, customer, a, b)
            raw = raw[2] if meter.aggregation == "latest" else raw
        raw_took = time.perf_counter() - t
        out[f"{label} {meter.aggregation}"] = {"quantity": str(q), "seconds": best, "raw": str(raw),
                                               "raw_seconds": raw_took, "same": q == raw}
print(json.dumps(out))
"""


def events_for(customers: list[str], n: int, prefix: str) -> list[dict]:
    now = datetime.now(tz=UTC).isoformat()
    return [{"id": f"{prefix}{i}", "customer": customers[i % len(customers)], "name": "api.call", "timestamp": now,
             "properties": {"tokens": i % 50, "model": "small", "user": f"u{i % 7}", "seats": i % 9}}
            for i in range(n)]


def run_http(port: int, key: str, customers: list[str], n: int, clients: int, prefix: str) -> tuple[float, int, int]:
    batches = [events_for(customers, BATCH, f"{prefix}{b}-") for b in range(n // BATCH)]
    bodies = [json.dumps({"events": b}).encode() for b in batches]
    lock, accepted, errors = threading.Lock(), [0], [0]
    queue = list(range(len(bodies)))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                b = queue.pop()
            conn.request("POST", "/api/v1/events", body=bodies[b], headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
            response = conn.getresponse()
            body = response.read()
            with lock:
                if response.status == 200:
                    accepted[0] += json.loads(body)["accepted"]
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, accepted[0], errors[0]


COLUMNS = "(store_id, event_id, customer_id, name, timestamp, properties, received_at)"


def _rows(store_id: str, events: list[dict], database_url: str | None, stamp=None):
    ts = stamp or datetime.now(tz=UTC)
    value = ts if database_url else ts.strftime("%Y-%m-%d %H:%M:%S.%f")
    return [(store_id, e["id"], e["customer"], e["name"], value, json.dumps(e["properties"]), value) for e in events]


def run_baseline(database_url, data_dir, store_id, customers, n) -> float:
    """The same rows, batches of 1,000 in one INSERT … ON CONFLICT DO NOTHING each, one connection."""
    conn, q = raw_connection(database_url, data_dir)
    cast = "?::jsonb" if database_url else "?"
    marks = f"(?, ?, ?, ?, ?, {cast}, ?)"
    sql = q(f"INSERT INTO metering_usageevent {COLUMNS} VALUES " + ", ".join([marks] * BATCH)
            + " ON CONFLICT (store_id, event_id) DO NOTHING")
    batches = [_rows(store_id, events_for(customers, BATCH, f"raw{b}-"), database_url) for b in range(n // BATCH)]
    start = time.perf_counter()
    for rows in batches:
        conn.execute("BEGIN")
        conn.execute(sql, [v for row in rows for v in row])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def aggregation_load(database_url, data_dir, store_id, customers, meters, total: int, start: datetime) -> float:
    """``total`` events written straight in (a tenth the first customer's), over 30 days, with the
    rollups ingestion keeps for them: per (meter, customer, hour) the count, the sum and max of
    tokens, the latest seats (by timestamp, then row id), and per (customer, day) and per
    (customer, hour) each user.
    PostgreSQL loads by COPY, SQLite by multi-row INSERTs; timestamps are written as text."""
    conn, q = raw_connection(database_url, data_dir)
    first_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM metering_usageevent").fetchone()[0]
    rng = random.Random(7)
    rand = rng.random
    zone = "+00" if database_url else ""
    hour_text = [(start + timedelta(hours=h)).strftime("%Y-%m-%d %H") for h in range(30 * 24)]
    hours: dict[tuple, list] = {}  # (customer, hour) -> [count, total, peak, latest_key, latest_id, latest]
    users: set[tuple] = set()  # (customer, day, user)
    users_hourly: set[tuple] = set()  # (customer, hour, user)
    others = customers[1:]
    began = time.perf_counter()
    chunk = 5000
    if database_url:
        copy_sql = f"COPY metering_usageevent (id, {COLUMNS[1:-1]}) FROM STDIN"
    else:
        insert_sql = (f"INSERT INTO metering_usageevent (id, {COLUMNS[1:]} VALUES "
                      + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * chunk))
    written = 0
    while written < total:
        rows = []
        for i in range(written, written + chunk):
            heavy = i % 10 == 0
            who = customers[0] if heavy else others[i % len(others)]
            second = int(rand() * 2_592_000)
            hour, rest = divmod(second, 3600)
            micro = i % 1_000_000
            value = f"{hour_text[hour]}:{rest // 60:02d}:{rest % 60:02d}.{micro:06d}{zone}"
            tokens, seats = i % 50, i % 97
            user = f"u{int(rand() * (2000 if heavy else 100))}"
            pk = first_id + i
            rows.append((pk, store_id, f"agg{i}", who, "api.call", value,
                         f'{{"tokens": {tokens}, "user": "{user}", "seats": {seats}}}', value))
            row = hours.get((who, hour))
            if row is None:
                row = hours[(who, hour)] = [0, 0, tokens, None, None, None]
            row[0] += 1
            row[1] += tokens
            if tokens > row[2]:
                row[2] = tokens
            if row[3] is None or (rest, micro, pk) > row[3]:
                row[3], row[4], row[5] = (rest, micro, pk), pk, (value, seats)
            users.add((who, second // 86400, user))
            users_hourly.add((who, hour, user))
        if database_url:
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            conn.execute("BEGIN")
            conn.execute(insert_sql, [v for row in rows for v in row])
            conn.execute("COMMIT")
        written += chunk
        if written % 1_000_000 == 0:
            print(f"  … {written:,} events written ({time.perf_counter() - began:.0f} s)", flush=True)
    if database_url:
        conn.execute("SELECT setval(pg_get_serial_sequence('metering_usageevent', 'id'), "
                     "(SELECT MAX(id) FROM metering_usageevent))")

    def bucket(moment):
        return moment if database_url else moment.strftime("%Y-%m-%d %H:%M:%S")

    rollup_sql = q("INSERT INTO metering_usagerollup (meter_id, customer_id, bucket, count, total, peak, latest_at, "
                   "latest_event, latest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    rows = []
    for (who, hour), (count, tokens, peak, _key, latest_id, (latest_at, latest)) in hours.items():
        at = bucket(start + timedelta(hours=hour))
        rows += [(meters["api_calls"], who, at, count, 0, None, None, None, None),
                 (meters["tokens"], who, at, count, tokens, None, None, None, None),
                 (meters["peak"], who, at, count, 0, peak, None, None, None),
                 (meters["users"], who, at, count, 0, None, None, None, None),
                 (meters["seats"], who, at, count, 0, None, latest_at, latest_id, latest)]
    distinct_sql = q("INSERT INTO metering_usagedistinct (meter_id, customer_id, bucket, value) VALUES (?, ?, ?, ?)")
    days = [(meters["users"], who, bucket(start + timedelta(days=day)), user) for who, day, user in users]
    hourly_sql = distinct_sql.replace("metering_usagedistinct", "metering_usagedistincthour")
    hourly = [(meters["users"], who, bucket(start + timedelta(hours=hour)), user) for who, hour, user in users_hourly]
    cursor = conn.cursor()
    for statement, values in ((rollup_sql, rows), (distinct_sql, days), (hourly_sql, hourly)):
        for at in range(0, len(values), 10_000):
            conn.execute("BEGIN")
            cursor.executemany(statement, values[at:at + 10_000])
            conn.execute("COMMIT")
    print(f"  … {len(rows):,} hourly rollup rows, {len(days):,} distinct users per day and {len(hourly):,} per hour "
          "written", flush=True)
    if database_url:
        # VACUUM as autovacuum would after a bulk load: it sets the visibility map, without which
        # PostgreSQL reads every rollup row's heap page instead of the index alone.
        for table in ("metering_usageevent", "metering_usagerollup", "metering_usagedistinct",
                      "metering_usagedistincthour"):
            conn.execute(f"VACUUM ANALYZE {table}")
    else:
        conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200_000, help="events sent over HTTP (and inserted by the baseline)")
    parser.add_argument("-c", type=int, default=4, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--agg-events", type=int, default=10_000_000, help="events in the table for the aggregation")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    args = parser.parse_args()

    data_dir, env, key = demo_store(args.database_url)
    stall = str(BIN / "stall")
    seeded = json.loads(subprocess.run([str(BIN / "python"), "-c", SETUP % CUSTOMERS], env=env, check=True,
                                       capture_output=True, text=True).stdout.strip().splitlines()[-1])
    store_id, customers = seeded["store"], seeded["customers"]

    port = free_port()
    server = subprocess.Popen([stall, "serve", "--port", str(port), "--workers", str(args.workers), "--threads",
                               str(args.threads)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, timeout=240)  # migrating PostgreSQL on a busy machine
        run_http(port, key, customers, 4 * BATCH, args.c, "warm")  # every worker warmed up
        elapsed, accepted, errors = run_http(port, key, customers, args.n, args.c, "http")
    finally:
        server.terminate()
        server.wait(timeout=30)
    raw_elapsed = run_baseline(args.database_url, data_dir, store_id, customers, args.n)

    rate, raw_rate = accepted / elapsed, args.n / raw_elapsed
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"database            {db}")
    print(f"server              stall serve, {args.workers} gunicorn workers x {args.threads} threads + Huey worker")
    print(f"events over HTTP    {accepted:,} accepted, {errors} failed batches, {args.c} clients, {BATCH:,} a batch")
    print(f"events/s (HTTP)     {rate:,.0f}")
    print(f"baseline raw SQL    {raw_rate:,.0f} events/s (same rows and batches, one connection, no HTTP)")
    print(f"ratio               {rate / raw_rate:.3f} of the raw baseline")
    print(f"load average        {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    if args.agg_events:
        start = (datetime.now(tz=UTC) - timedelta(days=400)).replace(hour=0, minute=0, second=0, microsecond=0)
        meters = json.loads(subprocess.run([str(BIN / "python"), "-c", MORE_METERS], env=env, check=True,
                                           capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(f"aggregation: writing {args.agg_events:,} events …", flush=True)
        load = aggregation_load(args.database_url, data_dir, store_id, customers, meters, args.agg_events, start)
        done = subprocess.run([str(BIN / "python"), "-c", AGGREGATE, customers[0], start.isoformat()], env=env,
                              check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"events in the table {args.agg_events + args.n * 2:,} (written in {load:.0f} s); load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for key_, figures in result.items():
            print(f"aggregate {key_:<20} one customer's month ({figures['quantity']}): "
                  f"{figures['seconds'] * 1000:7.1f} ms (best of 5); raw events {figures['raw_seconds'] * 1000:7.0f} ms"
                  f"{'' if figures['same'] else ' MISMATCH raw=' + figures['raw']}")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
