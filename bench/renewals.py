#!/usr/bin/env python
"""The membership renewal task over many due wallet-paid subscriptions, with a raw-SQL baseline in the same run.

    .venv/bin/python bench/renewals.py [-n 100000] [--small 10000] [--database-url postgres://…] [--no-tracemalloc]

For each size (``--small``, then ``-n``; ``--small 0`` runs ``-n`` only) a fresh process and a fresh
database: a store, a $3/month tier and one member joined from the wallet through the services (the
template), then ``n`` copies of that member written with plain SQL — a buyer, a wallet holding $10
with its top-up's card fee owed in its fee pool, the store's customer, a subscription whose period
ended yesterday, and its first period. Then, in that process:

  task       ``renewals_run`` — the function the periodic Huey task ``renewals_task`` runs — renews
             every due subscription from the wallet: the period's claim, the lean spend (payment,
             order, line, transfers, account totals, the order.paid and subscription.renewed
             events), the subscription moved on. Wall time, renewals/s, and the peak of the
             process's RSS above what it held when the task started (sampled every 10 ms).
  baseline   the same writes per renewal for the next period with plain SQL, one transaction per
             renewal from one connection, reading the due subscriptions 500 at a time.
  memory     ``renewals_run`` again for the period after, under ``tracemalloc``: the peak of the
             Python heap above where it started. Flat in ``n`` means the task streams.

The ratio says what share of what the database alone does here the task delivers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import raw_connection  # noqa: E402  (bench/checkout.py)

PRICE = 300  # $3/month
FUNDED = 2000  # each member's wallet: $20, the join and five renewals
CHUNK = 5000


# --- Setup: the template through the services, the copies with plain SQL ----------------------


def template() -> dict:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from stall.accounts.services import buyer_for_email, user_create
    from stall.memberships.services import subscription_join
    from stall.memberships.tiers import tier_create
    from stall.stores.services import store_create
    from stall.wallets.services import wallet_top_up

    owner = user_create(email="bench@example.com", password="a long bench password")
    store = store_create(owner=owner, name="Bench", slug="bench")
    tier = tier_create(store=store, name="Supporter", prices=[{"interval": "month", "amount": PRICE}])
    buyer = buyer_for_email(email="member@example.com")
    wallet_top_up(buyer=buyer, amount=FUNDED, currency="USD", payment_method="sandbox_visa")
    sub = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    connection.close()
    return {"store": store.pk, "sub": sub.pk, "buyer": buyer.pk, "now": timezone.now().isoformat()}


def _row(cur, q, table: str, where: str, value) -> dict:
    cur.execute(q(f"SELECT * FROM {table} WHERE {where} = ?"), (value,))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def _insert_many(cur, q, table: str, rows: list[dict], pg: bool) -> None:
    if not rows:
        return
    names = list(rows[0])
    if pg:
        from psycopg.types.json import Jsonb

        def adapt(v):
            return Jsonb(v) if isinstance(v, (dict, list)) else v
    else:
        def adapt(v):
            return v
    columns = ", ".join(f'"{name}"' for name in names)  # quoted: "end" is a keyword
    sql = q(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))})")
    cur.executemany(sql, [tuple(adapt(r[k]) for k in names) for r in rows])


def members_copy(database_url: str | None, data_dir: Path, n: int, env: dict) -> tuple[float, str]:
    """Write ``n`` members like the template's, due since yesterday; returns (seconds, the time
    the first renewal pass runs at)."""
    from datetime import datetime

    from stall.core.ids import new_id
    from stall.memberships.billing import period_bound

    conn, q = raw_connection(database_url, data_dir)
    pg = bool(database_url)
    cur = conn.cursor()
    sub = _row(cur, q, "memberships_subscription", "id", env["sub"])
    period = _row(cur, q, "memberships_subscriptionperiod", "subscription_id", env["sub"])
    buyer = _row(cur, q, "accounts_buyer", "id", env["buyer"])
    wallet = _row(cur, q, "wallets_wallet", "buyer_id", env["buyer"])
    account = _row(cur, q, "ledger_account", "id", wallet["account_id"])
    cur.execute(q("SELECT * FROM ledger_account WHERE kind = 'fee_pool' AND owner = ?"), (wallet["id"],))
    pool = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    customer = _row(cur, q, "audience_customer", "id", sub["customer_id"])
    # The template's money came from the sandbox: the copies' totals are added to the same
    # counterparts, so the ledger still balances.
    cur.execute(q("SELECT debit_account_id, credit_account_id, amount FROM ledger_transfer WHERE debit_account_id IN (?, ?) OR credit_account_id IN (?, ?)"),
                (account["id"], pool["id"], account["id"], pool["id"]))
    counter: dict[str, list[int]] = {}
    for debit, credit, amount in cur.fetchall():
        if credit in (account["id"], pool["id"]) and debit not in (account["id"], pool["id"]):
            counter.setdefault(debit, [0, 0])[0] += amount
        if debit in (account["id"], pool["id"]) and credit not in (account["id"], pool["id"]):
            counter.setdefault(credit, [0, 0])[1] += amount
    # The members joined a month and two days ago: their first period ended yesterday.
    now = datetime.fromisoformat(env["now"])
    anchor = now - timedelta(days=33)
    end = period_bound(anchor, "month", 1)
    stamp = (lambda d: d) if pg else (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
    began = time.perf_counter()
    for start in range(0, n, CHUNK):
        buyers, wallets, accounts, customers, subs, periods = [], [], [], [], [], []
        for i in range(start, min(n, start + CHUNK)):
            email = f"m{i}@example.com"
            b, w, a, p, c, s = (new_id(x) for x in ("byr", "wal", "acct", "acct", "cus", "sub"))
            buyers.append({**buyer, "id": b, "email": email})
            accounts.append({**account, "id": a, "owner": b})
            accounts.append({**pool, "id": p, "owner": w})
            wallets.append({**wallet, "id": w, "buyer_id": b, "account_id": a})
            customers.append({**customer, "id": c, "email": email})
            subs.append({**sub, "id": s, "customer_id": c, "email": email, "buyer_id": b, "feed_token": new_id("ft"),
                         "anchor_at": stamp(anchor), "current_period_start": stamp(anchor), "current_period_end": stamp(end)})
            periods.append({**{k: v for k, v in period.items() if k != "id"}, "subscription_id": s, "order_id": None,
                            "payment_id": None, "start": stamp(anchor), "end": stamp(end)})
        cur.execute("BEGIN")
        _insert_many(cur, q, "accounts_buyer", buyers, pg)
        _insert_many(cur, q, "ledger_account", accounts, pg)
        _insert_many(cur, q, "wallets_wallet", wallets, pg)
        _insert_many(cur, q, "audience_customer", customers, pg)
        _insert_many(cur, q, "memberships_subscription", subs, pg)
        _insert_many(cur, q, "memberships_subscriptionperiod", periods, pg)
        for account_id, (debits, credits) in counter.items():
            cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ?, credits_posted = credits_posted + ? WHERE id = ?"),
                        (debits * len(subs), credits * len(subs), account_id))
        cur.execute("COMMIT")
    # The template member renews on its own date, outside the bench.
    cur.execute(q("UPDATE memberships_subscription SET status = 'ended' WHERE id = ?"), (env["sub"],))
    if pg:
        cur.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - began, (now + timedelta(minutes=1)).isoformat()


# --- Measuring the task ----------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """The highest RSS seen while the block runs, sampled every 10 ms, above the RSS at its start."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def grown(self) -> int:
        return self.peak - self.start


class GroupTimes(logging.Handler):
    """The renewal groups' times, from the task's debug log: how long each transaction held
    SQLite's write lock, and how long each held the store balance's row (from its UPDATE to the
    commit): what a buyer's one-click spend at the store waits for at most."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.held, self.balance = [], []

    def emit(self, record):
        if hasattr(record, "held_ms"):
            self.held.append(record.held_ms)
            self.balance.append(record.balance_ms)

    def summary(self) -> dict:
        def pct(values, p):
            values = sorted(values)
            return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0

        return {"groups": len(self.held), "held_p50": pct(self.held, 0.5), "held_p95": pct(self.held, 0.95),
                "held_max": max(self.held, default=0.0), "balance_p50": pct(self.balance, 0.5),
                "balance_max": max(self.balance, default=0.0)}


class StatementTimes:
    """Wall time per statement kind (its verb and table) and of the commits, as this process waits
    for them: on PostgreSQL, the server's share of the task (``--statements``)."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}

    def kind(self, sql: str) -> str:
        words = sql.replace("(", " ").split()
        verb = words[0].upper() if words else "?"
        table = next((w.strip('"') for w in words if "_" in w and w.strip('"').split("_")[0] in APPS), "")
        return f"{verb} {table}"

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add(self.kind(sql), time.perf_counter() - began)

    def add(self, kind: str, seconds: float) -> None:
        entry = self.times.setdefault(kind, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def summary(self) -> list:
        return sorted(([k, n, s] for k, (n, s) in self.times.items()), key=lambda e: -e[2])


APPS = {"memberships", "payments", "orders", "ledger", "integrations", "wallets", "audience", "accounts", "catalog", "stores"}


def task_run(at: str, *, trace: bool = False, statements: bool = False, workers: int = 0) -> dict:
    import contextlib
    import tracemalloc
    from datetime import datetime

    from django.conf import settings
    from django.db import connection

    from stall.memberships.renewals import renewals_run

    times = GroupTimes()
    log = logging.getLogger("stall.memberships.renewals")
    log.addHandler(times)
    log.setLevel(logging.DEBUG)
    now = datetime.fromisoformat(at)
    if trace:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    timing = StatementTimes() if statements else None
    if timing:
        connection.ensure_connection()
        commit = connection._commit

        def timed_commit():
            began = time.perf_counter()
            try:
                return commit()
            finally:
                timing.add("COMMIT", time.perf_counter() - began)

        connection._commit = timed_commit
    with RssPeak() as rss, (connection.execute_wrapper(timing) if timing else contextlib.nullcontext()):
        began, cpu = time.perf_counter(), time.process_time()
        # As the periodic task runs it; the statement timer sees this thread's connection only.
        workers = 1 if statements else workers or settings.STALL_RENEWAL_WORKERS
        counts = renewals_run(now=now, workers=workers)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    log.removeHandler(times)
    out = {"counts": counts, "workers": workers, "seconds": elapsed, "cpu": cpu, "rss_grown": rss.grown, "rss_peak": rss.peak, "groups": times.summary()}
    if timing:
        del connection._commit
        out["statements"] = timing.summary()
    if trace:
        out["heap_peak"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    connection.close()
    return out


# --- The baseline: the same writes with plain SQL --------------------------------------------


def baseline(database_url: str | None, data_dir: Path, at: str, env: dict) -> tuple[int, float]:
    """Renew every due subscription for its next period with plain SQL: the rows the task writes,
    one transaction per renewal, from one connection. Returns (renewals, seconds)."""
    from datetime import datetime

    from stall.core.ids import new_id
    from stall.memberships.billing import period_bound

    conn, q = raw_connection(database_url, data_dir)
    pg = bool(database_url)
    cur = conn.cursor()
    now = datetime.fromisoformat(at)
    stamp = (lambda d: d) if pg else (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
    parse = (lambda v: v) if pg else (lambda v: datetime.fromisoformat(v))
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'processor_clearing' AND owner = 'wallet'"))
    clearing = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'store_balance' AND owner = ?"), (env["store"],))
    balance = cur.fetchone()[0]
    cur.execute(q("SELECT s.price_id, p.product_id, p.amount, pr.name FROM memberships_subscription s "
                  "JOIN memberships_tierprice p ON p.id = s.price_id JOIN catalog_product pr ON pr.id = p.product_id WHERE s.id = ?"),
                (env["sub"],))
    price_id, product_id, amount, name = cur.fetchone()
    store = env["store"]
    done, last = 0, ""
    began = time.perf_counter()
    while True:
        cur.execute(q(
            "SELECT s.id, s.buyer_id, s.email, s.customer_id, s.period_number, s.current_period_end, s.anchor_at, "
            "w.id, w.account_id, (SELECT a.id FROM ledger_account a WHERE a.kind = 'fee_pool' AND a.owner = w.id) "
            "FROM memberships_subscription s JOIN wallets_wallet w ON w.buyer_id = s.buyer_id AND w.currency = 'USD' "
            "WHERE s.status = 'active' AND s.current_period_end <= ? AND s.id > ? ORDER BY s.id LIMIT 500"), (stamp(now), last))
        batch = cur.fetchall()
        if not batch:
            break
        for sub_id, buyer_id, email, customer_id, number, start, anchor, wallet_id, account_id, pool_id in batch:
            number, start = number + 1, parse(start)
            end = period_bound(parse(anchor), "month", number + 1)
            pay, order = new_id("pay"), new_id("ord")
            cur.execute("BEGIN")
            cur.execute(q("INSERT INTO memberships_subscriptionperiod (subscription_id, number, start, \"end\", price_id, amount, currency, status, paid_with, attempts, failure_message, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                        (sub_id, number, stamp(start), stamp(end), price_id, amount, "USD", "charging", "none", 1, "", stamp(now), stamp(now)))
            cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + CASE WHEN id = ? THEN ? ELSE 0 END "
                          "WHERE id IN (?, ?) AND (id <> ? OR credits_posted - debits_posted - debits_pending >= ?) "
                          "RETURNING id, debits_posted, credits_posted, debits_pending"),
                        (account_id, amount, account_id, pool_id, account_id, amount))
            totals = {r[0]: r[1:] for r in cur.fetchall()}
            w, p = totals[account_id], totals[pool_id]
            before = w[1] - w[0] - w[2] + amount
            owed = p[0] - p[1]
            fee = (2 * owed * amount + before) // (2 * before) if before else 0
            cur.execute(q("INSERT INTO payments_payment (id, purpose, store_id, checkout_id, buyer_id, rail, payment_method, status, amount, currency, fee, amount_refunded, rail_reference, failure_code, failure_message, livemode, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                        (pay, "checkout", store, None, buyer_id, "wallet", "wallet", "succeeded", amount, "USD", fee, 0, wallet_id, "", "", True, stamp(now), stamp(now)))
            cur.execute(q("INSERT INTO orders_order (id, store_id, checkout_id, payment_id, customer_id, email, status, currency, amount_total, amount_refunded, fee, fee_refunded, platform_fee, platform_fee_refunded, livemode, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                        (order, store, None, pay, customer_id, email, "paid", "USD", amount, 0, fee, 0, 0, 0, True, stamp(now)))
            cur.execute(q("INSERT INTO orders_orderline (order_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), (order, product_id, name, amount, 1))
            paid = json.dumps({"object": {"id": order, "amount_total": amount}})
            renewed = json.dumps({"object": {"id": sub_id, "status": "active", "current_period_end": end.timestamp()}})
            cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at, dispatched_at) VALUES (?,?,?,?,?,?), (?,?,?,?,?,?)"),
                        (new_id("evt"), store, "order.paid", paid, stamp(now), stamp(now), new_id("evt"), store, "subscription.renewed", renewed, stamp(now), stamp(now)))
            transfers = [(f"{pay}:wallet_spend", account_id, clearing, amount, "wallet_spend", pay), (f"{pay}:sale", clearing, balance, amount, "sale", order)]
            if fee:
                transfers.append((f"{pay}:processor_fee", balance, pool_id, fee, "processor_fee", order))
            cur.execute(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, currency, two_phase, state, code, reference, created_at, resolved_at) VALUES "
                          + ", ".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * len(transfers))),
                        [x for key, d, c, amt, code, ref in transfers for x in (new_id("tr"), key, d, c, amt, "USD", False, "posted", code, ref, stamp(now), stamp(now))])
            cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + CASE id WHEN ? THEN ? WHEN ? THEN ? ELSE 0 END, "
                          "credits_posted = credits_posted + CASE id WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? ELSE 0 END WHERE id IN (?, ?, ?)"),
                        (clearing, amount, balance, fee, clearing, amount, balance, amount, pool_id, fee, clearing, balance, pool_id))
            cur.execute(q("UPDATE memberships_subscriptionperiod SET status = 'paid', order_id = ?, payment_id = ?, paid_with = 'wallet', updated_at = ? WHERE subscription_id = ? AND number = ?"),
                        (order, pay, stamp(now), sub_id, number))
            cur.execute(q("UPDATE memberships_subscription SET period_number = ?, current_period_start = ?, current_period_end = ?, updated_at = ? WHERE id = ?"),
                        (number, stamp(start), stamp(end), stamp(now), sub_id))
            cur.execute("COMMIT")
            done += 1
        last = batch[-1][0]
    elapsed = time.perf_counter() - began
    conn.close()
    return done, elapsed


def baseline_grouped(database_url: str | None, data_dir: Path, at: str, env: dict, group: int) -> tuple[int, float]:
    """The task's statements with plain SQL: the same rows as ``baseline``, written the way the
    task writes them, ``group`` renewals per transaction — one INSERT … ON CONFLICT DO NOTHING
    RETURNING of the claims, a SELECT locking the wallets and fee pools, one guarded UPDATE of the
    wallets, one guarded UPDATE of the subscriptions, the payments, orders, lines, events and
    transfers in bulk (COPY on PostgreSQL, executemany on SQLite), one UPDATE of the periods and
    one of the other accounts' summed totals. Returns (renewals, seconds)."""
    from datetime import datetime

    from stall.core.ids import new_id
    from stall.memberships.billing import period_bound

    conn, q = raw_connection(database_url, data_dir)
    pg = bool(database_url)
    cur = conn.cursor()
    now = datetime.fromisoformat(at)
    stamp = (lambda d: d) if pg else (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
    parse = (lambda v: v) if pg else (lambda v: datetime.fromisoformat(v))
    if pg:
        from psycopg.types.json import Jsonb

        as_json = Jsonb
    else:
        as_json = json.dumps

    def bulk(table: str, columns: str, rows: list) -> None:
        if pg:
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * (columns.count(',') + 1))})", rows)

    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'processor_clearing' AND owner = 'wallet'"))
    clearing = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'store_balance' AND owner = ?"), (env["store"],))
    balance = cur.fetchone()[0]
    cur.execute(q("SELECT s.price_id, p.product_id, p.amount, pr.name, p.tier_id FROM memberships_subscription s "
                  "JOIN memberships_tierprice p ON p.id = s.price_id JOIN catalog_product pr ON pr.id = p.product_id WHERE s.id = ?"),
                (env["sub"],))
    price_id, product_id, amount, name, tier_id = cur.fetchone()
    store = env["store"]
    done, last = 0, ""
    began = time.perf_counter()
    while True:
        cur.execute(q(
            "SELECT s.id, s.buyer_id, s.email, s.customer_id, s.period_number, s.current_period_end, s.anchor_at, s.updated_at, "
            "w.id, w.account_id, (SELECT a.id FROM ledger_account a WHERE a.kind = 'fee_pool' AND a.owner = w.id) "
            "FROM memberships_subscription s JOIN wallets_wallet w ON w.buyer_id = s.buyer_id AND w.currency = 'USD' "
            f"WHERE s.status = 'active' AND s.current_period_end <= ? AND s.id > ? ORDER BY s.id LIMIT {group}"), (stamp(now), last))
        batch = cur.fetchall()
        if not batch:
            break
        last = batch[-1][0]
        members = []
        for sub_id, buyer_id, email, customer_id, number, start, anchor, updated, wallet_id, account_id, pool_id in batch:
            number, start = number + 1, parse(start)
            members.append((sub_id, buyer_id, email, customer_id, number, start, period_bound(parse(anchor), "month", number + 1),
                            updated, wallet_id, account_id, pool_id))
        cur.execute("BEGIN")
        cur.execute(q("SELECT EXISTS (SELECT 1 FROM integrations_webhookendpoint we WHERE we.store_id = ? AND we.status = 'enabled')"), (store,))
        cur.fetchall()
        cur.execute(q("INSERT INTO memberships_subscriptionperiod (subscription_id, number, start, \"end\", price_id, amount, currency, status, "
                      "paid_with, attempts, failure_message, created_at, updated_at) VALUES "
                      + ", ".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(members))
                      + " ON CONFLICT (subscription_id, number) DO NOTHING RETURNING subscription_id, id"),
                    [x for m in members for x in (m[0], m[4], stamp(m[5]), stamp(m[6]), price_id, amount, "USD", "charging", "none", 1, "",
                                                  stamp(now), stamp(now))])
        claimed = dict(cur.fetchall())
        members = [m for m in members if m[0] in claimed]
        ids = sorted([m[9] for m in members] + [m[10] for m in members])
        cur.execute(q(f"SELECT id, debits_posted, credits_posted, debits_pending FROM ledger_account WHERE id IN ({', '.join('?' * len(ids))}) "
                      "ORDER BY id" + (" FOR UPDATE" if pg else "")), ids)
        totals = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute(q("UPDATE ledger_account AS a SET debits_posted = a.debits_posted + v.column2 FROM (VALUES "
                      + ", ".join(["(?, ?)"] * len(members)) + ") AS v WHERE a.id = v.column1 AND "
                      "(NOT a.debits_must_not_exceed_credits OR a.credits_posted - a.debits_posted - a.debits_pending >= v.column2) "
                      "RETURNING id, debits_posted, credits_posted, debits_pending"), [x for m in members for x in (m[9], amount)])
        totals.update({r[0]: r[1:] for r in cur.fetchall()})
        cur.execute(q("UPDATE memberships_subscription AS s SET period_number = v.column3, current_period_start = v.column4, "
                      "current_period_end = v.column5, status = 'active', updated_at = ? FROM (VALUES "
                      + ", ".join(["(?, ?, ?, ?, ?)"] * len(members)) + ") AS v WHERE s.id = v.column1 AND s.updated_at = v.column2 RETURNING id"),
                    [stamp(now)] + [x for m in members for x in (m[0], m[7], m[4], stamp(m[5]), stamp(m[6]))])
        cur.fetchall()
        payments, orders, lines, events, transfers, periods, deltas = [], [], [], [], [], [], {}
        for sub_id, buyer_id, email, customer_id, number, start, end, _, wallet_id, account_id, pool_id in members:
            w, p = totals[account_id], totals[pool_id]
            before = w[1] - w[0] - w[2] + amount
            owed = p[0] - p[1]
            fee = (2 * owed * amount + before) // (2 * before) if before else 0
            pay, order = new_id("pay"), new_id("ord")
            payments.append((pay, "checkout", store, None, buyer_id, "wallet", "wallet", "succeeded", amount, "USD", fee, 0, wallet_id, "", "",
                             True, stamp(now), stamp(now)))
            orders.append((order, store, None, pay, customer_id, email, "paid", "USD", amount, 0, fee, 0, 0, 0, True, stamp(now)))
            lines.append((order, product_id, name, amount, 1))
            events.append((new_id("evt"), store, "order.paid", as_json({"object": {"id": order, "amount_total": amount}}), stamp(now), stamp(now)))
            events.append((new_id("evt"), store, "subscription.renewed",
                           as_json({"object": {"id": sub_id, "status": "active", "current_period_end": end.timestamp()}}), stamp(now), stamp(now)))
            moves = [(f"{pay}:wallet_spend", account_id, clearing, amount, "wallet_spend", pay), (f"{pay}:sale", clearing, balance, amount, "sale", order)]
            if fee:
                moves.append((f"{pay}:processor_fee", balance, pool_id, fee, "processor_fee", order))
            for key, debit, credit, amt, code, ref in moves:
                transfers.append((new_id("tr"), key, debit, credit, amt, "USD", False, "posted", code, ref, stamp(now), stamp(now)))
                if debit != account_id:
                    deltas.setdefault(debit, [0, 0])[0] += amt
                deltas.setdefault(credit, [0, 0])[1] += amt
            periods.append((claimed[sub_id], order, pay))
        bulk("payments_payment", "id, purpose, store_id, checkout_id, buyer_id, rail, payment_method, status, amount, currency, fee, "
             "amount_refunded, rail_reference, failure_code, failure_message, livemode, created_at, updated_at", payments)
        bulk("orders_order", "id, store_id, checkout_id, payment_id, customer_id, email, status, currency, amount_total, amount_refunded, "
             "fee, fee_refunded, platform_fee, platform_fee_refunded, livemode, created_at", orders)
        bulk("orders_orderline", "order_id, product_id, name, unit_amount, quantity", lines)
        cur.execute(q("UPDATE memberships_subscriptionperiod AS p SET status = 'paid', order_id = v.column2, payment_id = v.column3, "
                      "paid_with = 'wallet', updated_at = ? FROM (VALUES " + ", ".join(["(?, ?, ?)"] * len(periods)) + ") AS v WHERE p.id = v.column1"),
                    [stamp(now)] + [x for row in periods for x in row])
        bulk("integrations_event", "id, store_id, type, data, created_at, dispatched_at", events)
        bulk("ledger_transfer", "id, idempotency_key, debit_account_id, credit_account_id, amount, currency, two_phase, state, code, "
             "reference, created_at, resolved_at", transfers)
        cur.execute(q("UPDATE ledger_account AS a SET debits_posted = a.debits_posted + v.column2, credits_posted = a.credits_posted + v.column3 "
                      "FROM (VALUES " + ", ".join(["(?, ?, ?)"] * len(deltas)) + ") AS v WHERE a.id = v.column1"),
                    [x for k, (d, c) in deltas.items() for x in (k, d, c)])
        cur.execute("COMMIT")
        done += len(members)
    elapsed = time.perf_counter() - began
    conn.close()
    return done, elapsed


# --- One size, in its own process ------------------------------------------------------------


def child(spec: dict) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from stall.memberships import billing

    billing.GROUP = spec["group"] or billing.GROUP
    data_dir, url, n = Path(os.environ["STALL_DATA_DIR"]), spec["database_url"], spec["n"]
    began = time.perf_counter()
    env = template()
    copied, first = members_copy(url, data_dir, n, env)
    out = {"n": n, "setup": time.perf_counter() - began, "copied": copied}
    if spec.get("profile"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        out["task"] = profiler.runcall(task_run, first)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        out["task"] = task_run(first, statements=spec.get("statements", False), workers=spec.get("workers", 0))
    later = [(datetime_from(first) + timedelta(days=31 * k)).isoformat() for k in (1, 2, 3)]
    out["group"] = billing.GROUP
    out["baseline_grouped"] = baseline_grouped(url, data_dir, later[0], env, billing.GROUP)
    if not spec["no_single_baseline"]:
        out["baseline"] = baseline(url, data_dir, later[1], env)
    if spec["trace"]:
        out["memory"] = task_run(later[2], trace=True)
    return out


def datetime_from(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def size_run(n: int, args) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-renewals-"))
    env_vars = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env_vars.pop("DATABASE_URL", None)
    env_vars.pop("STALL_DEBUG", None)
    if args.database_url:
        env_vars["DATABASE_URL"] = args.database_url
        subprocess.run([str(BIN / "python"), "-c", (
            "import psycopg,sys; u=sys.argv[1].replace('postgres://','postgresql://',1); c=psycopg.connect(u, autocommit=True);"
            "c.execute('DROP SCHEMA public CASCADE'); c.execute('CREATE SCHEMA public')"), args.database_url], check=True)
    spec = {"n": n, "database_url": args.database_url, "trace": not args.no_tracemalloc, "profile": args.profile,
            "group": args.group, "no_single_baseline": args.no_single_baseline, "statements": args.statements, "workers": args.workers}
    try:
        result = subprocess.run([str(BIN / "python"), __file__, "--child", json.dumps(spec)], env=env_vars, check=True,
                                capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.profile:
        sys.stderr.write(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(out: dict) -> None:
    n, task = out["n"], out["task"]
    renewed = task["counts"].get("renewed", 0)
    rate = renewed / task["seconds"]
    done, grouped_seconds = out["baseline_grouped"]
    grouped_rate = done / grouped_seconds
    groups = task["groups"]
    mb = 1024 * 1024
    print(f"-- {n:,} due subscriptions (load average {os.getloadavg()[0]:.1f})")
    print(f"setup              {out['setup']:.1f} s ({out['copied']:.1f} s of plain-SQL copies)")
    print(f"task               {task['counts']} in {task['seconds']:.1f} s on {task['workers']} thread(s) "
          f"({task['cpu']:.1f} s of this process's CPU)")
    print(f"renewals/s         {rate:,.0f} (per CPU second of the process: {renewed / task['cpu']:,.0f})")
    print(f"groups             {groups['groups']} of {out['group']}: a transaction held p50 {groups['held_p50']:.0f} ms, p95 {groups['held_p95']:.0f} ms, "
          f"max {groups['held_max']:.0f} ms; the store balance's row p50 {groups['balance_p50']:.0f} ms, max {groups['balance_max']:.0f} ms")
    print(f"RSS growth         {task['rss_grown'] / mb:.1f} MiB (peak {task['rss_peak'] / mb:.0f} MiB)")
    if "statements" in task:
        waited = sum(s for _, _, s in task["statements"])
        print(f"statements         {waited:.1f} s waited on the database in all ({waited / task['seconds']:.0%} of the task):")
        for kind, count, seconds in task["statements"]:
            print(f"  {kind:<40} {count:>7,} × {seconds / count * 1000:7.2f} ms = {seconds:6.2f} s")
    if "memory" in out:
        print(f"heap peak          {out['memory']['heap_peak'] / mb:.1f} MiB (tracemalloc, a later period: {out['memory']['counts']})")
    print(f"baseline, grouped  {grouped_rate:,.0f} renewals/s (the task's statements in plain SQL, {done:,} renewals)")
    print(f"ratio              {rate / grouped_rate:.3f} of the grouped baseline")
    if "baseline" in out:
        single_done, single_seconds = out["baseline"]
        single_rate = single_done / single_seconds
        print(f"baseline, one by one {single_rate:,.0f} renewals/s (one transaction per renewal, {single_done:,} renewals)")
        print(f"ratio              {rate / single_rate:.3f} of the one-by-one baseline", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="due subscriptions")
    parser.add_argument("--small", type=int, default=10_000, help="a smaller size run first, to compare memory (0: none)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the third pass under tracemalloc")
    parser.add_argument("--profile", action="store_true", help="run the task under cProfile; its top entries go to stderr")
    parser.add_argument("--group", type=int, default=0, help="renewals per transaction (default: memberships.billing.GROUP)")
    parser.add_argument("--no-single-baseline", action="store_true", help="skip the one-transaction-per-renewal baseline")
    parser.add_argument("--statements", action="store_true",
                        help="time each statement kind and the commits (the database's share of the task; one thread)")
    parser.add_argument("--workers", type=int, default=0, help="the task's threads (default: STALL_RENEWAL_WORKERS)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"database           {'PostgreSQL' if args.database_url else 'SQLite'}", flush=True)
    for n in [s for s in (args.small, args.n) if s and s < args.n] + [args.n]:
        report(size_run(n, args))


if __name__ == "__main__":
    main()
