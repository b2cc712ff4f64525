#!/usr/bin/env python
"""What rate limits cost: one count in each cache that could hold them, and request rates with
limits on against the same server with them off and against a bare view.

    .venv/bin/python bench/limits.py [-n 2000] [-c 8] [--workers 2] [--threads 4]

Part 1, in this process: ``limits_hit`` (cache.add + cache.incr) n times on each backend —
local memory (per process: not a shared count), Stall's LockedFileCache (files under the data
directory, flock'd: the default without Redis), and Django's DatabaseCache on a SQLite file (the
alternative the limiter did not take; its incr is not atomic either).

Part 2, over HTTP against `stall serve` (gunicorn, 2 workers x 4 threads by default), three
servers on one data directory:

  off       every STALL_LIMIT_* set to "off"
  counting  every limit set so high that nothing is refused: the cost of counting
  defaults  the shipped limits: logging in is refused after 10 attempts on the account

and on each: GET /healthz (a bare view: no session, no database), GET /api/v1/products with a
key (limited per key), and POST /login/ with a wrong password (argon2 checks it; once refused,
nothing is checked). Each client keeps one connection and its own session and CSRF cookies.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkout import free_port, wait_ready  # noqa: E402  (bench/checkout.py)

LIMIT_NAMES = ["login_email", "login_address", "signup_address", "magic_link_email", "magic_link_address",
               "checkout_address", "checkout_key", "api_key"]


# --- Part 1: one count, per cache ------------------------------------------------------------


def bench_backends(n: int, data_dir: Path) -> None:
    import django
    from django.conf import settings

    sys.path.insert(0, str(ROOT))
    settings.configure(
        INSTALLED_APPS=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data_dir / "cache.sqlite3"),
                               "OPTIONS": {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}}},
        CACHES={
            "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "file": {"BACKEND": "stall.core.cache.LockedFileCache", "LOCATION": str(data_dir / "limits"),
                     "OPTIONS": {"MAX_ENTRIES": 20_000}},
            "database": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "limits_cache"},
        },
        STALL_LIMITS={"api_key": "1000000000/1m"},
        STALL_BEHIND_PROXY=False,
    )
    django.setup()
    from django.core.cache import caches
    from django.core.management import call_command

    from stall.core import limits

    call_command("createcachetable", verbosity=0)
    print(f"one count (cache.add + cache.incr), {n} times, one thread:")
    for alias in ("locmem", "file", "database"):
        limits.caches = {"limits": caches[alias]}  # the limiter's cache, for this run only
        for subjects in (1, 1000):
            start = time.perf_counter()
            for i in range(n):
                limits.limits_hit(("api_key", f"key{i % subjects}"))
            us = (time.perf_counter() - start) / n * 1e6
            print(f"  {alias:<9} {subjects:>5} subject(s)  {us:8.0f} µs a count")
    limits.caches = caches


# --- Part 2: request rates --------------------------------------------------------------------


def _client(port: int, kind: str, key: str, deadline: float, counts: dict, lock: threading.Lock, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    cookies, token = "", ""
    if kind == "login":
        conn.request("GET", "/login/")
        response = conn.getresponse()
        page = response.read().decode()
        cookies = "; ".join(c.split(";")[0] for c in response.headers.get_all("Set-Cookie") or [])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    done = 0
    while done < n and time.monotonic() < deadline:
        if kind == "bare":
            conn.request("GET", "/healthz")
        elif kind == "api":
            conn.request("GET", "/api/v1/products?limit=3", headers={"Authorization": f"Bearer {key}"})
        else:
            body = urlencode({"csrfmiddlewaretoken": token, "username": "creator@demo.stall", "password": "wrong password"})
            conn.request("POST", "/login/", body=body, headers={
                "Cookie": cookies, "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{port}/login/",
            })
        response = conn.getresponse()
        response.read()
        done += 1
        with lock:
            counts[response.status] = counts.get(response.status, 0) + 1


def run(port: int, kind: str, key: str, n: int, c: int, seconds: float = 20) -> tuple[float, dict]:
    counts: dict = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(port, kind, key, deadline, counts, lock, n // c)) for _ in range(c)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(counts.values()) / elapsed, counts


def bench_http(args, data_dir: Path) -> None:
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "ERROR"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    stall = str(BIN / "stall")
    subprocess.run([stall, "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    key = subprocess.run([stall, "apikey", "create", "--store", "demo"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    modes = {
        "off": {f"STALL_LIMIT_{name.upper()}": "off" for name in LIMIT_NAMES},
        "counting": {f"STALL_LIMIT_{name.upper()}": "1000000000/1m" for name in LIMIT_NAMES},
        "defaults": {},
    }
    print(f"\nrequests a second over HTTP, {args.c} clients, stall serve with {args.workers} workers x {args.threads} threads:")
    print(f"  {'limits':<9} {'bare view':>10} {'API GET':>10} {'login':>10}   login answers")
    for mode, extra in modes.items():
        for path in (data_dir / "limits").glob("*.djcache"):
            path.unlink()
        port = free_port()
        server = subprocess.Popen(
            [stall, "serve", "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads), "--no-worker"],
            env={**env, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port)
            run(port, "bare", key, 200, args.c)  # warm up every worker
            run(port, "api", key, 200, args.c)
            bare, _ = run(port, "bare", key, args.n, args.c)
            api, _ = run(port, "api", key, args.n, args.c)
            login, answers = run(port, "login", key, args.n // 10, args.c)
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"  {mode:<9} {bare:10.0f} {api:10.0f} {login:10.1f}   {dict(sorted(answers.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="requests per measurement (login: a tenth)")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-limits-"))
    bench_http(args, data_dir)
    bench_backends(args.n, data_dir)


if __name__ == "__main__":
    main()
