"""Many rows into one table in the fewest round trips: PostgreSQL's COPY, SQLite's executemany.

The renewal task writes hundreds of payments, orders, transfers and events per transaction. On
PostgreSQL a multi-row INSERT of 600 transfer rows took about three times as long as COPY of the
same rows (parsing thousands of literals); SQLite prepares an executemany's statement once and
runs it in C. A handful of rows (a one-click spend's) go in one multi-row INSERT, as before: a COPY
costs round trips of its own.
"""

from __future__ import annotations

from django.db import connection

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
