"""The ``stall`` command: serve, worker, demo, createcreator, apikey, backup, restore."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
    import django

    django.setup()


def _migrate(verbosity: int = 0) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


# --- stall serve: a supervisor that holds no Django --------------------------------------------
# The supervisor only starts, watches and stops its children: migrate first, then the web server
# and the task worker. It never imports Django (that alone is ~90 MB of a process that would do
# nothing with it); each child is a fresh interpreter that loads what it needs.

STOP_TIMEOUT_SECONDS = 20  # past gunicorn's --graceful-timeout, for a task finishing too


def web_command(args) -> list[str]:
    """The web server, its workers and threads: the one place that names it.

    gunicorn's threaded worker by default, as ``stall.ops.webworker.BalancedThreadWorker``: it
    spreads kept-alive connections over the workers, where gthread alone gave one worker all of
    them. ``--server granian`` (or STALL_WEB_SERVER=granian) runs granian's WSGI interface instead,
    its blocking threads gated as gunicorn's threads are (``stall.wsgi.gated_application``), so a
    slow client's download holds one of them, not the worker. Chosen by measurement on a 2-core
    machine: granian carries more (SQLite, 32 clients, four threads each, same runs: card
    checkouts 0.120-0.134 of bench/checkout.py's raw baseline against gunicorn's 0.107-0.109,
    unlocks 0.247-0.249 against 0.224-0.239), but its processes hold more (bench/memory.py, idle:
    313 MB in all against 295 MB on PostgreSQL, over DESIGN's 300 MB; 285 against 267 on SQLite).
    granian is an optional extra: ``pip install 'stall[granian]'``."""
    if getattr(args, "server", "gunicorn") == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "stall.wsgi:gated_application",
            "--host", args.host, "--port", str(args.port),
            "--workers", str(args.workers), "--blocking-threads", str(args.threads),
            "--no-ws", "--log-level", "warning", *(["--access-log"] if args.access_log else []),
        ]
    return [
        sys.executable, "-m", "gunicorn", "stall.wsgi:application",
        "--bind", f"{args.host}:{args.port}",
        "--workers", str(args.workers),
        "--worker-class", "stall.ops.webworker.BalancedThreadWorker", "--threads", str(args.threads),
        # No access log unless asked: given any file, /dev/null included, gunicorn formats a line
        # for every request (2% of a worker's samples under bench/unlock.py, py-spy).
        *(["--access-logfile", "-"] if args.access_log else []),
        "--error-logfile", "-",
        "--graceful-timeout", "10",
        # No --preload: sharing the master's loaded application lowers the tree's PSS by ~55 MB,
        # but its RSS (what DESIGN's 300 MB target counts) rose to 323 MB on PostgreSQL with it
        # and is 292 MB without (bench/memory.py). wsgi.py still closes what a fork must not share.
    ]


def worker_command(*, periodic: bool = True) -> list[str]:
    """What `stall worker` runs, started by `stall serve` as its task worker."""
    return [sys.executable, "-m", "stall.cli", "worker", *([] if periodic else ["--no-periodic"])]


def migrate_command() -> list[str]:
    return [sys.executable, "-m", "django", "migrate", "--no-input", "--verbosity", "0"]


class Child:
    """A process of ``stall serve``, with the signal that stops it gracefully."""

    def __init__(self, name: str, argv: list[str], env: dict, stop_signal: int, preexec):
        self.name, self.stop_signal = name, stop_signal
        # Its own process group: a Ctrl-C in the terminal reaches the supervisor alone, which
        # passes one stop signal on. Huey takes a second SIGINT as "stop now, drop the task".
        # preexec_fn is unsafe with threads; the supervisor has none.
        self.proc = subprocess.Popen(
            argv, env=env, process_group=0, preexec_fn=preexec  # noqa: PLW1509
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)


def _die_with_parent():
    """A hook for the child, run before exec: be sent SIGTERM when the supervisor dies, even by
    SIGKILL, so no server or worker runs on without it. Linux only; elsewhere, None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: loaded before the fork, called in the child

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the line above
            os._exit(1)

    return hook


def _say(message: str) -> None:
    print(f"stall: {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Runs children until one stops or a stop signal comes; then stops the rest, bounded."""

    def __init__(self):
        self.children: list[Child] = []
        self.stop_requested = False
        self.preexec = _die_with_parent()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True
        for child in self.children:
            child.stop()

    def start(self, name: str, argv: list[str], env: dict, stop_signal=signal.SIGTERM) -> Child:
        child = Child(name, argv, env, stop_signal, self.preexec)
        self.children.append(child)
        if self.stop_requested:  # a signal came while it was being started
            child.stop()
        return child

    def run_once(self, name: str, argv: list[str], env: dict) -> int:
        """Run a child to its end (migrate); its exit status, or 128+N if we were stopped."""
        child = self.start(name, argv, env)
        code = child.proc.wait()
        self.children.remove(child)
        return code if code >= 0 else 128 - code

    def watch(self) -> int:
        """Until a child exits or we are told to stop; then stop them all. The exit status: 0 for
        a requested stop that every child obeyed, else non-zero."""
        failed: Child | None = None
        while not self.stop_requested and failed is None:
            failed = next((c for c in self.children if c.proc.poll() is not None), None)
            if failed is None:
                time.sleep(0.2)
        if failed is not None:
            code = failed.proc.returncode
            _say(f"the {failed.name} stopped (exit {code}); stopping the rest.")
        for child in self.children:
            child.stop()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"the {child.name} did not stop in time; killing it.")
                child.proc.kill()
                child.proc.wait()
        if failed is not None:
            code = failed.proc.returncode
            return code if code > 0 else 128 - code if code < 0 else 1
        obeyed = all(c.proc.returncode in (0, -c.stop_signal) for c in self.children)
        return 0 if obeyed else 1


def cmd_serve(args) -> int:
    """Migrate, then run the web server and the Huey consumer together until one stops or we are
    told to (SIGTERM, SIGINT, SIGHUP)."""
    env = {**os.environ}
    env.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
    if not env.get("STALL_BASE_URL"):
        # Links in emails and API answers must point where we actually listen.
        shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        env["STALL_BASE_URL"] = f"http://{shown_host}:{args.port}"
    supervisor = Supervisor()
    code = supervisor.run_once("migration", migrate_command(), env)
    if supervisor.stop_requested:
        return 0 if code in (0, 128 + signal.SIGTERM) else code
    if code != 0:
        _say(f"migrate failed (exit {code}); not serving.")
        return code
    supervisor.start("web server", web_command(args), env)
    if not args.no_worker:
        # SIGINT is Huey's graceful stop: running tasks finish. (Its SIGTERM abandons them.)
        command = worker_command(periodic=not args.no_periodic)
        supervisor.start("task worker", command, env, stop_signal=signal.SIGINT)
    worker = "" if args.no_worker else " and a task worker"
    print(f"Stall is serving http://{args.host}:{args.port}/ with {args.workers} web worker(s){worker}.", flush=True)
    return supervisor.watch()


def cmd_worker(args) -> int:
    """Huey's consumer. Each consumer's scheduler queues every periodic task when it is due, so N
    workers on one queue run each sweep N times: all but one of them take ``--no-periodic``."""
    _django()
    from django.core.management import call_command

    call_command("run_huey", workers=args.workers, periodic=not args.no_periodic)
    return 0


def cmd_django(args) -> int:
    """demo, createcreator, apikey, backup, restore: run in ``stall.commands``, a fresh interpreter that sets Django
    up before its imports, so this module (and the supervisor) never imports Django's apps."""
    os.execv(sys.executable, [sys.executable, "-m", "stall.commands", *args.argv])
    return 0  # not reached


NO_PERIODIC_HELP = (
    "the task worker runs queued tasks but never queues the periodic sweeps: give it to all "
    "but one of the workers that share a queue"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stall", description="Stall, a self-hosted microcommerce platform.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the web app and run the task worker")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("STALL_WEB_WORKERS", "2")))
    # Four threads a worker, measured against one (bench/unlock.py, 32 clients, 2 workers, on a
    # 2-core machine). On SQLite, four threads all running Django took turns on the GIL while one
    # of them held the write queue, and served 347-455 spends/s at p99 105-155 ms against one
    # thread's 520-576 at 82-94 ms. With the app gate (stall.core.gate: on SQLite one thread
    # at a time in the app, the others reading and sending), four threads served 490-575 spends/s
    # at p99 83-106 ms against one thread's 468-598 at 72-99 in the same runs (2026-11-30). So four
    # it stays: a worker with one thread is held whole by a slow client's download (FileResponse is
    # sent by the thread that made it), and so are the kept-alive connections it holds. On
    # PostgreSQL, where commits wait on the disk, there is no gate and one thread was slower: 184
    # spends/s against 235.
    serve.add_argument("--threads", type=int, default=int(os.environ.get("STALL_WEB_THREADS", "4")))
    serve.add_argument("--no-worker", action="store_true", help="web only; run `stall worker` elsewhere")
    serve.add_argument("--no-periodic", action="store_true", help=NO_PERIODIC_HELP)
    serve.add_argument("--server", choices=("gunicorn", "granian"), default=os.environ.get("STALL_WEB_SERVER", "gunicorn"))
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the Huey task worker alone")
    worker.add_argument("--workers", type=int, default=2)
    worker.add_argument("--no-periodic", action="store_true", help=NO_PERIODIC_HELP)
    worker.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="create the demo store, its creator and three products")
    demo.add_argument("--password", default=os.environ.get("STALL_DEMO_PASSWORD", "stall-demo-password"))
    demo.set_defaults(func=cmd_django)

    creator = sub.add_parser("createcreator", help="create a creator login")
    creator.add_argument("--email", required=True)
    creator.add_argument("--password")
    creator.add_argument("--staff", action="store_true", help="also an operator (Django admin)")
    creator.set_defaults(func=cmd_django)

    apikey = sub.add_parser("apikey", help="API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a secret API key for a store and print it")
    create.add_argument("--store", required=True, help="the store's address (slug)")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_django)
    revoke = apikey_sub.add_parser("revoke", help="revoke a key by its id (key_…)")
    revoke.add_argument("key", help="the key's id, as `stall apikey create` prints it")
    revoke.set_defaults(func=cmd_django)

    backup = sub.add_parser(
        "backup", help="write the database and uploaded files into one archive (safe while serving)"
    )
    backup.add_argument("--output", "-o", help="the archive to write (default: ./stall-backup-<time>.tar.gz)")
    backup.set_defaults(func=cmd_django)
    restore = sub.add_parser("restore", help="bring a backup back into an empty database, then migrate")
    restore.add_argument("archive", help="a file written by `stall backup`")
    restore.add_argument("--force", action="store_true", help="replace a database that holds data")
    restore.set_defaults(func=cmd_django)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
