"""Django's PostgreSQL backend, without the second index it makes for LIKE.

For every indexed or unique varchar column Django's PostgreSQL schema editor adds a twin index
with ``varchar_pattern_ops`` (``…_like``), so that ``LIKE 'abc%'`` can use an index outside the C
locale. Stall never searches an id, a foreign key, an email or a code by prefix, and every row it
writes pays for those twins: an order was in 13 indexes, 7 of them twins; a ledger transfer in
11, 5 of them twins. Without them a one-click spend, a renewal group and a campaign's settlement
write about half the index entries. Tables made before this backend lose their twins in
``core`` migration 0002. A column that one day needs prefix search declares its own index with
``opclasses`` in its model's Meta.

It also skips the health check of a connection that was used a moment ago (see
``DatabaseWrapper``)."""

import time

from django.db.backends.postgresql import base, schema

# A connection that opened a cursor (to run a statement) less than this many seconds ago is taken as alive.
HEALTH_CHECK_IDLE = 1.0


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _create_like_index_sql(self, model, field):
        return None


class DatabaseWrapper(base.DatabaseWrapper):
    """With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first statement of every
    request, one more round trip than a one-click spend's own statements (under bench/unlock.py
    on PostgreSQL, 15% of a web worker's samples waited on it; the spend rate, bound there by the
    two cores, did not move measurably without it). A kept connection is checked only
    once it has been idle ``HEALTH_CHECK_IDLE`` seconds, which is when a restarted or
    restarting server, a failover or an idle timeout has had time to break it unseen. A
    connection psycopg knows is broken or closed is checked (and replaced) whatever its age."""

    SchemaEditorClass = DatabaseSchemaEditor
    used_at: float | None = None

    def close_if_health_check_failed(self):
        conn = self.connection
        if (conn is not None and self.health_check_enabled and not self.health_check_done
                and self.used_at is not None and time.monotonic() - self.used_at < HEALTH_CHECK_IDLE
                and not conn.broken and not conn.closed):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _cursor(self, name=None):
        cursor = super()._cursor(name)
        self.used_at = time.monotonic()
        return cursor
