#!/usr/bin/env python
"""Idle memory of `stall serve` (web and worker), per process, beside baselines from the same run.

    .venv/bin/python bench/memory.py [--workers 2] [--threads 4] [--settle 3] [--database-url …]

Starts `stall serve` on a free port with a fresh STALL_DATA_DIR, waits for /healthz, sends a few
requests so every web worker has answered one, waits --settle seconds, then reads each process of
its tree from /proc/<pid>/smaps_rollup and stops it with SIGTERM (and says whether anything of the
tree outlived it).

Three figures per process, in MB (10^6 bytes):
  RSS  resident pages, counting shared pages in full in every process that maps them: the sum
       over processes double-counts the interpreter, libraries and copy-on-write pages;
  PSS  each shared page divided among the processes that map it: the sum is what the tree
       really occupies;
  USS  pages only this process maps: what stopping it alone would give back.

Baselines, measured the same way in the same run: a bare interpreter (`python -c` sleeping), a
process that ran `django.setup()` with Stall's settings (every app imported and ready, no request
served), and gunicorn serving a hello-world WSGI app with the same workers and threads.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
TARGET_RSS_MB = 300  # DESIGN: `stall serve` idle, web + worker, RSS in all


def hello(environ, start_response):
    """The baseline WSGI app: what gunicorn costs with nothing behind it."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{proc.args[:4]} exited with {proc.returncode} before answering {path}"
            )
        try:
            if get(port, path) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered 200 on :{port}{path} within {timeout:.0f} s")


def children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, parents before children."""
    tree, order, todo = children_of(), [], [root]
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo.extend(sorted(tree.get(pid, [])))
    return order


def memory(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of one process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def role(pid: int, parent_role: str | None) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if parent_role is None:
        return "stall serve (supervisor)" if "serve" in text else text[:40]
    if "gunicorn" in text:
        return "gunicorn worker" if parent_role.startswith("gunicorn") else "gunicorn master"
    if "run_huey" in text or "worker" in text.split()[-3:]:
        return "huey consumer"
    if "migrate" in text:
        return "migrate (finishing)"
    return f"{parent_role} child"


def measure_tree(root: int) -> list[tuple[str, int, dict[str, int]]]:
    roles: dict[int, str] = {}
    rows = []
    tree = children_of()
    for pid in tree_pids(root):
        parent = next((p for p, kids in tree.items() if pid in kids), None)
        try:
            roles[pid] = role(pid, roles.get(parent))
            rows.append((roles[pid], pid, memory(pid)))
        except OSError:  # exited between the listing and the read
            continue
    return rows


def stop(proc: subprocess.Popen, pids: list[int], timeout: float = 30) -> list[int]:
    """SIGTERM to the root; the pids of its old tree still alive after ``timeout`` (then killed)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    left = pids
    while time.monotonic() < deadline:
        left = [p for p in pids if p != proc.pid and alive(p)]
        if not left:
            break
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def print_rows(title: str, rows: list[tuple[str, int, dict[str, int]]]) -> dict[str, int]:
    print(f"\n{title}")
    print(f"  {'process':<28} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
    total = {"rss": 0, "pss": 0, "uss": 0}
    for name, pid, mem in rows:
        print(f"  {name:<28} {pid:>7} {figures(mem)}")
        for key in total:
            total[key] += mem[key]
    print(f"  {'total':<28} {'':>7} {figures(total)}")
    return total


def figures(mem: dict[str, int]) -> str:
    return " ".join(f"{mem[key] / MB:>8.1f}" for key in ("rss", "pss", "uss"))


def measure_serve(args, env: dict) -> tuple[list, list[int], int | None]:
    port = free_port()
    env = {**env, "STALL_BASE_URL": f"http://127.0.0.1:{port}"}
    cmd = [sys.executable, "-m", "stall.cli", "serve", "--port", str(port),
           "--workers", str(args.workers), "--threads", str(args.threads)]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pids: list[int] = []
    try:
        wait_http(port, "/healthz", proc)
        for _ in range(8 * args.workers):  # every worker answers at least one, most likely
            get(port, "/healthz")
        time.sleep(args.settle)
        rows = measure_tree(proc.pid)
        pids = [pid for _, pid, _ in rows]
    finally:
        left = stop(proc, pids or tree_pids(proc.pid))
    return rows, left, proc.returncode


def measure_idle(code: str, env: dict, settle: float) -> list:
    """One interpreter that runs ``code``, says so, and sleeps; named after ``code``."""
    script = f"{code}\nimport sys, time\nprint('ready', flush=True)\ntime.sleep(600)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the baseline {code!r} failed (exit {proc.wait()})")
        time.sleep(settle)
        return [(f"python -c '{code[:17]}'", pid, mem) for _, pid, mem in measure_tree(proc.pid)]
    finally:
        proc.kill()
        proc.wait()


def measure_hello_gunicorn(args, env: dict) -> list:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "memory:hello", "--pythonpath", str(ROOT / "bench"),
           "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
           "--worker-class", "gthread", "--threads", str(args.threads),
           "--access-logfile", "/dev/null"]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(port, "/", proc)
        for _ in range(8 * args.workers):
            get(port, "/")
        time.sleep(args.settle)
        rows = measure_tree(proc.pid)
    finally:
        stop(proc, tree_pids(proc.pid))
    return [
        ("gunicorn master" if i == 0 else "gunicorn worker", pid, mem)
        for i, (_, pid, mem) in enumerate(rows)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers (stall serve's default)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before measuring")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (migrated; nothing is deleted)"
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="stall-bench-memory-"))
    env = {
        **os.environ,
        "STALL_DATA_DIR": str(data_dir),
        "STALL_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "stall.settings",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    try:
        rows, left, code = measure_serve(args, env)
        serve = print_rows(
            f"stall serve --workers {args.workers} --threads {args.threads}, idle "
            f"({'PostgreSQL' if args.database_url else 'SQLite'}, queue on SQLite)",
            rows,
        )
        stopped = "cleanly" if not left and code == 0 else f"exit {code}, left running: {left}"
        print(f"  stopped by SIGTERM: {stopped}")

        bare = print_rows("baseline: a bare interpreter", measure_idle("pass", env, args.settle))
        django = print_rows(
            "baseline: django.setup() with Stall's settings, no request",
            measure_idle("import django; django.setup()", env, args.settle),
        )
        hello_rows = measure_hello_gunicorn(args, env)
        hello = print_rows(
            f"baseline: gunicorn, hello-world WSGI app, {args.workers} workers", hello_rows
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print("\nsummary (MB)                       RSS      PSS")
    print(
        f"  stall serve, all processes    {serve['rss'] / MB:>8.1f} {serve['pss'] / MB:>8.1f}"
        f"   (target: RSS <= {TARGET_RSS_MB})"
    )
    print(f"  bare interpreter              {bare['rss'] / MB:>8.1f} {bare['pss'] / MB:>8.1f}")
    print(f"  django.setup(), Stall         {django['rss'] / MB:>8.1f} {django['pss'] / MB:>8.1f}")
    print(f"  gunicorn hello world          {hello['rss'] / MB:>8.1f} {hello['pss'] / MB:>8.1f}")
    print(
        f"  stall serve / django.setup()  {serve['rss'] / django['rss']:>8.2f}x"
        f" {serve['pss'] / django['pss']:>7.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
