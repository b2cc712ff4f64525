"""`stall backup` and `stall restore`: the database and the uploaded files in one archive.

The archive is a tar.gz holding, in this order:

    manifest.json       what it is: Stall's version, the database vendor, when, what the snapshot
                        holds (orders, ledger transfers, the ledger's totals) and its migrations
    database.sqlite3    SQLite: a copy made by SQLite's online backup API, or
    database.pgdump     PostgreSQL: pg_dump's custom format
    secret_key          the data directory's generated key (not when STALL_SECRET_KEY is set): the
                        download links in receipts already sent, and sessions, are signed with it
    files/media/…       public uploads (covers, avatars) and
    files/private/…     product files, when they are on the local disk (not in S3)

The snapshot is consistent while the server keeps serving: SQLite's backup copies every page in
one step, inside one read transaction, which writers in WAL mode do not wait for; pg_dump reads
one exported snapshot, the same one the manifest's counts are read from. Files are copied after
the snapshot: they are written once under new names and never changed, so what the snapshot
references is there, unless deleted in between (the manifest then lists it as missing).

Huey's queue (queue.sqlite3) is left out: it holds tasks in flight (a receipt, a webhook), which
a restore on another machine would run a second time; what they do is recorded in the database
(events, deliveries, orders), and the periodic sweeps take up whatever was left undone.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from stall.accounts.models import User
from stall.catalog.models import ProductFile
from stall.ledger.models import Account, Transfer
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.stores.models import Store

FORMAT, FORMAT_VERSION = "stall-backup", 1
MANIFEST = "manifest.json"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
SECRET_KEY_FILE = "secret_key"
FILES_DIR = "files"
STORAGE_ALIASES = {"media": "default", "private": "private"}  # the archive's folder: its storage
VENDOR_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# Any row in these tables means the database holds a store's data: restore refuses to overwrite it.
DATA_MODELS = (User, Store, Order, Payment, Transfer)


class BackupError(Exception):
    """A backup or restore that cannot go on; ``message`` says why, for the operator."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Snapshot:
    """What the snapshot holds, read from the snapshot itself."""

    counts: dict[str, int]
    ledger: dict[str, int]
    migrations: dict[str, str]
    file_names: list[str] = field(default_factory=list)


@dataclass
class BackupResult:
    path: Path
    size: int
    seconds: float
    manifest: dict


@dataclass
class RestoreResult:
    manifest: dict
    counts: dict[str, int]
    files: int
    notes: list[str]


def stall_version() -> str:
    try:
        return version("stall")
    except PackageNotFoundError:
        return "unknown"


# --- Reading a snapshot ------------------------------------------------------------------------


def snapshot_read(cursor) -> Snapshot:
    """The manifest's facts, with plain SQL on a DB-API cursor of either vendor (the SQLite copy,
    or the transaction holding PostgreSQL's exported snapshot)."""
    def one(sql: str):
        cursor.execute(sql)
        return cursor.fetchone()

    counts = {
        name: one(f"SELECT COUNT(*) FROM {model._meta.db_table}")[0]
        for name, model in (("orders", Order), ("transfers", Transfer), ("payments", Payment), ("stores", Store))
    }
    totals = one(
        "SELECT COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_posted), 0),"
        " COALESCE(SUM(debits_pending), 0), COALESCE(SUM(credits_pending), 0)"
        f" FROM {Account._meta.db_table}"
    )
    ledger = dict(zip(("debits_posted", "credits_posted", "debits_pending", "credits_pending"), map(int, totals)))
    cursor.execute("SELECT app, name FROM django_migrations")
    migrations: dict[str, str] = {}
    for app, name in cursor.fetchall():
        migrations[app] = max(name, migrations.get(app, ""))  # numbered names: the last applied
    cursor.execute(f"SELECT storage_name FROM {ProductFile._meta.db_table}")
    return Snapshot(counts, ledger, dict(sorted(migrations.items())), [row[0] for row in cursor.fetchall()])


def _sqlite_path() -> Path:
    return Path(settings.DATABASES["default"]["NAME"])


def sqlite_snapshot(dest: Path) -> Snapshot:
    """Copy the live SQLite database into ``dest`` with the online backup API, all pages in one
    step (``pages=-1``): one read transaction, so the copy is of one moment, while writers go on
    (WAL). In steps, a write between two of them would restart the copy, again and again on a
    busy store."""
    source_path = _sqlite_path()
    if not source_path.is_file():
        raise BackupError(f"No database at {source_path}: nothing to back up.")
    source = sqlite3.connect(source_path, timeout=20)
    target = sqlite3.connect(dest)
    try:
        source.backup(target, pages=-1)
        return snapshot_read(target.cursor())
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"The database could not be read ({exc}); is it Stall's, migrated?") from exc
    finally:
        source.close()
        target.close()


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} was not found on PATH. Install PostgreSQL's client tools, of the server's major "
            "version or newer (Debian: apt-get install postgresql-client)."
        )
    return path


def _pg_env() -> dict[str, str]:
    """libpq's variables for pg_dump and pg_restore: the password stays out of the command line."""
    s = connection.settings_dict
    env = {**os.environ}
    for var, value in (("PGHOST", s["HOST"]), ("PGPORT", s["PORT"]), ("PGUSER", s["USER"]),
                       ("PGPASSWORD", s["PASSWORD"]), ("PGDATABASE", s["NAME"])):
        if value:
            env[var] = str(value)
    options = s.get("OPTIONS", {})
    for option, var in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"),
                        ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY")):
        if options.get(option):
            env[var] = str(options[option])
    return env


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, env=_pg_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def pg_snapshot(dest: Path) -> Snapshot:
    """pg_dump (custom format) of a snapshot this connection exports and reads the manifest from,
    so the counts are those of the dump, to the row."""
    pg_dump = _pg_tool("pg_dump")
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot_id = cursor.fetchone()[0]
            try:
                facts = snapshot_read(cursor)
            except Exception as exc:
                raise BackupError(f"The database could not be read ({exc}); is it Stall's, migrated?") from exc
            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges",
                  f"--snapshot={snapshot_id}", f"--file={dest}"], "pg_dump")
            cursor.execute("COMMIT")
    finally:
        raw.close()
    return facts


# --- Files -------------------------------------------------------------------------------------


def _local_roots() -> dict[str, Path]:
    """The archive's folder name → the directory of each storage kept on the local disk."""
    return {
        folder: Path(storages[alias].location)
        for folder, alias in STORAGE_ALIASES.items()
        if isinstance(storages[alias], FileSystemStorage)
    }


def _remote_note() -> str | None:
    """A sentence for the operator when uploads live in a bucket instead of the local disk."""
    remote = [alias for alias in STORAGE_ALIASES.values() if not isinstance(storages[alias], FileSystemStorage)]
    if not remote:
        return None
    bucket = os.environ.get("STALL_S3_BUCKET", "the bucket")
    return (f"Uploaded files live in the S3 bucket “{bucket}” and are not in the archive: back the "
            "bucket up on its own (versioning or replication).")


def local_files() -> list[tuple[str, Path]]:
    """Every local upload as (name in the archive, path), in a stable order."""
    found = []
    for folder, root in _local_roots().items():
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                found.append((f"{FILES_DIR}/{folder}/{path.relative_to(root).as_posix()}", path))
    return found


# --- stall backup ------------------------------------------------------------------------------


def _secret_key_path() -> Path | None:
    """The generated key's file, when that is where the key comes from."""
    path = settings.DATA_DIR / "secret_key"
    return path if not os.environ.get("STALL_SECRET_KEY") and path.is_file() else None


def manifest_for(*, vendor: str, snapshot: Snapshot, files: list[tuple[str, Path]]) -> dict:
    archived = {name.split("/", 2)[2] for name, _ in files if name.startswith(f"{FILES_DIR}/private/")}
    local = "private" in _local_roots()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stall_version": stall_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"vendor": vendor, "file": DATABASE_FILES[vendor]},
        "counts": snapshot.counts,
        "ledger": snapshot.ledger,
        "migrations": snapshot.migrations,
        "files": {
            "storage": "local" if local else "s3",
            "count": len(files),
            "bytes": sum(path.stat().st_size for _, path in files),
            # Product files the snapshot references that were not on the disk (deleted since).
            "missing": sorted(n for n in snapshot.file_names if n not in archived) if local else [],
        },
        "secret_key": _secret_key_path() is not None,
    }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, fileobj=io.BytesIO(data))


def backup_default_path() -> Path:
    return Path.cwd() / f"stall-backup-{datetime.now(UTC):%Y%m%d-%H%M%S}.tar.gz"


def backup_create(*, output: Path | None = None) -> BackupResult:
    """Write the archive to ``output`` (a new file; written beside it first, then renamed, so a
    backup cut short never leaves a file under the name). Readable by its owner only: it holds
    the secret key and password hashes."""
    started = time.monotonic()
    output = (output or backup_default_path()).resolve()
    if not output.parent.is_dir():
        raise BackupError(f"No directory {output.parent} to write the backup into.")
    vendor = connection.vendor
    if vendor not in DATABASE_FILES:
        raise BackupError(f"Backups cover SQLite and PostgreSQL, not {vendor}.")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".stall-backup-") as tmp:
        database = Path(tmp) / DATABASE_FILES[vendor]
        snapshot = sqlite_snapshot(database) if vendor == "sqlite" else pg_snapshot(database)
        files = local_files()
        manifest = manifest_for(vendor=vendor, snapshot=snapshot, files=files)
        partial = output.with_name(f".{output.name}.partial")
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            # Level 1, not tarfile's 9 or gzip's 6: on 100,000 orders (bench/backup.py, SQLite)
            # 42.3 MB in 3.2 s against 40.4 MB in 7.4 s at level 6.
            with tarfile.open(fileobj=fh, mode="w:gz", compresslevel=1) as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
                tar.add(database, arcname=database.name)
                if (key := _secret_key_path()) is not None:
                    tar.add(key, arcname=SECRET_KEY_FILE)
                for name, path in files:
                    try:
                        tar.add(path, arcname=name, recursive=False)
                    except FileNotFoundError:  # deleted since it was listed (told, not in the manifest)
                        manifest["files"]["missing"].append(name)
        os.replace(partial, output)
    return BackupResult(output, output.stat().st_size, time.monotonic() - started, manifest)


# --- stall restore -----------------------------------------------------------------------------


def manifest_check(manifest: object) -> dict:
    """The manifest of a backup this Stall can read, or BackupError."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("This is not a Stall backup (its manifest.json is not one).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"This backup is in format {manifest.get('format_version')!r}, which this Stall "
            f"({stall_version()}) does not read: restore it with the Stall that made it, or newer."
        )
    database = manifest.get("database")
    if not isinstance(database, dict) or DATABASE_FILES.get(database.get("vendor")) != database.get("file"):
        raise BackupError("This backup's manifest names no database this Stall knows.")
    return manifest


def archive_extract(archive: Path, dest: Path) -> dict:
    """Unpack ``archive`` into ``dest`` and return its checked manifest. The manifest comes first,
    so a wrong archive is refused before the rest is read; the rest is unpacked with tarfile's
    "data" filter (no links out of ``dest``, no absolute paths, no devices)."""
    if not archive.is_file():
        raise BackupError(f"No backup at {archive}.")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupError(f"{archive} is not a Stall backup: it does not start with {MANIFEST}.")
            manifest = manifest_check(json.load(tar.extractfile(first)))
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        # OSError covers gzip's "not a gzipped file"; ValueError, a manifest that is not JSON.
        raise BackupError(f"{archive} is not a readable Stall backup ({exc}).") from exc
    if not (dest / manifest["database"]["file"]).is_file():
        raise BackupError(f"{archive} is not a whole Stall backup: it holds no {manifest['database']['file']}.")
    return manifest


def database_holds_data() -> bool:
    tables = set(connection.introspection.table_names())
    return any(m._meta.db_table in tables and m.objects.exists() for m in DATA_MODELS)


def restore_checks(manifest: dict, *, force: bool) -> None:
    """Refuse what cannot work before anything is changed: another vendor's database, a backup
    of a newer Stall's schema, a database that already holds data (unless ``force``)."""
    vendor, here = manifest["database"]["vendor"], connection.vendor
    if vendor != here:
        where = "unset DATABASE_URL (SQLite)" if vendor == "sqlite" else "set DATABASE_URL to an empty PostgreSQL database"
        raise BackupError(
            f"This backup holds a {VENDOR_NAMES[vendor]} database and this Stall's database is "
            f"{VENDOR_NAMES.get(here, here)}: one cannot be loaded into the other. To restore it, {where}."
        )
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    unknown = [f"{app}.{name}" for app, name in manifest.get("migrations", {}).items() if (app, name) not in known]
    if unknown:
        raise BackupError(
            f"This backup was made by a newer Stall ({manifest.get('stall_version')}): this one "
            f"({stall_version()}) does not know its migrations {', '.join(unknown)}. Upgrade Stall first."
        )
    if not force and database_holds_data():
        raise BackupError(
            "The database already holds data (users, stores, orders or payments); restore replaces "
            "all of it. Restore into an empty database or a fresh data directory, or pass --force."
        )


def sqlite_load(snapshot: Path) -> None:
    """Put the snapshot in place of the SQLite database (checked first: a damaged copy is refused
    while the old database is still there)."""
    check = sqlite3.connect(snapshot)
    try:
        result = check.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        result = str(exc)
    finally:
        check.close()
    if result != "ok":
        raise BackupError(f"The backup's database is damaged ({result}).")
    target = _sqlite_path()
    connection.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.move(snapshot, target)


def pg_load(dump: Path) -> None:
    """Empty the schema, then pg_restore the dump in one transaction. The dump's table of contents
    is read first, so a dump pg_restore cannot read is refused before anything is dropped."""
    pg_restore = _pg_tool("pg_restore")
    _run([pg_restore, "--list", str(dump)], "Reading the backup's dump (pg_restore --list)")
    if connection.introspection.table_names():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
    connection.close()
    _run([pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
          f"--dbname={connection.settings_dict['NAME']}", str(dump)], "pg_restore")


def files_load(unpacked: Path) -> tuple[int, list[str]]:
    """Copy the archive's files into the storages' directories; the count, and notes."""
    roots, notes, count = _local_roots(), [], 0
    for folder in STORAGE_ALIASES:
        source = unpacked / FILES_DIR / folder
        if not source.is_dir():
            continue
        found = sum(1 for p in source.rglob("*") if p.is_file())
        if folder not in roots:
            kept = settings.DATA_DIR / "restored-files" / folder
            shutil.copytree(source, kept, dirs_exist_ok=True)
            notes.append(f"This Stall keeps files in S3: the backup's {found} {folder} file(s) were put in "
                         f"{kept}; upload them to the bucket's “{folder}/” prefix.")
            continue
        shutil.copytree(source, roots[folder], dirs_exist_ok=True)
        count += found
    return count, notes


def secret_key_load(unpacked: Path) -> list[str]:
    source = unpacked / SECRET_KEY_FILE
    if not source.is_file():
        return []
    key = source.read_text().strip()
    if os.environ.get("STALL_SECRET_KEY"):
        if os.environ["STALL_SECRET_KEY"] != key:
            return ["STALL_SECRET_KEY differs from the backed-up key: download links in receipts sent "
                    "before the backup, and sessions, will not be accepted."]
        return []
    path = settings.DATA_DIR / "secret_key"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(key)
    return []


def backup_restore(*, archive: Path, force: bool = False) -> RestoreResult:
    """Bring a backup back into this Stall's database and data directory, then migrate it to this
    Stall's schema. Everything is checked before the database is touched. Stop `stall serve` first."""
    with tempfile.TemporaryDirectory(dir=settings.DATA_DIR, prefix=".stall-restore-") as tmp:
        unpacked = Path(tmp)
        manifest = archive_extract(archive, unpacked)
        restore_checks(manifest, force=force)
        database = unpacked / manifest["database"]["file"]
        if manifest["database"]["vendor"] == "sqlite":
            sqlite_load(database)
        else:
            pg_load(database)
        files, notes = files_load(unpacked)
        notes += secret_key_load(unpacked)
    call_command("migrate", interactive=False, verbosity=0)
    counts = {"orders": Order.objects.count(), "transfers": Transfer.objects.count()}
    return RestoreResult(manifest, counts, files, notes)


def backup_summary(result: BackupResult) -> list[str]:
    """The lines `stall backup` prints."""
    m = result.manifest
    lines = [
        f"Backed up to {result.path} ({result.size / 1e6:,.1f} MB) in {result.seconds:.1f} s:",
        f"  {VENDOR_NAMES[m['database']['vendor']]} database: {m['counts']['orders']:,} orders, "
        f"{m['counts']['transfers']:,} ledger transfers",
    ]
    if m["files"]["storage"] == "local":
        lines.append(f"  {m['files']['count']:,} uploaded files ({m['files']['bytes'] / 1e6:,.1f} MB)")
    if note := _remote_note():
        lines.append(f"  {note}")
    if m["files"]["missing"]:
        lines.append(f"  Not on the disk, deleted since the snapshot: {', '.join(m['files']['missing'])}")
    if not m["secret_key"]:
        lines.append("  The secret key comes from STALL_SECRET_KEY and is not in the archive: keep it with the backup.")
    return lines
