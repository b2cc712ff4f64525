"""`stall backup` and `stall restore` as an operator runs them: real subprocesses of
`python -m stall.cli`, each with its own data directory.

The store being backed up is this test's database (committed: a transactional test), its files
in a data directory of the test's own. It is backed up while a thread keeps buying; the backup is
restored into a fresh data directory (SQLite) or an empty database of its own (PostgreSQL), and
read back with plain SQL.
"""

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from stall.accounts.services import buyer_for_email
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Account
from stall.ops.backup import backup_create, backup_summary
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.testing import StoreFactory, buy, product_with_file
from stall.wallets.services import wallet_top_up

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds for one command on a busy 2-core machine
FILE_BYTES = bytes(range(256)) * 400  # 100 KB with every byte value: compared byte for byte


def source_database_url() -> str:
    """This test's database as a URL the subprocesses can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def stall(*args: str, data_dir: Path, database_url: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REDIS_URL", "STALL_SECRET_KEY", "STALL_S3_BUCKET"):
        env.pop(name, None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "stall.cli", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=TIMEOUT, check=False,
    )


@dataclass
class Target:
    """Where a backup is restored: a fresh data directory, and on PostgreSQL an empty database."""

    data_dir: Path
    database_url: str | None

    def restore(self, archive: Path, *extra: str) -> subprocess.CompletedProcess:
        return stall("restore", str(archive), *extra, data_dir=self.data_dir, database_url=self.database_url)

    def query(self, sql: str) -> list[tuple]:
        if self.database_url is None:
            conn = sqlite3.connect(self.data_dir / "stall.sqlite3")
        else:
            conn = psycopg.connect(self.database_url)
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        finally:
            conn.close()


@pytest.fixture
def target(tmp_path, django_db_blocker):
    """On PostgreSQL, an empty database beside the test's, dropped afterwards."""
    data_dir = tmp_path / "restored"
    data_dir.mkdir()
    if connection.vendor == "sqlite":
        yield Target(data_dir, None)
        return
    url = source_database_url()
    name = connection.settings_dict["NAME"] + "_restore"
    admin = psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Target(data_dir, url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def source_dir(tmp_path, settings):
    """The backed-up Stall's data directory: the test's uploads are written into it."""
    data_dir = tmp_path / "source"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(data_dir / "media")}},
        "private": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(data_dir / "private"), "base_url": None}},
    }
    return data_dir


class Writer(threading.Thread):
    """A buyer who keeps buying a 25¢ item from the wallet, one order after another, in a store
    of its own, until told to stop: the writes a backup must not tear."""

    def __init__(self, *, store, product, buyer):
        super().__init__(daemon=True)
        self.store, self.product, self.buyer = store, product, buyer
        self.stopping = threading.Event()
        self.order_ids: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                checkout = checkout_create(store=self.store, email=self.buyer.email,
                                           items=[CheckoutItem(product_id=self.product.pk)])
                checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=self.buyer)
                self.order_ids.append(checkout.order.pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connection.close()

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.order_ids) < count and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.error is None and len(self.order_ids) >= count, self.error


def account_totals() -> dict[str, tuple[int, int, int, int]]:
    return {
        a.pk: (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
        for a in Account.objects.all()
    }


def ledger_check(target: Target) -> dict[str, tuple[int, int, int, int]]:
    """Every restored account's totals are the sums of its restored transfers, and debits equal
    credits: the snapshot holds no transfer without its balance updates, nor the reverse. Returns
    the restored accounts' totals."""
    totals = {row[0]: tuple(row[1:]) for row in target.query(
        "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_account")}
    sums = {account: [0, 0, 0, 0] for account in totals}
    for debit, credit, amount, state in target.query(
            "SELECT debit_account_id, credit_account_id, amount, state FROM ledger_transfer"):
        if state == "posted":
            sums[debit][0] += amount
            sums[credit][1] += amount
        elif state == "pending":
            sums[debit][2] += amount
            sums[credit][3] += amount
    assert {k: tuple(v) for k, v in sums.items()} == totals
    assert sum(t[0] for t in totals.values()) == sum(t[1] for t in totals.values())
    return totals


@pytest.mark.django_db(transaction=True)
def test_backup_while_buying_then_restore_everything(source_dir, target, tmp_path):
    # A store with a file to sell, a paid card checkout, a wallet top-up and a spend from it.
    shop = StoreFactory(slug="shop")
    product = product_with_file(store=shop, name="Field recordings", amount=300, content=FILE_BYTES)
    card_order = buy(store=shop, product=product, email="card@example.com")
    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=2000, currency="USD", payment_method="sandbox_visa")
    checkout = checkout_create(store=shop, email=reader.email, items=[CheckoutItem(product_id=product.pk)])
    wallet_order = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader).order
    # The writer buys in a store of its own, so the shop's and the reader's accounts stay still.
    busy = StoreFactory(slug="busy")
    busy_item = product_with_file(store=busy, name="Sample", amount=25, content=b"a sample\n")
    regular = buyer_for_email(email="regular@example.com")
    for _ in range(2):
        wallet_top_up(buyer=regular, amount=20000, currency="USD", payment_method="sandbox_visa")
    writer = Writer(store=busy, product=busy_item, buyer=regular)
    writer.start()
    try:
        writer.wait_for(5)
        before_ids = set(Order.objects.values_list("id", flat=True))
        before_totals = account_totals()
        made_before = len(writer.order_ids)
        archive = tmp_path / "backup.tar.gz"
        done = stall("backup", "--output", str(archive), data_dir=source_dir, database_url=source_database_url())
        made_during = len(writer.order_ids) - made_before
    finally:
        writer.stopping.set()
        writer.join(timeout=60)
    assert writer.error is None, writer.error
    assert done.returncode == 0, done.stdout + done.stderr
    assert made_during > 0, "the writer made no order while the backup ran: nothing was tested"
    assert "Backed up to" in done.stdout and oct(archive.stat().st_mode & 0o777) == "0o600"
    all_ids = set(Order.objects.values_list("id", flat=True))
    after_totals = account_totals()

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(tar.next()))
    assert manifest["database"]["vendor"] == connection.vendor
    assert manifest["stall_version"] and manifest["created_at"]
    assert manifest["migrations"]["orders"].startswith("00") and "ledger" in manifest["migrations"]
    assert manifest["files"]["count"] == 2 and manifest["files"]["missing"] == []

    restored = target.restore(archive)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    restored_ids = {row[0] for row in target.query("SELECT id FROM orders_order")}
    # Every order made before the backup began is there, none that was never made, and exactly
    # as many as the manifest counted in the same snapshot.
    assert {card_order.pk, wallet_order.pk} | before_ids <= restored_ids <= all_ids
    assert len(restored_ids) == manifest["counts"]["orders"]
    assert target.query("SELECT COUNT(*) FROM ledger_transfer")[0][0] == manifest["counts"]["transfers"]
    restored_totals = ledger_check(target)
    assert manifest["ledger"]["debits_posted"] == sum(t[0] for t in restored_totals.values())
    # Every balance the writer did not touch is restored to the cent.
    still = {k for k in before_totals if before_totals[k] == after_totals.get(k)}
    shop_balance = Account.objects.get(kind="store_balance", owner=shop.pk).pk
    reader_wallet = Account.objects.get(kind="buyer_wallet", owner=reader.pk).pk
    assert {shop_balance, reader_wallet} <= still
    assert {k: restored_totals[k] for k in still} == {k: after_totals[k] for k in still}
    # The product's file, byte for byte, where the restored Stall's storage looks; and the key
    # that signed the download links already sent.
    stored = product.files.get().storage_name
    assert (target.data_dir / "private" / stored).read_bytes() == FILE_BYTES
    assert (target.data_dir / "secret_key").read_text() == (source_dir / "secret_key").read_text()

    # A database that holds data is not overwritten, unless told to.
    again = target.restore(archive)
    assert again.returncode == 2 and "already holds data" in again.stderr
    forced = target.restore(archive, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {row[0] for row in target.query("SELECT id FROM orders_order")} == restored_ids

    # A backup cut short is refused before anything is touched.
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    fresh = Target(tmp_path / "fresh", target.database_url)
    fresh.data_dir.mkdir()
    refused = stall("restore", str(cut), data_dir=fresh.data_dir, database_url=None)
    assert refused.returncode == 2 and "not a readable Stall backup" in refused.stderr
    assert not (fresh.data_dir / "stall.sqlite3").exists()


def crafted_archive(path: Path, manifest: dict, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def manifest_of(vendor: str, **changes) -> dict:
    files = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
    return {"format": "stall-backup", "format_version": 1, "stall_version": "0.1.0",
            "created_at": "2025-01-01T00:00:00+00:00", "database": {"vendor": vendor, "file": files[vendor]},
            "counts": {}, "ledger": {}, "migrations": {}, **changes}


@pytest.mark.django_db
def test_restore_refuses_bad_archives_with_a_clear_message(target, tmp_path):
    other = "postgresql" if connection.vendor == "sqlite" else "sqlite"
    here_file = "database.sqlite3" if connection.vendor == "sqlite" else "database.pgdump"
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(4096))
    cases = [
        (tmp_path / "nowhere.tar.gz", "No backup at"),
        (garbage, "not a readable Stall backup"),
        (crafted_archive(tmp_path / "plain.tar.gz", {"hello": 1}, {}), "not a Stall backup"),
        (crafted_archive(tmp_path / "other.tar.gz", manifest_of(other), {manifest_of(other)["database"]["file"]: b"x"}),
         "one cannot be loaded into the other"),
        (crafted_archive(tmp_path / "newer.tar.gz", manifest_of(connection.vendor, migrations={"orders": "9999_future"}),
                         {here_file: b"x"}), "newer Stall"),
        (crafted_archive(tmp_path / "hollow.tar.gz", manifest_of(connection.vendor), {}), "holds no"),
    ]
    for archive, message in cases:
        done = target.restore(archive)
        assert done.returncode == 2 and message in done.stderr, (archive.name, done.stderr)
        assert "Traceback" not in done.stderr
    # Nothing was written into the target: no database on SQLite, no table on PostgreSQL.
    if target.database_url is None:
        assert not (target.data_dir / "stall.sqlite3").exists()
    else:
        assert target.query("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


@pytest.mark.django_db(transaction=True)
def test_backup_with_no_postgresql_tools_on_path(source_dir, tmp_path, monkeypatch):
    """PostgreSQL's backup needs pg_dump, and says what to install when it is missing; SQLite's
    needs no program at all."""
    StoreFactory(slug="shop")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    archive = tmp_path / "b.tar.gz"
    done = stall("backup", "--output", str(archive), data_dir=source_dir, database_url=source_database_url())
    if connection.vendor == "postgresql":
        assert done.returncode == 2 and "pg_dump was not found on PATH" in done.stderr
        assert "postgresql-client" in done.stderr and not archive.exists()
        assert not list(tmp_path.glob(".*partial"))
    else:
        assert done.returncode == 0, done.stderr
        assert tarfile.open(archive).getnames()[:2] == ["manifest.json", "database.sqlite3"]


@pytest.mark.django_db
def test_files_in_a_bucket_are_left_there_and_the_output_says_so(settings, tmp_path, store):
    """With uploads in remote storage (S3; an in-memory storage stands in for it here, in this
    process), the archive holds the database alone and `stall backup` says where the files are."""
    remote = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
    settings.STORAGES = {**settings.STORAGES, "default": remote, "private": remote}
    product_with_file(store=store, content=b"in the bucket\n")
    result = backup_create(output=tmp_path / "b.tar.gz")
    assert result.manifest["files"] == {"storage": "s3", "count": 0, "bytes": 0, "missing": []}
    assert any("are not in the archive" in line for line in backup_summary(result))
    with tarfile.open(result.path) as tar:
        assert not [name for name in tar.getnames() if name.startswith("files/")]
