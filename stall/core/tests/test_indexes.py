"""No LIKE twins: on PostgreSQL, no index of the schema is a ``varchar_pattern_ops`` twin that
Django's own backend would have made beside each indexed varchar column (stall/core/postgresql).
On SQLite, which never makes them, the backend's schema editor is asked directly."""

from importlib import import_module
from types import SimpleNamespace

from django.db import connection

from stall.core.postgresql.base import DatabaseSchemaEditor
from stall.ledger.models import Transfer


def test_no_index_is_a_like_twin(db):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                           "AND indexdef LIKE %s", ["%varchar\\_pattern\\_ops%"])
            assert cursor.fetchall() == []
    # What the backend makes for an indexed varchar column: its index, and no twin.
    editor = DatabaseSchemaEditor.__new__(DatabaseSchemaEditor)
    assert editor._create_like_index_sql(Transfer, Transfer._meta.get_field("idempotency_key")) is None


def test_the_migration_drops_the_twins_an_older_database_has(db):
    """A database migrated by Django's own backend has a twin beside each varchar index; core's
    migration 0002 drops them (on PostgreSQL) and leaves the other indexes alone."""
    drop_like_twins = import_module("stall.core.migrations.0002_drop_like_twins").drop_like_twins
    table = Transfer._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE INDEX ledger_transfer_reference_0_like ON {table} (reference varchar_pattern_ops)")
    before = _index_names(table)
    if connection.vendor == "postgresql":
        with connection.schema_editor() as editor:
            drop_like_twins(None, editor)
    else:  # SQLite's schema editor cannot open inside a test's transaction; nothing is run there
        drop_like_twins(None, SimpleNamespace(connection=connection))
    assert _index_names(table) == before - {"ledger_transfer_reference_0_like"}


def _index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))
