#!/usr/bin/env python
"""The campaign deadline task settling many held wallet pledges, with a raw-SQL baseline in the same run.

    .venv/bin/python bench/campaigns.py [-n 100000] [--small 10000] [--database-url postgres://…]

For each size (``--small``, then ``-n``; ``--small 0`` runs ``-n`` only) a fresh process and a fresh
database: a store and three live all-or-nothing campaigns made through the services, one backer
pledging 25¢ from the wallet to each through ``pledge_create`` (the template), then ``n`` copies of
that backer written with plain SQL — a buyer, a wallet account holding $1.00 of which 75¢ is
pending, and for each campaign a pending ledger transfer into its escrow and the pledge. Then, with
the deadlines moved into the past, in that process:

  task       ``campaign_settle`` (what the periodic ``campaigns_due_task`` runs per campaign) on the
             first campaign: decided succeeded, then every pledge collected ``collect.CHUNK`` at a
             time (pending transfers posted, wallets' and escrow's totals moved, one escrow → store
             balance transfer per chunk, the pledge.collected events). Pledges/s, and the peak of
             the process's RSS above where it started (sampled every 10 ms).
  baseline   the second campaign's pledges settled with the same writes in plain SQL from one
             connection, chunk by chunk (no Django, no ORM, no Python objects per pledge).
  memory     the third campaign settled under ``tracemalloc``: the peak of the Python heap above
             where it started. Flat in ``n`` means the task streams.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import raw_connection  # noqa: E402  (bench/checkout.py)
from renewals import RssPeak, _insert_many  # noqa: E402  (bench/renewals.py)

PLEDGE = 25
CAMPAIGNS = 3
FUNDED = 100
COPY_CHUNK = 5000


def template() -> dict:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from stall.accounts.services import buyer_for_email, user_create
    from stall.campaigns.services import campaign_create, campaign_publish, pledge_create
    from stall.stores.services import store_create
    from stall.wallets.services import wallet_top_up

    owner = user_create(email="bench@example.com", password="a long bench password")
    store = store_create(owner=owner, name="Bench", slug="bench")
    buyer = buyer_for_email(email="backer@example.com")
    wallet_top_up(buyer=buyer, amount=FUNDED * 5, currency="USD", payment_method="sandbox_visa")
    deadline = timezone.now() + timedelta(minutes=5)
    campaigns, pledges = [], []
    for i in range(CAMPAIGNS):
        campaign = campaign_publish(campaign=campaign_create(store=store, title=f"Bench {i}", goal=100, deadline=deadline))
        campaigns.append(campaign.pk)
        pledges.append(pledge_create(campaign=campaign, buyer=buyer, amount=PLEDGE, method="wallet").pk)
    connection.close()
    return {"store": store.pk, "campaigns": campaigns, "pledges": pledges, "buyer": buyer.pk}


def _row(cur, q, table: str, where: str, value) -> dict:
    cur.execute(q(f"SELECT * FROM {table} WHERE {where} = ?"), (value,))
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def backers_copy(database_url: str | None, data_dir: Path, n: int, env: dict) -> float:
    """Write ``n`` backers like the template's, each with a held 25¢ pledge to every campaign."""
    from stall.core.ids import new_id

    conn, q = raw_connection(database_url, data_dir)
    pg = bool(database_url)
    cur = conn.cursor()
    buyer = _row(cur, q, "accounts_buyer", "id", env["buyer"])
    pledges = [_row(cur, q, "campaigns_pledge", "id", p) for p in env["pledges"]]
    holds = [_row(cur, q, "ledger_transfer", "id", p["hold_transfer_id"]) for p in pledges]
    account = _row(cur, q, "ledger_account", "id", pledges[0]["wallet_account_id"])
    # The copies' wallets hold FUNDED each, paid in by the sandbox's clearing account: add as much to it.
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'processor_clearing' AND owner = 'sandbox' AND currency = 'USD'"))
    clearing = cur.fetchone()[0]
    began = time.perf_counter()
    for start in range(0, n, COPY_CHUNK):
        size = min(n, start + COPY_CHUNK) - start
        buyers, accounts, transfers, rows = [], [], [], []
        for i in range(start, start + size):
            b, a = new_id("byr"), new_id("acct")
            email = f"b{i}@example.com"
            buyers.append({**buyer, "id": b, "email": email})
            accounts.append({**account, "id": a, "owner": b, "credits_posted": FUNDED, "debits_posted": 0,
                             "debits_pending": PLEDGE * CAMPAIGNS, "credits_pending": 0})
            for pledge, hold in zip(pledges, holds):
                p, t = new_id("plg"), new_id("tr")
                transfers.append({**hold, "id": t, "idempotency_key": f"{p}:hold:0", "debit_account_id": a,
                                  "reference": p})
                rows.append({**pledge, "id": p, "buyer_id": b, "email": email, "hold_transfer_id": t,
                             "wallet_account_id": a})
        cur.execute("BEGIN")
        _insert_many(cur, q, "accounts_buyer", buyers, pg)
        _insert_many(cur, q, "ledger_account", accounts, pg)
        _insert_many(cur, q, "ledger_transfer", transfers, pg)
        _insert_many(cur, q, "campaigns_pledge", rows, pg)
        for hold in holds:
            cur.execute(q("UPDATE ledger_account SET credits_pending = credits_pending + ? WHERE id = ?"),
                        (PLEDGE * size, hold["credit_account_id"]))
        cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id = ?"), (FUNDED * size, clearing))
        cur.execute("COMMIT")
    # The deadlines pass (moved into the past rather than the clock forward: time-machine's patched
    # clock would be measured with the task, at every id made).
    cur.execute(q("UPDATE campaigns_campaign SET deadline = ? WHERE store_id = ?"),
                ("2020-01-01 00:00:00" if not pg else "2020-01-01T00:00:00+00:00", env["store"]))
    if pg:
        cur.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - began


def task_run(campaign_id: str, *, trace: bool = False) -> dict:
    import tracemalloc

    from django.db import connection

    from stall.campaigns.settlement import campaign_settle

    if trace:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    with RssPeak() as rss:
        began = time.perf_counter()
        counts = campaign_settle(campaign_id=campaign_id)
        elapsed = time.perf_counter() - began
    out = {"counts": counts, "seconds": elapsed, "rss_grown": rss.grown, "rss_peak": rss.peak}
    if trace:
        out["heap_peak"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    connection.close()
    return out


def baseline(database_url: str | None, data_dir: Path, campaign_id: str, env: dict, chunk: int) -> tuple[int, float]:
    """Collect the campaign's held pledges with the task's writes in plain SQL, ``chunk`` a transaction."""
    from stall.core.ids import new_id

    conn, q = raw_connection(database_url, data_dir)
    cur = conn.cursor()
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'store_pending' AND owner LIKE ?"), (campaign_id + "%",))
    escrow = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'store_balance' AND owner LIKE ?"), (env["store"] + "%",))
    found = cur.fetchone()
    if found is None:
        balance = new_id("acct")
        cur.execute(q("INSERT INTO ledger_account (id, kind, owner, currency, debits_posted, credits_posted, debits_pending, "
                      "credits_pending, debits_must_not_exceed_credits, debit_limit, created_at) VALUES (?,?,?,?,0,0,0,0,?,NULL,?)"),
                    (balance, "store_balance", env["store"] + ":bench", "USD", False, "2026-01-01 00:00:00"))
    else:
        balance = found[0]
    now = "2026-01-01 00:00:00.000000"
    done = 0
    if os.environ.get("BENCH_TRACE"):
        cur = _Timed(cur)
    began = time.perf_counter()
    while True:
        cur.execute("BEGIN")
        cur.execute(q("SELECT id FROM campaigns_pledge WHERE campaign_id = ? AND status = 'held' ORDER BY id LIMIT ?"),
                    (campaign_id, chunk))
        ids = [r[0] for r in cur.fetchall()]
        if not ids:
            cur.execute("COMMIT")
            break
        cur.execute(q(f"UPDATE campaigns_pledge SET status = 'collected', collected_at = ?, updated_at = ? WHERE id IN "
                      f"({', '.join(['?'] * len(ids))}) AND status = 'held' "
                      "RETURNING id, hold_transfer_id, wallet_account_id, amount, email"),
                    (now, now, *ids))
        rows = cur.fetchall()
        marks = ", ".join(["?"] * len(rows))
        cur.execute(q(f"UPDATE ledger_transfer SET state = 'posted', resolved_at = ? WHERE id IN ({marks}) AND state = 'pending'"),
                    [now, *[r[1] for r in rows]])
        deltas: dict[str, int] = {}
        for r in rows:
            deltas[r[2]] = deltas.get(r[2], 0) + r[3]
        total = sum(deltas.values())
        cur.executemany(q("UPDATE ledger_account SET debits_pending = debits_pending - ?, debits_posted = debits_posted + ? "
                          "WHERE id = ?"), [(amount, amount, account_id) for account_id, amount in deltas.items()])
        cur.execute(q("UPDATE ledger_account SET credits_pending = credits_pending - ?, credits_posted = credits_posted + ?, "
                      "debits_posted = debits_posted + ? WHERE id = ?"), (total, total, total, escrow))
        cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id = ?"), (total, balance))
        cur.execute(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, currency, "
                      "two_phase, state, code, reference, created_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"),
                    (new_id("tr"), f"bench:{rows[0][0]}", escrow, balance, total, "USD", False, "posted", "pledge_collected",
                     campaign_id, now, now))
        events = []
        for r in rows:
            data = json.dumps({"object": {"id": r[0], "object": "pledge", "campaign": campaign_id, "email": r[4],
                                          "amount": {"amount": r[3], "currency": "USD"}, "status": "collected"}})
            events += [new_id("evt"), env["store"], "pledge.collected", data, now, now]
        cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at, dispatched_at) VALUES "
                      + ", ".join(["(?,?,?,?,?,?)"] * len(rows))), events)
        cur.execute("COMMIT")
        done += len(rows)
        if os.environ.get("BENCH_TRACE"):
            sys.stderr.write(f"chunk {len(rows)} at {time.perf_counter() - began:.3f}\n")
    elapsed = time.perf_counter() - began
    conn.close()
    return done, elapsed


class _Timed:
    """A cursor that adds up the time of each statement by its first words (BENCH_TRACE=1)."""

    def __init__(self, cur):
        self.cur, self.spent = cur, {}

    def execute(self, sql, params=()):
        began = time.perf_counter()
        self.cur.execute(sql, params)
        key = " ".join(sql.split()[:3])
        self.spent[key] = self.spent.get(key, 0) + time.perf_counter() - began
        if sql == "COMMIT":
            sys.stderr.write(f"{ {k: round(v, 3) for k, v in self.spent.items()} }\n")

    def executemany(self, sql, params):
        began = time.perf_counter()
        self.cur.executemany(sql, params)
        key = " ".join(sql.split()[:3])
        self.spent[key] = self.spent.get(key, 0) + time.perf_counter() - began

    def __getattr__(self, name):
        return getattr(self.cur, name)


def ledger_check(database_url: str | None, data_dir: Path, env: dict) -> dict:
    """After the run: every transfer's amounts add up on the accounts (sum of credits = sum of debits)."""
    conn, q = raw_connection(database_url, data_dir)
    cur = conn.cursor()
    cur.execute("SELECT SUM(debits_posted), SUM(credits_posted), SUM(debits_pending), SUM(credits_pending) FROM ledger_account")
    dp, cp, dpe, cpe = cur.fetchone()
    cur.execute(q("SELECT status, COUNT(*) FROM campaigns_pledge GROUP BY status"))
    statuses = dict(cur.fetchall())
    conn.close()
    return {"posted_balanced": dp == cp, "pending_balanced": dpe == cpe, "statuses": statuses}


def child(spec: dict) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from stall.campaigns.collect import CHUNK

    data_dir, url, n = Path(os.environ["STALL_DATA_DIR"]), spec["database_url"], spec["n"]
    began = time.perf_counter()
    env = template()
    copied = backers_copy(url, data_dir, n, env)
    out = {"n": n, "setup": time.perf_counter() - began, "copied": copied, "chunk": CHUNK}
    first, second, third = env["campaigns"]
    out["task"] = task_run(first)
    out["baseline"] = baseline(url, data_dir, second, env, CHUNK)
    out["memory"] = task_run(third, trace=True)
    out["check"] = ledger_check(url, data_dir, env)
    return out


def size_run(n: int, args) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-campaigns-"))
    env_vars = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env_vars.pop("DATABASE_URL", None)
    env_vars.pop("STALL_DEBUG", None)
    if args.database_url:
        env_vars["DATABASE_URL"] = args.database_url
        subprocess.run([str(BIN / "python"), "-c", (
            "import psycopg,sys; u=sys.argv[1].replace('postgres://','postgresql://',1); c=psycopg.connect(u, autocommit=True);"
            "c.execute('DROP SCHEMA public CASCADE'); c.execute('CREATE SCHEMA public')"), args.database_url], check=True)
    spec = {"n": n, "database_url": args.database_url}
    try:
        result = subprocess.run([str(BIN / "python"), __file__, "--child", json.dumps(spec)], env=env_vars, check=True,
                                capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(out: dict) -> None:
    n, task = out["n"], out["task"]
    settled = task["counts"]["collected"]
    rate = settled / task["seconds"]
    done, raw_seconds = out["baseline"]
    raw_rate = done / raw_seconds
    mb = 1024 * 1024
    print(f"-- {n:,} held wallet pledges per campaign (chunk {out['chunk']:,})")
    print(f"setup              {out['setup']:.1f} s ({out['copied']:.1f} s of plain-SQL copies)")
    print(f"task               {task['counts']} in {task['seconds']:.2f} s")
    print(f"pledges/s          {rate:,.0f}")
    print(f"RSS growth         {task['rss_grown'] / mb:.1f} MiB (peak {task['rss_peak'] / mb:.0f} MiB)")
    print(f"heap peak          {out['memory']['heap_peak'] / mb:.1f} MiB (tracemalloc, third campaign: "
          f"{out['memory']['counts']['collected']:,} in {out['memory']['seconds']:.1f} s)")
    print(f"baseline raw SQL   {raw_rate:,.0f} pledges/s ({done:,} pledges, same writes, one connection)")
    print(f"ratio              {rate / raw_rate:.3f} of the raw baseline")
    print(f"ledger             {out['check']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="held pledges per campaign")
    parser.add_argument("--small", type=int, default=10_000, help="a smaller size run first, to compare memory (0: none)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
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
