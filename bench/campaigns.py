#!/usr/bin/env python
"""The campaign deadline task settling many held wallet pledges, with a raw-SQL baseline in the same run.

    .venv/bin/python bench/campaigns.py [-n 100000] [--small 10000] [--database-url postgres://…]

For each size (``--small``, then ``-n``; ``--small 0`` runs ``-n`` only) a fresh process and a fresh
database: a store and three live all-or-nothing campaigns made through the services, one backer
pledging 25¢ from the wallet to each through ``pledge_create`` (the template), then ``n`` copies of
that backer written with plain SQL — a buyer, a wallet holding $1.00 of which 75¢ is pending, its
fee pool owing the 33¢ a $1.00 card top-up costs, and for each campaign a pending ledger transfer
into its escrow and the pledge. The platform takes 2.5% (``STALL_PLATFORM_FEE_BPS=250``), so a
collected pledge pays both fees as a wallet spend does. Then, with the deadlines moved into the
past, in that process:

  task       ``campaign_settle`` (what the periodic ``campaigns_due_task`` runs per campaign) on the
             first campaign: decided succeeded, then every pledge collected ``collect.CHUNK`` at a
             time (pending transfers posted, each pledge's fee share to its wallet's pool, the
             platform's fee and the escrow → store balance transfer per chunk, every account's
             totals moved, the pledge.collected events). Pledges/s, and the peak of the process's
             RSS above where it started (sampled every 10 ms).
  baseline   the second campaign's pledges settled with the same writes in plain SQL from one
             connection, chunk by chunk, each write one set-based statement in the form the
             database runs fastest (PostgreSQL: arrays and ``unnest``; SQLite: ``VALUES``), no
             Django, no ORM, no Python object per pledge beyond its row tuple.
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
FEE = 33  # the card fee of a $1.00 top-up: 2.9% + 30¢
PLATFORM_BPS = 250
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
    wallet = _row(cur, q, "wallets_wallet", "account_id", account["id"])
    pool = _row(cur, q, "ledger_account", "owner", wallet["id"])
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'processor_fees' AND owner = 'sandbox' AND currency = 'USD'"))
    fees_account = cur.fetchone()[0]
    # The copies' wallets hold FUNDED each, paid in by the sandbox's clearing account: add as much to it.
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'processor_clearing' AND owner = 'sandbox' AND currency = 'USD'"))
    clearing = cur.fetchone()[0]
    began = time.perf_counter()
    for start in range(0, n, COPY_CHUNK):
        size = min(n, start + COPY_CHUNK) - start
        buyers, accounts, wallets, transfers, rows = [], [], [], [], []
        for i in range(start, start + size):
            b, a, w = new_id("byr"), new_id("acct"), new_id("wal")
            email = f"b{i}@example.com"
            buyers.append({**buyer, "id": b, "email": email})
            accounts.append({**account, "id": a, "owner": b, "credits_posted": FUNDED, "debits_posted": 0,
                             "debits_pending": PLEDGE * CAMPAIGNS, "credits_pending": 0})
            accounts.append({**pool, "id": new_id("acct"), "owner": w, "debits_posted": FEE, "credits_posted": 0})
            wallets.append({**wallet, "id": w, "buyer_id": b, "account_id": a})
            for pledge, hold in zip(pledges, holds):
                p, t = new_id("plg"), new_id("tr")
                transfers.append({**hold, "id": t, "idempotency_key": f"{p}:hold:0", "debit_account_id": a,
                                  "reference": p})
                rows.append({**pledge, "id": p, "buyer_id": b, "email": email, "hold_transfer_id": t,
                             "wallet_account_id": a})
        cur.execute("BEGIN")
        _insert_many(cur, q, "accounts_buyer", buyers, pg)
        _insert_many(cur, q, "ledger_account", accounts, pg)
        _insert_many(cur, q, "wallets_wallet", wallets, pg)
        _insert_many(cur, q, "ledger_transfer", transfers, pg)
        _insert_many(cur, q, "campaigns_pledge", rows, pg)
        for hold in holds:
            cur.execute(q("UPDATE ledger_account SET credits_pending = credits_pending + ? WHERE id = ?"),
                        (PLEDGE * size, hold["credit_account_id"]))
        cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id = ?"), (FUNDED * size, clearing))
        cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id = ?"), (FEE * size, fees_account))
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
    from stall.core.ids import new_ids

    conn, q = raw_connection(database_url, data_dir)
    pg = bool(database_url)
    cur = conn.cursor()
    cur.execute(q("SELECT id FROM ledger_account WHERE kind = 'store_pending' AND owner LIKE ?"), (campaign_id + "%",))
    escrow = cur.fetchone()[0]
    ids = {}
    for kind, owner in (("store_balance", env["store"]), ("platform_fees", "platform")):
        cur.execute(q("SELECT id FROM ledger_account WHERE kind = ? AND owner = ?"), (kind, owner))
        found = cur.fetchone()
        if found is None:
            ids[kind] = new_ids("acct", 1)[0]
            cur.execute(q("INSERT INTO ledger_account (id, kind, owner, currency, debits_posted, credits_posted, "
                          "debits_pending, credits_pending, debits_must_not_exceed_credits, debit_limit, created_at) "
                          "VALUES (?,?,?,?,0,0,0,0,?,NULL,?)"),
                        (ids[kind], kind, owner, "USD", False, "2026-01-01 00:00:00"))
        else:
            ids[kind] = found[0]
    balance, platform = ids["store_balance"], ids["platform_fees"]
    now = "2026-01-01 00:00:00.000000"

    # Each many-row write as one statement: on PostgreSQL one array per column (unnest), on SQLite VALUES.
    def many(columns: list[tuple[str, str]], rows: list[tuple]) -> tuple[str, list]:
        names = ", ".join(c for c, _ in columns)
        if pg:
            return (f"unnest({', '.join(f'%s::{t}[]' for _, t in columns)}) AS v({names})",
                    [list(col) for col in zip(*rows)])
        marks = "(" + ", ".join("?" * len(columns)) + ")"
        named = ", ".join(f"column{i} AS {c}" for i, (c, _) in enumerate(columns, 1))
        return f"(SELECT {named} FROM (VALUES {', '.join([marks] * len(rows))})) AS v", [x for r in rows for x in r]

    def in_ids(column: str, values: list[str]) -> tuple[str, list]:
        if pg:
            return f"{column} = ANY(%s)", [values]
        return f"{column} IN ({', '.join('?' * len(values))})", values

    done = 0
    if os.environ.get("BENCH_TRACE"):
        cur = _Timed(cur)
    began = time.perf_counter()
    after = ""  # keyset, as the task reads its chunks: never re-reading the pledges settled
    while True:
        cur.execute("BEGIN")
        cur.execute(q("SELECT id FROM campaigns_pledge WHERE campaign_id = ? AND status = 'held' AND id > ? "
                      "ORDER BY id LIMIT ?"), (campaign_id, after, chunk))
        pledge_ids = [r[0] for r in cur.fetchall()]
        if not pledge_ids:
            cur.execute("COMMIT")
            break
        after = pledge_ids[-1]
        which, params = in_ids("id", pledge_ids)
        cur.execute(q(f"UPDATE campaigns_pledge SET status = 'collected', collected_at = ?, updated_at = ? WHERE {which} "
                      "AND status = 'held' RETURNING id, hold_transfer_id, wallet_account_id, amount, email"),
                    [now, now, *params])
        rows = sorted(cur.fetchall())
        which, params = in_ids("id", [r[1] for r in rows])
        cur.execute(q(f"UPDATE ledger_transfer SET state = 'posted', resolved_at = ? WHERE {which} AND state = 'pending' "
                      "RETURNING debit_account_id, amount"), [now, *params])
        resolved = cur.fetchall()
        which, params = in_ids("a.id", sorted({r[2] for r in rows}))
        cur.execute(q("SELECT a.id, a.credits_posted - a.debits_posted, p.id, p.debits_posted - p.credits_posted "
                      "FROM ledger_account a CROSS JOIN wallets_wallet w CROSS JOIN ledger_account p "
                      f"WHERE {which} AND w.account_id = a.id AND p.kind = 'fee_pool' AND p.owner = w.id "
                      "AND p.currency = w.currency ORDER BY a.id" + (" FOR UPDATE OF a, p" if pg else "")), params)
        wallets = {r[0]: [r[1], r[2], r[3]] for r in cur.fetchall()}
        deltas: dict[str, list[int]] = {}
        for debit_id, amount in resolved:
            d = deltas.setdefault(debit_id, [0, 0, 0, 0])
            d[0] -= amount
            d[1] += amount
        total = sum(r[3] for r in rows)
        platform_fee = sum((r[3] * PLATFORM_BPS * 2 + 10_000) // 20_000 for r in rows)  # half up
        transfer_ids = iter(new_ids("tr", len(rows) + 2))
        transfers = [(next(transfer_ids), f"bench:{rows[0][0]}", escrow, balance, total, "pledge_collected", campaign_id),
                     (next(transfer_ids), f"bench:{rows[0][0]}:platform", balance, platform, platform_fee,
                      "platform_fee", campaign_id)]
        fees = 0
        for r in rows:
            wallet = wallets[r[2]]
            left, pool, owed = wallet
            fee = owed if left <= r[3] else (2 * owed * r[3] + left) // (2 * left)
            wallet[0], wallet[2] = left - r[3], owed - fee
            if fee:
                fees += fee
                deltas.setdefault(pool, [0, 0, 0, 0])[3] += fee
                transfers.append((next(transfer_ids), f"{r[0]}:processor_fee", balance, pool, fee, "processor_fee", r[0]))
        deltas[escrow] = [0, total, -total, total]
        deltas[balance] = [0, fees + platform_fee, 0, total]
        deltas[platform] = [0, 0, 0, platform_fee]
        source, params = many([("id", "text"), ("idempotency_key", "text"), ("debit_account_id", "text"),
                               ("credit_account_id", "text"), ("amount", "bigint"), ("code", "text"),
                               ("reference", "text")], transfers)
        cur.execute(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, "
                      "currency, two_phase, state, code, reference, created_at, resolved_at) SELECT id, idempotency_key, "
                      f"debit_account_id, credit_account_id, amount, 'USD', ?, 'posted', code, reference, ?, ? FROM {source}"),
                    [False, now, now, *params])
        source, params = many([("id", "text"), ("dpe", "bigint"), ("dpo", "bigint"), ("cpe", "bigint"), ("cpo", "bigint")],
                              sorted((k, *v) for k, v in deltas.items()))
        cur.execute(q("UPDATE ledger_account SET debits_pending = ledger_account.debits_pending + v.dpe, "
                      "debits_posted = ledger_account.debits_posted + v.dpo, credits_pending = ledger_account.credits_pending "
                      f"+ v.cpe, credits_posted = ledger_account.credits_posted + v.cpo FROM {source} "
                      "WHERE ledger_account.id = v.id"), params)
        event_ids = new_ids("evt", len(rows))
        events = [(event_id, json.dumps({"object": {"id": r[0], "object": "pledge", "campaign": campaign_id, "email": r[4],
                                                    "amount": {"amount": r[3], "currency": "USD"}, "status": "collected"}}))
                  for event_id, r in zip(event_ids, rows)]
        source, params = many([("id", "text"), ("data", "text")], events)
        cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at, dispatched_at) SELECT v.id, ?, "
                      f"'pledge.collected', {'v.data::jsonb' if pg else 'v.data'}, ?, ? FROM {source}"),
                    [env["store"], now, now, *params])
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
    env_vars = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
                "STALL_PLATFORM_FEE_BPS": str(PLATFORM_BPS)}
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
