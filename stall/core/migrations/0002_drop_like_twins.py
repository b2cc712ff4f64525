"""Drop the LIKE twins (``varchar_pattern_ops`` indexes) that Django's PostgreSQL backend made
next to every indexed varchar column before Stall's own backend stopped making them
(stall/core/postgresql/base.py says why). Indexes a model declares with ``opclasses`` keep theirs:
only the ``…_like`` indexes Django named itself go. Nothing to do on SQLite, which never had them.

It depends on no other app's migrations: tables created after it never get twins, and on a
database that has them all, whichever order the remaining migrations run in, this drops every
twin present when it runs."""

from django.db import migrations

LIKE_TWINS_SQL = (
    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
    "AND indexname LIKE %s AND indexdef LIKE %s"
)


def drop_like_twins(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(LIKE_TWINS_SQL, ["%\\_like", "%varchar\\_pattern\\_ops%"])
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunPython(drop_like_twins, migrations.RunPython.noop, elidable=True)]
