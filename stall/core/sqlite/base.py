"""Django's SQLite backend, with write transactions queued by the application.

SQLite admits one writer at a time. With IMMEDIATE transactions a writer that finds the lock taken
waits in SQLite's busy handler, which sleeps in growing steps of up to 100 ms and so wakes late:
under load that is where long tail latencies come from. With ``STALL_SQLITE_WRITE_LOCK`` on, a
transaction first takes a lock that wakes its waiters at once — a thread lock for the threads of a
process, then an exclusive ``flock`` on a file beside the database for the other processes — and
holds it until it commits or rolls back. SQLite's own lock is then always free when BEGIN asks for
it. Statements outside a transaction (autocommit) are not queued here; they are single short writes.

Checkpoints are run here too, after the commit has let the queue go. SQLite copies its write-ahead
log back into the database file (a checkpoint, ending in a disk flush) when a commit leaves the log
past 1,000 pages, and it does so inside ``commit()``: after releasing its own write lock, but while
the queue above is still held, so every writer of every process waited behind the flush. Under
bench/unlock.py (SQLite, 32 clients) one commit in twenty took 3–8 ms that way, and with a million
orders of history behind the store (a bigger file to flush) the spend rate fell by 30%. So a
connection leaves checkpoints to SQLite only past ``CHECKPOINT_BACKSTOP_PAGES`` (a log that nobody
else copied back) and runs a passive one itself every ``CHECKPOINT_EVERY`` commits of its process,
once the next writer can go.
"""

import fcntl
import logging
import os
import sqlite3
import threading
from collections import Counter

from django.conf import settings
from django.db import OperationalError
from django.db.backends.sqlite3 import base

# As long as SQLite's own busy_timeout: a thread that waits longer fails as SQLite would, rather
# than hanging for good behind a transaction that never ends (a test holding one open, say).
WAIT_SECONDS = 20

# A spend writes about 31 pages: 32 commits are about SQLite's own 1,000-page interval.
CHECKPOINT_EVERY = 32
CHECKPOINT_BACKSTOP_PAGES = 10_000

logger = logging.getLogger(__name__)


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, with its "format" to "qmark" conversion remembered per statement text.

    Django rewrites every statement's ``%s`` into ``?`` with a regular expression on each call;
    an application sends the same few hundred statement texts over and over (a one-click unlock
    sends twelve), so the rewrite is kept once made. Bounded: past ``_CONVERTED_MAX`` texts (ad
    hoc SQL with values inlined), it starts over."""

    def convert_query(self, query, *, param_names=None):
        if param_names is not None:
            return super().convert_query(query, param_names=param_names)
        converted = _CONVERTED.get(query)
        if converted is None:
            if len(_CONVERTED) >= _CONVERTED_MAX:
                _CONVERTED.clear()
            converted = _CONVERTED[query] = super().convert_query(query)
        return converted


_CONVERTED: dict[str, str] = {}
_CONVERTED_MAX = 4096


class _WriteLock:
    def __init__(self, path: str):
        self.path = path
        self.thread_lock = threading.Lock()
        self.fd: int | None = None
        self.pid: int | None = None

    def acquire(self) -> None:
        if not self.thread_lock.acquire(timeout=WAIT_SECONDS):
            raise OperationalError("database is locked")
        try:
            if self.fd is None or self.pid != os.getpid():  # a forked worker opens its own
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.pid = os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.thread_lock.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.thread_lock.release()


_COMMITS: Counter[str] = Counter()  # per database file, in this process
_LOCKS: dict[str, _WriteLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(database: str) -> _WriteLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(database)
        if lock is None:
            lock = _LOCKS[database] = _WriteLock(f"{database}.write-lock")
        return lock


class DatabaseWrapper(base.DatabaseWrapper):
    _queued: _WriteLock | None = None

    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP_PAGES}")
        return conn

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def _start_transaction_under_autocommit(self):
        name = str(self.settings_dict["NAME"])
        if getattr(settings, "STALL_SQLITE_WRITE_LOCK", False) and not self.is_in_memory_db():
            lock = _lock_for(name)
            lock.acquire()
            self._queued = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_queue()
            raise

    def _release_queue(self) -> None:
        lock, self._queued = self._queued, None
        if lock is not None:
            lock.release()

    def _commit(self):
        try:
            super()._commit()
        finally:
            self._release_queue()
        if self.connection is not None and not self.is_in_memory_db():
            name = str(self.settings_dict["NAME"])
            _COMMITS[name] += 1
            if _COMMITS[name] % CHECKPOINT_EVERY == 0:
                self._checkpoint()

    def _checkpoint(self) -> tuple[int, int, int] | None:
        """Copy the log's committed pages into the database file, as far as readers allow, without
        waiting for anyone (PASSIVE). Outside the queue: other writers go on meanwhile. Through
        the driver's connection, not a cursor: it is not one of the request's statements. Returns
        SQLite's answer: (1 if it could not run, pages in the log, pages copied back)."""
        try:
            return self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            # The commit stands; the next due checkpoint, or SQLite's backstop, copies the pages.
            logger.warning("SQLite checkpoint failed", exc_info=True)
            return None

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_queue()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_queue()
