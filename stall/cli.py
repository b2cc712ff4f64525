"""The ``stall`` command: serve, worker, demo, createcreator, apikey."""

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


def cmd_serve(args) -> int:
    """Migrate, then run gunicorn and the Huey consumer together until one stops or we are told to."""
    _django()
    _migrate()
    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "stall.settings", "STALL_DATA_DIR": str(settings.DATA_DIR)}
    if not os.environ.get("STALL_BASE_URL"):
        # Links in emails and API answers must point where we actually listen.
        shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        env["STALL_BASE_URL"] = f"http://{shown_host}:{args.port}"
    web = [
        sys.executable, "-m", "gunicorn", "stall.wsgi:application",
        "--bind", f"{args.host}:{args.port}",
        "--workers", str(args.workers),
        "--worker-class", "gthread", "--threads", str(args.threads),
        "--access-logfile", "-" if args.access_log else "/dev/null",
        "--error-logfile", "-",
        "--graceful-timeout", "10",
    ]
    procs = [subprocess.Popen(web, env=env)]
    if not args.no_worker:
        procs.append(subprocess.Popen([sys.executable, "-m", "django", "run_huey"], env=env))
    worker = "" if args.no_worker else " and a task worker"
    print(f"Stall is serving http://{args.host}:{args.port}/ with {args.workers} web worker(s){worker}.", flush=True)
    return _supervise(procs)


def _supervise(procs: list[subprocess.Popen]) -> int:
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while True:
            for p in procs:
                code = p.poll()
                if code is not None:
                    if not stopping:
                        print(f"stall: a child process stopped (exit {code}); stopping the others.", file=sys.stderr)
                    stop(None, None)
                    deadline = time.monotonic() + 15
                    for other in procs:
                        try:
                            other.wait(timeout=max(0.1, deadline - time.monotonic()))
                        except subprocess.TimeoutExpired:
                            other.kill()
                    return 0 if stopping and code in (0, -signal.SIGTERM) else code
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def cmd_worker(args) -> int:
    _django()
    from django.core.management import call_command

    call_command("run_huey", workers=args.workers)
    return 0


def cmd_demo(args) -> int:
    _django()
    _migrate()
    from stall.demo import demo_create

    result = demo_create(password=args.password)
    from django.conf import settings

    print(f"Demo store:  {settings.BASE_URL}/s/{result.store.slug}/")
    print(f"Dashboard:   {settings.BASE_URL}/dashboard/  (log in as {result.email} / {result.password})")
    return 0


def cmd_createcreator(args) -> int:
    _django()
    from stall.accounts.services import user_create
    from stall.core.errors import StallError

    password = args.password or os.environ.get("STALL_CREATOR_PASSWORD")
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    try:
        user = user_create(email=args.email, password=password)
    except StallError as exc:
        print(f"stall: {exc.message}", file=sys.stderr)
        return 2
    if args.staff:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    print(f"Created creator {user.email}.")
    return 0


def cmd_apikey_create(args) -> int:
    _django()
    from stall.integrations.services import api_key_create
    from stall.stores.models import Store

    store = Store.objects.filter(slug=args.store).first()
    if store is None:
        print(f"stall: no store with the address “{args.store}”.", file=sys.stderr)
        return 2
    key, secret = api_key_create(store=store, name=args.name)
    print(secret)
    print(f"(key {key.pk} for store {store.slug}; the secret is shown only this once)", file=sys.stderr)
    return 0


def cmd_apikey_revoke(args) -> int:
    _django()
    from stall.core.errors import StallError
    from stall.integrations.models import ApiKey
    from stall.integrations.services import api_key_revoke

    key = ApiKey.objects.select_related("store").filter(pk=args.key).first()
    if key is None:
        print(f"stall: no API key {args.key}.", file=sys.stderr)
        return 2
    try:
        api_key_revoke(store=key.store, key_id=key.pk)
    except StallError as exc:
        print(f"stall: {exc.message}", file=sys.stderr)
        return 2
    print(f"Revoked {key.pk} of store {key.store.slug}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stall", description="Stall, a self-hosted microcommerce platform.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the web app and run the task worker")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("STALL_WEB_WORKERS", "2")))
    serve.add_argument("--threads", type=int, default=int(os.environ.get("STALL_WEB_THREADS", "4")))
    serve.add_argument("--no-worker", action="store_true", help="web only; run `stall worker` elsewhere")
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the Huey task worker alone")
    worker.add_argument("--workers", type=int, default=2)
    worker.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="create the demo store, its creator and three products")
    demo.add_argument("--password", default=os.environ.get("STALL_DEMO_PASSWORD", "stall-demo-password"))
    demo.set_defaults(func=cmd_demo)

    creator = sub.add_parser("createcreator", help="create a creator login")
    creator.add_argument("--email", required=True)
    creator.add_argument("--password")
    creator.add_argument("--staff", action="store_true", help="also an operator (Django admin)")
    creator.set_defaults(func=cmd_createcreator)

    apikey = sub.add_parser("apikey", help="API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a secret API key for a store and print it")
    create.add_argument("--store", required=True, help="the store's address (slug)")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_apikey_create)
    revoke = apikey_sub.add_parser("revoke", help="revoke a key by its id (key_…)")
    revoke.add_argument("key", help="the key's id, as `stall apikey create` prints it")
    revoke.set_defaults(func=cmd_apikey_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
