"""The ``stall`` commands that need Django's apps: demo, createcreator, apikey, backup, restore.

``stall.cli`` runs them here, as ``python -m stall.commands <command> …``: Django is set up
before this module imports the apps, so the imports sit at the top, pointing down the layers.
"""

import getpass
import os
import sys
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stall.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from stall.accounts.services import user_create  # noqa: E402
from stall.cli import build_parser  # noqa: E402
from stall.core.errors import StallError  # noqa: E402
from stall.demo import demo_create  # noqa: E402
from stall.integrations.models import ApiKey  # noqa: E402
from stall.integrations.services import api_key_create, api_key_revoke  # noqa: E402
from stall.ops.backup import BackupError, backup_create, backup_restore, backup_summary  # noqa: E402
from stall.stores.models import Store  # noqa: E402


def cmd_demo(args) -> int:
    call_command("migrate", interactive=False, verbosity=0)
    result = demo_create(password=args.password)
    print(f"Demo store:  {settings.BASE_URL}/s/{result.store.slug}/")
    print(f"Dashboard:   {settings.BASE_URL}/dashboard/  (log in as {result.email} / {result.password})")
    return 0


def cmd_createcreator(args) -> int:
    password = args.password or os.environ.get("STALL_CREATOR_PASSWORD")
    if not password:
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
    store = Store.objects.filter(slug=args.store).first()
    if store is None:
        print(f"stall: no store with the address “{args.store}”.", file=sys.stderr)
        return 2
    key, secret = api_key_create(store=store, name=args.name)
    print(secret)
    print(f"(key {key.pk} for store {store.slug}; the secret is shown only this once)", file=sys.stderr)
    return 0


def cmd_apikey_revoke(args) -> int:
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


def cmd_backup(args) -> int:
    try:
        result = backup_create(output=Path(args.output) if args.output else None)
    except BackupError as exc:
        print(f"stall: {exc.message}", file=sys.stderr)
        return 2
    print("\n".join(backup_summary(result)))
    return 0


def cmd_restore(args) -> int:
    try:
        result = backup_restore(archive=Path(args.archive), force=args.force)
    except BackupError as exc:
        print(f"stall: {exc.message}", file=sys.stderr)
        return 2
    m = result.manifest
    print(f"Restored {args.archive} (made {m['created_at']} by Stall {m['stall_version']}): "
          f"{result.counts['orders']:,} orders, {result.counts['transfers']:,} ledger transfers, "
          f"{result.files:,} files; migrated to this Stall's schema.")
    for note in result.notes:
        print(f"stall: {note}", file=sys.stderr)
    return 0


COMMANDS = {
    "demo": cmd_demo, "createcreator": cmd_createcreator,
    ("apikey", "create"): cmd_apikey_create, ("apikey", "revoke"): cmd_apikey_revoke,
    "backup": cmd_backup, "restore": cmd_restore,
}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    key = (args.command, args.apikey_command) if args.command == "apikey" else args.command
    return COMMANDS[key](args) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
