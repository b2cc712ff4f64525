#!/usr/bin/env python
"""The Insights page (overview, revenue chart, breakdowns) of a store with 1,000,000 orders,
against the bare /healthz view in the same run.

    .venv/bin/python bench/insights.py [-n 1000000] [-r 60] [--database-url postgres://…/stall_bench]

Setup, in this process (a scratch data directory, or the scratch PostgreSQL database given, which
is emptied): migrate, one creator, one store with 40 products, then ``-n`` paid orders spread over
the last 365 days with their lines and customers, and the daily rollups they make, written with
plain SQL (as the rebuild task would write them: per day, product, kind and rail, and per day).

Timed: server time of each request through Django's full middleware stack (the test client, in
process, signed in as the creator): the Insights page for 30 days by day, 90 days by day and 12
months by month, a custom range with its previous range, and /healthz as the baseline. Prints
p50 and p99 of each and the ratio of p50s. DESIGN's target: ≤ 300 ms per page at 1M orders.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("download", "post", "tip", "membership")
RAILS = ("sandbox", "wallet", "tab")


def setup_django(database_url: str | None) -> Path:
    data = Path(tempfile.mkdtemp(prefix="stall-bench-insights-"))
    os.environ["STALL_DATA_DIR"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
    os.environ["STALL_LOG_LEVEL"] = "WARNING"
    os.environ["STALL_ALLOWED_HOSTS"] = "testserver"
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command

    if database_url:
        call_command("flush", interactive=False, verbosity=0) if _has_tables() else None
    call_command("migrate", verbosity=0)
    return data


def _has_tables() -> bool:
    from django.db import connection

    return "orders_order" in connection.introspection.table_names()


def generate(n: int) -> tuple[object, float]:
    """The store and its history; returns (store, seconds)."""
    from django.db import connection, transaction

    from stall.core.ids import new_id
    from stall.testing import ProductFactory, StoreFactory, UserFactory

    began = time.perf_counter()
    rng = random.Random(12)
    creator = UserFactory(email="creator@example.com")
    store = StoreFactory(owner=creator, slug="big", name="Big Store")
    products = [(ProductFactory(store=store, name=f"Product {i}", kind=KINDS[i % 4] if i % 4 != 3 else "download",
                                amount=rng.choice([25, 100, 300, 500, 1200])).pk, KINDS[i % 4] if i % 4 != 3 else "download",
                 rng.choice([25, 100, 300, 500, 1200])) for i in range(40)]
    customers = [(new_id("cus"), f"fan{i}@example.com") for i in range(max(1, n // 20))]
    now = datetime.now(UTC)
    start = now - timedelta(days=364)
    rollups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    seen: set[str] = set()
    stamp = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany("INSERT INTO audience_customer (id, store_id, email, name, created_at) VALUES (%s, %s, %s, '', %s)",
                           [(cid, store.pk, email, stamp(start)) for cid, email in customers])
        batch_orders, batch_lines = [], []
        # Order ids sorted by time, as new_id makes them.
        offsets = sorted(rng.random() * 365 * 86400 for _ in range(n))
        for offset in offsets:
            created = start + timedelta(seconds=offset)
            product_id, kind, amount = rng.choice(products)
            rail = RAILS[rng.randrange(3)]
            fee = amount * 29 // 1000 + 30 if rail == "sandbox" else amount * 3 // 100
            cid, email = customers[rng.randrange(len(customers))]
            oid = new_id("ord")
            batch_orders.append((oid, store.pk, cid, email, "paid", "USD", amount, 0, fee, 0, 0, 0, True, stamp(created)))
            batch_lines.append((oid, product_id, "Item", amount, 1))
            row = rollups[(created.date(), kind, product_id, rail)]
            row[0] += amount
            row[1] += fee
            row[2] += 1
            if cid not in seen:
                seen.add(cid)
                row[3] += 1
            if len(batch_orders) >= 20_000:
                _flush(cursor, batch_orders, batch_lines)
        _flush(cursor, batch_orders, batch_lines)
        cursor.executemany(
            "INSERT INTO insights_dailyrollup (store_id, day, currency, kind, product_id, rail, gross, refunds, "
            "processing_fees, platform_fees, other, net, orders, new_customers) "
            "VALUES (%s, %s, 'USD', %s, %s, %s, %s, 0, %s, 0, 0, %s, %s, %s)",
            [(store.pk, day, kind, pid, rail, v[0], v[1], v[0] - v[1], v[2], v[3])
             for (day, kind, pid, rail), v in rollups.items()],
        )
        totals: dict = defaultdict(lambda: [0, 0, 0, 0])
        for (day, _, _, _), v in rollups.items():
            for i in range(4):
                totals[day][i] += v[i]
        cursor.executemany(
            "INSERT INTO insights_dailytotal (store_id, day, currency, gross, refunds, processing_fees, platform_fees, "
            "other, net, orders, new_customers) VALUES (%s, %s, 'USD', %s, 0, %s, 0, 0, %s, %s, %s)",
            [(store.pk, day, v[0], v[1], v[0] - v[1], v[2], v[3]) for day, v in totals.items()],
        )
    return store, time.perf_counter() - began, len(rollups)


def _flush(cursor, orders: list, lines: list) -> None:
    if orders:
        cursor.executemany(
            "INSERT INTO orders_order (id, store_id, customer_id, email, status, currency, amount_total, amount_refunded, "
            "fee, fee_refunded, platform_fee, platform_fee_refunded, livemode, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", orders)
        cursor.executemany(
            "INSERT INTO orders_orderline (order_id, product_id, name, unit_amount, quantity) VALUES (%s, %s, %s, %s, %s)",
            lines)
    orders.clear()
    lines.clear()


def measure(client, path: str, rounds: int) -> list[float]:
    client.get(path)  # warm: templates compiled, ids cached
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000, help="orders of history")
    parser.add_argument("-r", "--rounds", type=int, default=60, help="requests per page")
    parser.add_argument("--database-url", default=None, help="a scratch PostgreSQL database (emptied)")
    args = parser.parse_args()
    data = setup_django(args.database_url)
    try:
        from django.test import Client

        store, took, rollup_rows = generate(args.n)
        print(f"history      {args.n:,} orders, {rollup_rows:,} rollup rows, written in {took:.0f} s "
              f"({'PostgreSQL' if args.database_url else 'SQLite'})", flush=True)
        client = Client()
        client.force_login(store.owner)
        base = f"/dashboard/{store.slug}/insights/"
        today = datetime.now(UTC).date()
        pages = [
            ("healthz (baseline)", "/healthz"),
            ("insights 30 days", base + "?range=30d"),
            ("insights 90 days", base + "?range=90d"),
            ("insights 12 months", base + "?range=12m"),
            ("insights custom 180 d", base + f"?range=custom&start={today - timedelta(days=179)}&end={today}&by=day"),
        ]
        results = {name: measure(client, path, args.rounds) for name, path in pages}
        base_p50 = statistics.median(results["healthz (baseline)"])
        print(f"{'page':24} {'p50 ms':>8} {'p99 ms':>8} {'× healthz p50':>14}")
        for name, times in results.items():
            print(f"{name:24} {p(times, .5):8.1f} {p(times, .99):8.1f} {p(times, .5) / base_p50:14.1f}")
        worst = max(p(t, .99) for n, t in results.items() if n.startswith("insights"))
        print(f"target       ≤ 300 ms per page: worst p99 {worst:.0f} ms — {'met' if worst <= 300 else 'NOT met'}")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
