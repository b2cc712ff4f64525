"""Huey's SQLite queue, synced as the application's database is.

Huey opens its queue file in WAL mode but leaves SQLite's default ``synchronous=FULL``, so every
task enqueued (a receipt, a webhook delivery) waits for a flush of the disk: on a card checkout
that was the slowest of its four commits. Huey's own switch offers FULL or OFF only; OFF can
corrupt the file on a power cut. NORMAL, as Stall's database uses (stall.settings), cannot
corrupt a WAL database; a power cut may lose the last tasks enqueued, as it may lose the last
orders written — the database and its queue are as durable as each other."""

from huey import SqliteHuey
from huey.storage import SqliteStorage


class _Storage(SqliteStorage):
    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


class QueueHuey(SqliteHuey):
    storage_class = _Storage
