#!/usr/bin/env python
"""`stall backup` and `stall restore` of a store with a long history, with the bare copy as baseline.

    .venv/bin/python bench/backup.py [-n 100000] [--database-url postgres://…/stall_bench]

Setup: a store, a buyer and an item (bench/unlock.py's setup, in a subprocess with the bench's
STALL_DATA_DIR), then ``-n`` orders of history written with plain SQL, each with its payment,
line, entitlement, sale transfer and event (bench/unlock.py's --preload), and one 1 MB product
file. Then, timed: `stall backup` (the whole command: a fresh interpreter, Django, the snapshot,
the manifest, the tar.gz), and `stall restore` of its archive into a fresh data directory (or a
scratch database beside the bench's, dropped afterwards), migrate included.

Baseline: the bare copy a backup cannot do without, in the same run: SQLite's backup API into a
file (uncompressed), or ``pg_dump --format=custom`` to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unlock import preload  # noqa: E402  (bench/unlock.py)

FILE_SIZE = 1024 * 1024


def admin(database_url: str, *statements: str) -> None:
    import psycopg

    url = database_url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def database_size(database_url: str | None, data_dir: Path) -> int:
    if not database_url:
        return sum(p.stat().st_size for p in data_dir.glob("stall.sqlite3*"))
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def product_file(data_dir: Path, database_url: str | None, env: dict) -> None:
    """One product file of FILE_SIZE random bytes, through the services (in a subprocess)."""
    code = (
        "import django, os; django.setup(); from django.core.files.base import ContentFile;"
        "from stall.catalog.models import Product; from stall.catalog.services import product_file_add;"
        f"product_file_add(product=Product.objects.get(pk={env['product_ids'][0]!r}),"
        f" upload=ContentFile(os.urandom({FILE_SIZE}), name='field-recordings.zip'))"
    )
    subprocess.run([str(BIN / "python"), "-c", code], env=env_for(data_dir, database_url), cwd=ROOT, check=True)


def env_for(data_dir: Path, database_url: str | None) -> dict:
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "stall.settings", "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def timed(argv: list[str], env: dict) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:4])} failed:\n{done.stdout}{done.stderr}")
    return elapsed, done.stdout


def baseline(database_url: str | None, data_dir: Path, out: Path) -> float:
    began = time.perf_counter()
    if database_url:
        subprocess.run(["pg_dump", "--format=custom", f"--file={out}", "--dbname",
                        database_url.replace("postgres://", "postgresql://", 1)], check=True)
    else:
        source, target = sqlite3.connect(data_dir / "stall.sqlite3"), sqlite3.connect(out)
        source.backup(target)
        source.close()
        target.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="orders of history")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (a scratch database: it is emptied)")
    args = parser.parse_args()
    url = args.database_url
    work = Path(tempfile.mkdtemp(prefix="stall-bench-backup-"))
    data_dir, restored_dir = work / "data", work / "restored"
    data_dir.mkdir()
    restore_url = None
    if args.database_url:
        name = args.database_url.rsplit("/", 1)[1]
        restore_url = args.database_url.rsplit("/", 1)[0] + f"/{name}_restore"
        admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"',
              f'DROP DATABASE IF EXISTS "{name}_restore" WITH (FORCE)', f'CREATE DATABASE "{name}_restore"')
    try:
        spec = {"mode": "charge", "clients": 1, "per_client": 1}
        out = subprocess.run([str(BIN / "python"), str(ROOT / "bench" / "unlock.py"), "--setup", json.dumps(spec)],
                             env=env_for(data_dir, url), cwd=ROOT, check=True, capture_output=True, text=True).stdout
        env = json.loads(out.strip().splitlines()[-1])
        took = preload(args.database_url, data_dir, args.n, env)
        product_file(data_dir, url, env)
        print(f"history            {args.n:,} orders and their transfers written in {took:.0f} s", flush=True)
        size = database_size(args.database_url, data_dir)

        archive = work / "backup.tar.gz"
        backup_s, backup_out = timed([str(BIN / "python"), "-m", "stall.cli", "backup", "-o", str(archive)],
                                     env_for(data_dir, url))
        restore_s, _ = timed([str(BIN / "python"), "-m", "stall.cli", "restore", str(archive)],
                                       env_for(restored_dir, restore_url))
        bare = work / "bare.copy"
        bare_s = baseline(args.database_url, data_dir, bare)
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile(tar.next()))
    finally:
        if args.database_url:
            admin(args.database_url, f'DROP DATABASE IF EXISTS "{restore_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    assert manifest["counts"]["orders"] >= args.n, manifest["counts"]
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"database           {db}, {size / 1e6:,.1f} MB on disk")
    print(f"store              {manifest['counts']['orders']:,} orders, {manifest['counts']['transfers']:,} "
          f"ledger transfers, {manifest['files']['count']} file(s) ({manifest['files']['bytes'] / 1e6:.1f} MB)")
    inside = float(backup_out.split(" in ", 1)[1].split(" s", 1)[0])  # "Backed up to … in 1.2 s:"
    print(f"stall backup       {backup_s:.2f} s (the whole command; {inside:.2f} s of it after start-up)")
    print(f"archive            {archive.stat().st_size / 1e6:,.1f} MB (tar.gz: database, manifest, key, files)")
    print(f"stall restore      {restore_s:.2f} s into an empty {'database' if args.database_url else 'data directory'}, migrate included")
    print(f"baseline copy      {bare_s:.2f} s, {bare.stat().st_size / 1e6:,.1f} MB "
          f"({'pg_dump --format=custom' if args.database_url else 'SQLite backup API, uncompressed'})")
    print(f"ratio              {inside / bare_s:.1f}x the bare copy's time (after start-up)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
