"""stall.wsgi, as a forking server (gunicorn --preload) imports it: in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str | None:
    """This test's PostgreSQL database as a URL, or None on SQLite."""
    if connection.vendor != "postgresql":
        return None
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def test_the_application_loads_whole_and_leaves_nothing_open_for_a_fork(db, tmp_path):
    """Importing stall.wsgi imports the URLconf (so forked workers share it), closes the database
    connection and the queue's file that were open before (a worker must not inherit them), and
    freezes the objects made so far out of the garbage collector."""
    code = """
import gc, json, os, sys
import django; django.setup()
from django.db import connection
from huey.contrib.djhuey import HUEY
connection.ensure_connection()  # as anything run at start-up might have done
HUEY.pending_count()  # opens the SQLite queue
data_dir = os.environ["STALL_DATA_DIR"]
def open_in_data_dir():
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor that listed the directory
            continue
    return sorted(os.path.basename(p) for p in paths if p.startswith(data_dir))
before = open_in_data_dir()
import stall.wsgi
print(json.dumps({
    "before": before, "after": open_in_data_dir(), "connected": connection.connection is not None,
    "urls": "stall.urls" in sys.modules, "frozen": gc.get_freeze_count() > 0,
}))
"""
    env = {
        **os.environ,
        "STALL_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "stall.settings",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    if database_url():
        env["DATABASE_URL"] = database_url()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    # Open before (with SQLite's -wal and -shm files, as its journal mode has it):
    databases = (
        {"queue.sqlite3", "stall.sqlite3"} if connection.vendor == "sqlite" else {"queue.sqlite3"}
    )
    assert databases <= set(state.pop("before"))
    assert state == {"after": [], "connected": False, "urls": True, "frozen": True}
