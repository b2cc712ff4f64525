#!/usr/bin/env python
"""Concurrent one-click wallet spends over HTTP against `stall serve`, with a raw-SQL baseline in the same run.

    .venv/bin/python bench/unlock.py [--mode unlock|buy|charge] [-n 2000] [-c 32] [--workers 2] [--threads 4]
                                     [--database-url postgres://…] [--preload 1000000]

Setup (a script run with the bench's STALL_DATA_DIR, before the server starts): a store, 25¢ items
and one buyer per client with a topped-up wallet. Each client signs its buyer in through the
magic-link URL (http.client and a cookie jar: the session and CSRF cookies), then spends, one
spend after the other, its share of the ``-n`` spends. What one spend is:

  unlock   POST /s/<store>/posts/<post>/unlock/ method=wallet: a reader unlocks a 25¢ post with
           one click (one request, answered by a redirect to the post, not followed)
  buy      POST /buy/<product>/ with the email, then POST /wallet/pay/<checkout>/ with
           payment_method=wallet: the product page's buy button, then "Pay from wallet" (two requests)
  charge   POST /api/v1/charges with an Idempotency-Key: the store charges the buyer's allowance
           (one request, API key, no cookies)

Every spend ends in a paid order: payment, order, entitlement, the order.paid event and three
ledger transfers (wallet → clearing, clearing → store, the store's share of the top-up fee → the
wallet's fee pool) with their account updates; buy adds the checkout the first request makes. The
baseline writes those rows with plain SQL, one transaction per spend, from one connection (the
charge mode adds the charge, its event and the API's idempotency record). ``--preload N`` first
writes N orders of history (with their transfers), to show the rate does not fall as history grows. The ratio says what share of what the database alone
does here the whole stack (HTTP, sessions, CSRF, Django, the ORM, the services and their locks)
delivers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import NO_LIMITS, free_port, percentile, raw_connection, wait_ready  # noqa: E402  (bench/checkout.py)

PRICE = 25
WARM_UP = 3  # spends per client before the clock starts


# --- Setup (runs in a subprocess with the bench's data directory) ----------------------------


def setup(spec: dict) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from stall.accounts.services import buyer_for_email, buyer_magic_link, user_create
    from stall.catalog.models import ProductStatus
    from stall.catalog.services import product_create
    from stall.integrations.services import api_key_create
    from stall.stores.services import store_create
    from stall.wallets.allowances import allowance_grant, charge_product_for
    from stall.wallets.services import wallet_top_up

    mode, clients, per_client = spec["mode"], spec["clients"], spec["per_client"]
    owner = user_create(email="bench@example.com", password="a long bench password")
    store = store_create(owner=owner, name="Bench", slug="bench")
    out = {"store_id": store.pk, "store_slug": store.slug, "buyers": []}
    if mode == "unlock":
        from stall.content.services import post_create

        posts = [
            post_create(store=store, title=f"Post {i}", body="A preview.\n\n<!-- more -->\n\nThe rest.", amount=PRICE,
                        status=ProductStatus.PUBLISHED)
            for i in range(per_client)
        ]
        out["posts"] = [p.product.slug for p in posts]
        out["product_ids"] = [p.product_id for p in posts]
    elif mode == "buy":
        product = product_create(store=store, name="A 25¢ sample", amount=PRICE, status=ProductStatus.PUBLISHED,
                                 files=[ContentFile(b"a bench download\n", name="sample.txt")])
        out["product_ids"] = [product.pk]
    else:
        _, out["api_key"] = api_key_create(store=store, name="bench")
        out["product_ids"] = [charge_product_for(store=store).pk]
    need = per_client * PRICE
    for i in range(clients):
        buyer = buyer_for_email(email=f"reader{i}@example.com")
        left = need
        while left > 0:  # top-ups between the operator's limits ($5 to $200 by default)
            amount = min(max(left, 500), 20000)
            wallet_top_up(buyer=buyer, amount=amount, currency="USD", payment_method="sandbox_visa")
            left -= amount
        entry = {"email": buyer.email, "buyer_id": buyer.pk, "sign_in": buyer_magic_link(email=buyer.email)}
        if mode == "charge":
            allowance_grant(buyer=buyer, store=store, amount=need, period="day")
            from stall.accounts.models import Customer

            entry["customer"] = Customer.objects.get(store=store, email=buyer.email).pk
        out["buyers"].append(entry)
    return out


# --- HTTP clients ----------------------------------------------------------------------------


class Browser:
    """One buyer's connection with the cookies a browser would keep (session and CSRF only)."""

    KEEP = ("sessionid", "csrftoken")

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None,
                json_body: dict | None = None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        elif json_body is not None:
            body = json.dumps(json_body)
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError) as exc:
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                # A kept-alive connection the server had closed: sent again once on a new one, as
                # browsers do (unlocks and API charges with a key are safe to repeat).
                stale = isinstance(exc, (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected))
                if attempt == 2 or not stale:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                # The messages cookie is left out: a client that does not follow the redirect never
                # reads its messages, and keeping them would grow the cookie with every spend.
                if name in self.KEEP:
                    self.cookies[name] = morsel.value
        return response.status, response.headers, data

    def sign_in(self, link: str, store_slug: str) -> None:
        parts = urlsplit(link)
        status, headers, _ = self.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"sign-in failed: {status}")
        status, _, _ = self.request("GET", f"/s/{store_slug}/allowance/")  # any page with a form sets the CSRF cookie
        if status != 200 or "csrftoken" not in self.cookies:
            raise SystemExit(f"no CSRF cookie: {status}")


def spend_once(mode: str, browser: Browser, env: dict, buyer: dict, index: int) -> None:
    if mode == "unlock":
        path = f"/s/{env['store_slug']}/posts/{env['posts'][index]}/unlock/"
        status, headers, data = browser.request("POST", path, {"method": "wallet"})
        if status != 302 or "/posts/" not in headers.get("Location", ""):
            raise RuntimeError(f"unlock {status} {data[:200]!r}")
    elif mode == "buy":
        status, headers, data = browser.request("POST", f"/buy/{env['product_ids'][0]}/", {"email": buyer["email"]})
        location = headers.get("Location", "")
        if status != 302 or "/checkout/" not in location:
            raise RuntimeError(f"buy {status} {data[:200]!r}")
        checkout_id = location.rstrip("/").split("/")[-1]
        status, headers, data = browser.request("POST", f"/wallet/pay/{checkout_id}/", {"payment_method": "wallet"})
        if status != 302 or not headers.get("Location", "").endswith("/complete/"):
            raise RuntimeError(f"pay {status} {headers.get('Location')} {data[:200]!r}")
    else:
        body = {"customer": buyer["customer"], "amount": PRICE, "currency": "USD", "description": f"call {index}"}
        headers = {"Authorization": f"Bearer {env['api_key']}", "Idempotency-Key": f"{buyer['customer']}-{index}"}
        status, _, data = browser.request("POST", "/api/v1/charges", headers=headers, json_body=body)
        if status != 200:
            raise RuntimeError(f"charge {status} {data[:200]!r}")


def run_clients(mode: str, port: int, env: dict, start: int, count: int, browsers: list[Browser]):
    """Each client spends ``count`` times (items ``start`` … ``start + count - 1``), one after the other."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(len(browsers))

    def worker(browser: Browser, buyer: dict):
        nonlocal errors
        barrier.wait()
        for index in range(start, start + count):
            began = time.perf_counter()
            try:
                spend_once(mode, browser, env, buyer, index)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors += 1
                    if errors <= 3:
                        print("error:", exc, file=sys.stderr)
                continue
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(b, buyer)) for b, buyer in zip(browsers, env["buyers"])]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, latencies, errors


# --- The baseline: the same rows with plain SQL ----------------------------------------------


def run_baseline(database_url: str | None, data_dir: Path, n: int, env: dict, mode: str) -> float:
    from stall.core.ids import new_id  # importable without Django settings

    conn, q = raw_connection(database_url, data_dir)
    cur = conn.cursor()

    def account(kind: str, owner: str) -> str:
        cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=? AND currency='USD'"), (kind, owner))
        row = cur.fetchone()
        if row is None:
            raise SystemExit(f"no {kind} account for {owner}")
        return row[0]

    store_id, product_id = env["store_id"], env["product_ids"][0]
    buyer = env["buyers"][0]
    cur.execute(q("SELECT id FROM wallets_wallet WHERE buyer_id=?"), (buyer["buyer_id"],))
    wallet_id = cur.fetchone()[0]
    wallet, pool = account("buyer_wallet", buyer["buyer_id"]), account("fee_pool", wallet_id)
    clearing, balance = account("processor_clearing", "wallet"), account("store_balance", store_id)
    cur.execute(q("SELECT id FROM audience_customer WHERE store_id=? AND email=?"), (store_id, buyer["email"]))
    customer = cur.fetchone()[0]
    allowance = None
    if mode == "charge":
        cur.execute(q("SELECT id FROM wallets_allowance WHERE buyer_id=? AND revoked_at IS NULL"), (buyer["buyer_id"],))
        allowance = cur.fetchone()[0]
    # Give the baseline's buyer the money it spends, outside the clock (a top-up, as a transfer).
    cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id=?"), (n * PRICE, wallet))
    cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id=?"), (n * PRICE, account("processor_clearing", "sandbox")))
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    email, fee = buyer["email"], 1
    began = time.perf_counter()
    for i in range(n):
        chk, pay, order, ent = (new_id(p) for p in ("chk", "pay", "ord", "ent"))
        if mode == "buy":  # the checkout is made by the first request, in its own transaction
            cur.execute(q("INSERT INTO checkout_checkout (id, store_id, status, email, currency, amount_subtotal, amount_total, expires_at, created_at, last_error_code, last_error_message) VALUES (?,?,?,?,?,?,?,?,?,?,?)"),
                        (chk, store_id, "open", email, "USD", PRICE, PRICE, now, now, "", ""))
            cur.execute(q("INSERT INTO checkout_checkoutline (checkout_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), (chk, product_id, "p", PRICE, 1))
        else:
            chk = None  # an unlock or a charge needs no checkout
        cur.execute("BEGIN")
        cur.execute(q("INSERT INTO payments_payment (id, purpose, store_id, checkout_id, buyer_id, rail, payment_method, status, amount, currency, fee, amount_refunded, rail_reference, failure_code, failure_message, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                    (pay, "checkout", store_id, chk, buyer["buyer_id"], "wallet", "wallet", "succeeded", PRICE, "USD", fee, 0, wallet_id, "", "", now, now))
        cur.execute(q("INSERT INTO orders_order (id, store_id, checkout_id, payment_id, customer_id, email, status, currency, amount_total, amount_refunded, fee, fee_refunded, platform_fee, platform_fee_refunded, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                    (order, store_id, chk, pay, customer, email, "paid", "USD", PRICE, 0, fee, 0, 0, 0, now))
        cur.execute(q("INSERT INTO orders_orderline (order_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), (order, product_id, "p", PRICE, 1))
        cur.execute(q("INSERT INTO orders_entitlement (id, store_id, order_id, product_id, email, download_limit, created_at) VALUES (?,?,?,?,?,?,?)"),
                    (ent, store_id, order, product_id, email, 10, now))
        if chk is not None:
            cur.execute(q("UPDATE checkout_checkout SET status=?, completed_at=? WHERE id=?"), ("complete", now, chk))
        for key, debit, credit, amount, code in (
            (f"{pay}:wallet_spend", wallet, clearing, PRICE, "wallet_spend"), (f"{pay}:sale", clearing, balance, PRICE, "sale"),
            (f"{pay}:processor_fee", balance, pool, fee, "processor_fee"),
        ):
            cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id=?"), (amount, debit))
            cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id=?"), (amount, credit))
            cur.execute(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, currency, two_phase, state, code, reference, created_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"),
                        (new_id("tr"), key, debit, credit, amount, "USD", False, "posted", code, order, now, now))
        cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at) VALUES (?,?,?,?,?)"),
                    (new_id("evt"), store_id, "order.paid", json.dumps({"object": {"id": order, "amount_total": PRICE}}), now))
        if mode == "charge":
            charge = new_id("ch")
            cur.execute(q("INSERT INTO wallets_charge (id, store_id, allowance_id, order_id, amount, currency, description, created_at, idempotency_key, request_hash) VALUES (?,?,?,?,?,?,?,?,?,?)"),
                        (charge, store_id, allowance, order, PRICE, "USD", f"call {i}", now, f"raw-{i}", "h" * 64))
            cur.execute(q("INSERT INTO integrations_event (id, store_id, type, data, created_at) VALUES (?,?,?,?,?)"),
                        (new_id("evt"), store_id, "charge.succeeded", json.dumps({"object": {"id": charge, "amount": PRICE}}), now))
            # The buyer's running totals for the allowance (wallets.ChargeTally).
            cur.execute(q("INSERT INTO wallets_chargetally (buyer_id, store_id, currency, day_start, day_amount, week_start, week_amount, month_start, month_amount) VALUES (?,?,?,?,?,?,?,?,?) "
                          "ON CONFLICT (buyer_id, store_id, currency) DO UPDATE SET day_amount = wallets_chargetally.day_amount + excluded.day_amount, "
                          "week_amount = wallets_chargetally.week_amount + excluded.week_amount, month_amount = wallets_chargetally.month_amount + excluded.month_amount"),
                        (buyer["buyer_id"], store_id, "USD", now[:10], PRICE, now[:10], PRICE, now[:10], PRICE))
            for scope in ("api",):  # the API's Idempotency-Key record (the charge row keeps its own)
                cur.execute(q("INSERT INTO core_idempotencyrecord (scope, key, request_hash, status_code, content_type, body, created_at) VALUES (?,?,?,?,?,?,?)"),
                            (scope, f"raw-{i}", "h" * 64, None, "", None, now))
                cur.execute(q("UPDATE core_idempotencyrecord SET status_code=?, content_type=?, body=? WHERE scope=? AND key=?"),
                            (200, "application/json", b"{}", scope, f"raw-{i}"))
        cur.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed


# --- History: a million orders before the clock starts ---------------------------------------


def preload(database_url: str | None, data_dir: Path, n: int, env: dict) -> float:
    """Write ``n`` orders of history with plain SQL (other readers' paid orders of the bench's own
    items: a payment, the order and its line, an entitlement, the sale's transfer and its event),
    and add them to the accounts' totals, so the ledger still balances. Returns the seconds taken.

    The history is the past year's, in weekly-ish steps: its rows and their time-ordered ids are
    dated then, as a real store's would be, so what reads recent rows (the creator's sale emails,
    the dashboard's figures) sees the history as old, not as a million sales made this minute."""
    from datetime import UTC, datetime, timedelta

    from stall.core.ids import id_floor, new_id

    conn, q = raw_connection(database_url, data_dir)
    cur = conn.cursor()
    store_id, products = env["store_id"], env["product_ids"]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=? AND currency='USD'"), ("processor_clearing", "sandbox"))
    clearing = cur.fetchone()[0]
    cur.execute(q("SELECT id FROM ledger_account WHERE kind=? AND owner=? AND currency='USD'"), ("store_balance", store_id))
    row = cur.fetchone()
    if row is None:  # the store has sold nothing yet: its balance account is opened here
        balance = new_id("acct")
        cur.execute(q("INSERT INTO ledger_account (id, kind, owner, currency, debits_posted, credits_posted, debits_pending, credits_pending, debits_must_not_exceed_credits, debit_limit, created_at) VALUES (?,?,?,?,0,0,0,0,?,NULL,?)"),
                    (balance, "store_balance", store_id, "USD", False, time.strftime("%Y-%m-%d %H:%M:%S")))
    else:
        balance = row[0]
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    cur.execute(q("SELECT id FROM audience_customer WHERE store_id=? LIMIT 1"), (store_id,))
    row = cur.fetchone()
    if row is None:  # nobody has bought here yet: the history's orders get a customer of their own
        customer = new_id("cus")
        cur.execute(q("INSERT INTO audience_customer (id, store_id, email, name, created_at) VALUES (?,?,?,?,?)"),
                    (customer, store_id, "history@example.com", "", now))
    else:
        customer = row[0]
    began = time.perf_counter()
    chunk = 20_000
    year_ago, steps = datetime.now(UTC) - timedelta(days=365), max(1, math.ceil(n / chunk))
    for start in range(0, n, chunk):
        payments, orders, lines, entitlements, transfers, events = [], [], [], [], [], []
        moment = year_ago + timedelta(days=365) * (start // chunk) / steps
        now = moment.strftime("%Y-%m-%d %H:%M:%S")
        heads = {prefix: id_floor(prefix, moment)[:-16] for prefix in ("pay", "ord", "ent", "tr", "evt")}

        def dated_id(prefix, heads=heads):  # an id made at ``moment``: its time, then new_id's random part
            return heads[prefix] + new_id(prefix)[-16:]

        for i in range(start, min(n, start + chunk)):
            pay, order, email, product = dated_id("pay"), dated_id("ord"), f"history{i}@example.com", products[i % len(products)]
            payments.append((pay, "checkout", store_id, None, None, "sandbox", "sandbox_visa", "succeeded", PRICE, "USD", 0, 0, "", "", "", now, now))
            orders.append((order, store_id, None, pay, customer, email, "paid", "USD", PRICE, 0, 0, 0, 0, 0, now))
            lines.append((order, product, "history", PRICE, 1))
            entitlements.append((dated_id("ent"), store_id, order, product, email, 10, now))
            transfers.append((dated_id("tr"), f"{pay}:sale", clearing, balance, PRICE, "USD", False, "posted", "sale", order, now, now))
            events.append((dated_id("evt"), store_id, "order.paid", json.dumps({"object": {"id": order}}), now, now))
        cur.execute("BEGIN")
        cur.executemany(q("INSERT INTO payments_payment (id, purpose, store_id, checkout_id, buyer_id, rail, payment_method, status, amount, currency, fee, amount_refunded, rail_reference, failure_code, failure_message, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"), payments)
        cur.executemany(q("INSERT INTO orders_order (id, store_id, checkout_id, payment_id, customer_id, email, status, currency, amount_total, amount_refunded, fee, fee_refunded, platform_fee, platform_fee_refunded, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"), orders)
        cur.executemany(q("INSERT INTO orders_orderline (order_id, product_id, name, unit_amount, quantity) VALUES (?,?,?,?,?)"), lines)
        cur.executemany(q("INSERT INTO orders_entitlement (id, store_id, order_id, product_id, email, download_limit, created_at) VALUES (?,?,?,?,?,?,?)"), entitlements)
        cur.executemany(q("INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, currency, two_phase, state, code, reference, created_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"), transfers)
        cur.executemany(q("INSERT INTO integrations_event (id, store_id, type, data, created_at, dispatched_at) VALUES (?,?,?,?,?,?)"), events)
        count = len(orders)
        cur.execute(q("UPDATE ledger_account SET debits_posted = debits_posted + ? WHERE id=?"), (count * PRICE, clearing))
        cur.execute(q("UPDATE ledger_account SET credits_posted = credits_posted + ? WHERE id=?"), (count * PRICE, balance))
        cur.execute("COMMIT")
    if database_url:
        cur.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - began


# --- Main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("unlock", "buy", "charge"), default="unlock")
    parser.add_argument("-n", type=int, default=2000, help="spends in all")
    parser.add_argument("-c", type=int, default=32, help="concurrent clients, one buyer each")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    parser.add_argument("--preload", type=int, default=0, help="orders of history written before the clock starts")
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        print(json.dumps(setup(json.loads(args.setup))))
        return

    per_client = math.ceil(args.n / args.c)
    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-unlock-"))
    env_vars = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING", **NO_LIMITS}
    env_vars.pop("DATABASE_URL", None)
    if args.database_url:
        env_vars["DATABASE_URL"] = args.database_url
        subprocess.run([str(BIN / "python"), "-c", (
            "import psycopg,sys; u=sys.argv[1].replace('postgres://','postgresql://',1); c=psycopg.connect(u, autocommit=True);"
            "c.execute('DROP SCHEMA public CASCADE'); c.execute('CREATE SCHEMA public')"), args.database_url], check=True)
    port = free_port()
    env_vars["STALL_BASE_URL"] = f"http://127.0.0.1:{port}"
    spec = {"mode": args.mode, "clients": args.c, "per_client": per_client + WARM_UP}
    began = time.perf_counter()
    out = subprocess.run([str(BIN / "python"), __file__, "--setup", json.dumps(spec)], env=env_vars, check=True,
                         capture_output=True, text=True).stdout
    env = json.loads(out.strip().splitlines()[-1])
    print(f"setup              {time.perf_counter() - began:.1f} s ({args.c} buyers with topped-up wallets)", flush=True)
    if args.preload:
        took = preload(args.database_url, data_dir, args.preload, env)
        print(f"history            {args.preload:,} orders and transfers written in {took:.0f} s", flush=True)

    server = subprocess.Popen([str(BIN / "stall"), "serve", "--port", str(port), "--workers", str(args.workers),
                               "--threads", str(args.threads), "--server", args.server], env=env_vars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        browsers = [Browser(port) for _ in range(args.c)]
        for browser, buyer in zip(browsers, env["buyers"]):
            if args.mode != "charge":
                browser.sign_in(buyer["sign_in"], env["store_slug"])
        run_clients(args.mode, port, env, 0, WARM_UP, browsers)  # warm up every worker and connection
        # Each client spends its share: -n rounded up to a multiple of -c.
        elapsed, latencies, errors = run_clients(args.mode, port, env, WARM_UP, per_client, browsers)
    finally:
        server.terminate()
        server.wait(timeout=30)

    done = len(latencies)
    raw_n = max(done, 1)
    raw_elapsed = run_baseline(args.database_url, data_dir, raw_n, env, args.mode)
    rate, raw_rate = done / elapsed, raw_n / raw_elapsed
    db = "PostgreSQL" if args.database_url else "SQLite"
    what = {"unlock": "post unlock (one POST)", "buy": "buy + pay from wallet (two POSTs)", "charge": "API charge (one POST)"}
    print(f"database           {db}")
    print(f"server             stall serve, {args.workers} {args.server} workers x {args.threads} threads + Huey worker")
    print(f"spend              {what[args.mode]}, {PRICE}¢ from the wallet")
    print(f"spends             {done} ok, {errors} failed, {args.c} concurrent clients")
    print(f"spends/s           {rate:,.0f}")
    print(f"latency p50        {statistics.median(latencies) * 1000:.1f} ms")
    print(f"latency p99        {percentile(latencies, 99) * 1000:.1f} ms")
    print(f"baseline raw SQL   {raw_rate:,.0f} spends/s (same rows, one connection, no HTTP)")
    print(f"ratio              {rate / raw_rate:.3f} of the raw baseline")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
