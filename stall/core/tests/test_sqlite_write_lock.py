"""The application's queue for SQLite write transactions (STALL_SQLITE_WRITE_LOCK)."""

import fcntl
import multiprocessing
import os
import threading
from collections import Counter

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from huey.contrib.djhuey import HUEY

from stall.accounts.models import Buyer
from stall.core.sqlite import base as sqlite_base
from stall.core.sqlite.base import _WriteLock
from stall.core.sqlite.queue import QueueHuey


def _hold(path: str, log: str, ready, go) -> None:
    lock = _WriteLock(path)
    lock.acquire()
    with open(log, "a") as fh:
        fh.write("child has it\n")
    ready.set()
    go.wait(10)
    with open(log, "a") as fh:
        fh.write("child lets go\n")
    lock.release()


def test_the_lock_queues_another_process(tmp_path):
    """While another process holds the write lock, this one waits for it, then gets it."""
    path, log = str(tmp_path / "db.write-lock"), str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(path, log, ready, go))
    child.start()
    assert ready.wait(10)
    lock = _WriteLock(path)
    threading.Timer(0.2, go.set).start()
    lock.acquire()
    with open(log, "a") as fh:
        fh.write("parent has it\n")
    lock.release()
    child.join(10)
    assert open(log).read().splitlines() == ["child has it", "child lets go", "parent has it"]


@pytest.mark.django_db(transaction=True)
@override_settings(STALL_SQLITE_WRITE_LOCK=True)
def test_a_rolled_back_transaction_lets_the_next_writer_in():
    """A transaction that fails still gives the lock up: eight threads write after it, none waits forever."""
    if connection.vendor != "sqlite":
        assert connection.settings_dict["ENGINE"] != "stall.core.sqlite"  # the queue is SQLite's only
        return
    assert connection.settings_dict["ENGINE"] == "stall.core.sqlite"
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            Buyer.objects.create(email="rolled-back@example.com")
            1 / 0
    done = []

    def write(i):
        try:
            with transaction.atomic():
                Buyer.objects.create(email=f"w{i}@example.com")
            done.append(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(done) == list(range(8))
    assert Buyer.objects.filter(email__startswith="w").count() == 8
    assert not Buyer.objects.filter(email="rolled-back@example.com").exists()


def test_a_thread_waiting_past_the_busy_timeout_fails_as_sqlite_would(tmp_path, monkeypatch):
    """Behind a transaction that never ends, a waiting thread gets "database is locked" after the
    wait, like SQLite's busy_timeout, instead of hanging."""
    import threading

    from django.db import OperationalError

    from stall.core.sqlite import base as sqlite_base

    monkeypatch.setattr(sqlite_base, "WAIT_SECONDS", 0.2)
    lock = sqlite_base._WriteLock(str(tmp_path / "db.write-lock"))
    lock.acquire()
    failed = []

    def other():
        try:
            lock.acquire()
        except OperationalError as exc:
            failed.append(str(exc))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    lock.release()
    assert failed == ["database is locked"]


def test_the_sqlite_task_queue_is_synced_as_the_database_is(tmp_path):
    """Huey leaves its queue file at SQLite's synchronous=FULL (a disk flush per task enqueued);
    Stall's queue uses NORMAL in WAL mode, as its database does, and its tasks still go round."""
    assert isinstance(HUEY, QueueHuey)  # what stall.settings configures without Redis
    queue = QueueHuey("synced", filename=str(tmp_path / "queue.sqlite3"))
    conn = queue.storage.conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    @queue.task()
    def add(a, b):
        return a + b

    add(1, 2)
    assert queue.pending_count() == 1
    task = queue.dequeue()
    assert queue.execute(task) == 3


@pytest.mark.django_db(transaction=True)
@override_settings(STALL_SQLITE_WRITE_LOCK=True)
def test_checkpoints_run_once_the_queue_is_free(monkeypatch):
    """SQLite would copy its log back into the file inside commit(), with the queue still held
    and every writer waiting: a connection leaves that to SQLite only past a backstop, and runs a
    checkpoint itself every CHECKPOINT_EVERY commits, after the next writer may go."""
    if connection.vendor != "sqlite":
        assert connection.settings_dict["ENGINE"] != "stall.core.sqlite"
        return
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == sqlite_base.CHECKPOINT_BACKSTOP_PAGES
    monkeypatch.setattr(sqlite_base, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(sqlite_base, "_COMMITS", Counter())
    name = str(connection.settings_dict["NAME"])
    checkpoint, seen = sqlite_base.DatabaseWrapper._checkpoint, []

    def watched(self):
        # The queue is free: this process's threads can take it, and so can another process
        # (a lock file opened anew conflicts with this process's own flock).
        thread_free = not sqlite_base._lock_for(name).thread_lock.locked()
        fd = os.open(f"{name}.write-lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            file_free = True
        except BlockingIOError:
            file_free = False
        finally:
            os.close(fd)
        answer = checkpoint(self)
        seen.append((thread_free, file_free, answer))
        return answer

    monkeypatch.setattr(sqlite_base.DatabaseWrapper, "_checkpoint", watched)
    for i in range(5):
        with transaction.atomic():
            Buyer.objects.create(email=f"c{i}@example.com")
    assert len(seen) == 1  # the third commit, not the fifth
    thread_free, file_free, (busy, logged, copied) = seen[0]
    assert thread_free and file_free
    assert busy == 0 and logged > 0 and copied == logged  # no reader held pages back
