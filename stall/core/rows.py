"""Model instances from a hand-written SELECT, for the few reads on the hot path.

Building a query with the ORM costs about a millisecond of CPU for a join of three tables (the
compiler runs on every call; Django keeps no compiled SQL), against some tens of microseconds for
running it. A read that every one-click spend makes is written as SQL instead, and this turns
its rows into the same model instances the ORM would have made: the columns in field order
(``model_columns``), each value passed through the converters the ORM itself applies (dates read
back from SQLite's text, booleans from integers), then ``Model.from_db``, so the instance is one
loaded from the database in every way (``_state``, deferred fields, ``refresh_from_db``).
"""

from __future__ import annotations

from django.db import connections


def model_columns(model, alias: str) -> str:
    """The model's concrete columns, in field order, qualified by ``alias``."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


_CONVERTERS: dict[tuple[str, type], list] = {}


def _converters(model, using: str) -> list:
    key = (using, model)
    found = _CONVERTERS.get(key)
    if found is None:
        connection = connections[using]
        found = []
        for field in model._meta.concrete_fields:
            col = field.get_col(model._meta.db_table)
            found.append((col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)))
        _CONVERTERS[key] = found
    return found


def model_from_row(model, row, *, using: str = "default"):
    """An instance of ``model`` from ``row``: its ``model_columns`` values, in order."""
    connection = connections[using]
    values = []
    for value, (col, converters) in zip(row, _converters(model, using), strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        values.append(value)
    return model.from_db(using, None, values)
