"""Statements over many rows, written the way each database runs them fastest.

psycopg binds parameters on the client: a statement of thousands of ``%s`` is parsed again on every
call (statements that long are not cached), which cost more than running it. On PostgreSQL a list
therefore goes in as one array parameter (``= ANY(%s)``, ``unnest``), and many rows into one table
go by COPY (600 transfer rows: about a third of a multi-row INSERT's time); SQLite's driver binds
``?`` marks natively, so it gets plain marks, ``VALUES`` and executemany (prepared once, run in C).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


def in_list(column: str, values: Sequence) -> tuple[str, list]:
    """``column IN (values)`` and its parameters."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def rows_table(name: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence]) -> tuple[str, list]:
    """A table ``name`` with ``columns`` holding ``rows``, to put after FROM, and its parameters.

    ``columns`` are (name, PostgreSQL type) pairs: ``[("id", "text"), ("amount", "bigint")]``. A
    set-based ``UPDATE … FROM <it> WHERE …`` or ``INSERT … SELECT … FROM <it>`` then writes every row
    in one statement. (Not a ``WITH``: Python's sqlite3 gives no row count for a statement that does
    not begin with its verb.) ``rows`` must not be empty."""
    names = ", ".join(column for column, _ in columns)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        return f"unnest({arrays}) AS {name}({names})", [list(values) for values in zip(*rows, strict=True)]
    marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    named = ", ".join(f"column{i} AS {column}" for i, (column, _) in enumerate(columns, 1))
    return (f"(SELECT {named} FROM (VALUES {', '.join([marks] * len(rows))})) AS {name}",
            [value for row in rows for value in row])


COPY_FROM_ROWS = 50  # fewer rows than this: one multi-row INSERT


def rows_insert(cursor, table: str, columns: tuple[str, ...], rows: list[list]) -> None:
    """Insert ``rows`` (values in ``columns``' order, as Django adapts them) into ``table``, inside
    the caller's transaction. A broken constraint raises Django's IntegrityError, as an INSERT does."""
    if not rows:
        return
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    if connection.vendor == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif connection.vendor == "sqlite" and len(rows) > 1:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})", rows)
    else:
        marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * len(rows))}",
                       [value for row in rows for value in row])
