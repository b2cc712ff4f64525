"""Operations for migrations that Django's own do not cover."""

from __future__ import annotations

from django.db import migrations


def fillfactor(table: str, percent: int):
    """A migration operation leaving ``100 - percent`` of each of ``table``'s pages free on
    PostgreSQL, for a table whose rows are updated often: a row's new version then fits on its
    own page, and an update that changes no indexed column writes no index entry (a HOT update)
    instead of one in every index of the table. Nothing on SQLite, which updates rows in place."""

    def alter(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {int(percent)})")

    def reset(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET (fillfactor)")

    return migrations.RunPython(alter, reset)
