"""Django's PostgreSQL backend, without the second index it makes for LIKE.

For every indexed or unique varchar column Django's PostgreSQL schema editor adds a twin index
with ``varchar_pattern_ops`` (``…_like``), so that ``LIKE 'abc%'`` can use an index outside the C
locale. Stall never searches an id, a foreign key, an email or a code by prefix, and every row it
writes pays for those twins: an order was in 13 indexes, 7 of them twins; a ledger transfer in
11, 5 of them twins. Without them a one-click spend, a renewal group and a campaign's settlement
write about half the index entries. Tables made before this backend lose their twins in
``core`` migration 0002. A column that one day needs prefix search declares its own index with
``opclasses`` in its model's Meta."""

from django.db.backends.postgresql import base, schema


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _create_like_index_sql(self, model, field):
        return None


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
