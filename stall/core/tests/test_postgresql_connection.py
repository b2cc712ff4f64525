"""A kept PostgreSQL connection is checked before a request's first statement only after it idled,
and the statements it repeats are prepared on the server."""

import pytest
from django.conf import settings
from django.db import connection, connections

from stall.core.postgresql import base


def _first_statement_of_a_request() -> None:
    connection.close_if_unusable_or_obsolete()  # what request_started does
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")


@pytest.mark.django_db(transaction=True)
def test_a_busy_connection_is_not_checked_an_idle_one_is(monkeypatch):
    """No SELECT 1 before a request's first statement on a connection used a moment ago; one on a
    connection idle for longer than HEALTH_CHECK_IDLE."""
    if connection.vendor != "postgresql":
        assert not connection.settings_dict.get("CONN_HEALTH_CHECKS")  # SQLite has no server to lose
        return
    assert connection.health_check_enabled
    checks = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or usable())
    connection.ensure_connection()
    _first_statement_of_a_request()
    _first_statement_of_a_request()
    assert checks == []  # used a moment ago: no SELECT 1
    connection.used_at -= base.HEALTH_CHECK_IDLE + 1
    _first_statement_of_a_request()
    assert checks == [1]  # idle: checked once, then not again in that request
    with connection.cursor() as cursor:
        cursor.execute("SELECT 3")
    assert checks == [1]


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_after_idling():
    """The server ends the session (a restart, an idle timeout): the next request after an idle
    moment gets a new connection instead of an error."""
    if connection.vendor != "postgresql":
        assert connection.settings_dict["ENGINE"] == "stall.core.sqlite"
        return
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    finally:
        other.close()
    connection.used_at -= base.HEALTH_CHECK_IDLE + 1
    _first_statement_of_a_request()
    assert connection.connection.info.backend_pid != old_pid


@pytest.mark.django_db(transaction=True)
def test_a_statement_a_connection_repeats_is_prepared_on_the_server():
    """Values travel apart from the statement, and once a connection has sent a statement
    PREPARE_THRESHOLD times it is prepared on the server: PostgreSQL plans it then, not per call."""
    if connection.vendor != "postgresql":
        assert "server_side_binding" not in connection.settings_dict["OPTIONS"]  # SQLite binds its own
        return
    connection.ensure_connection()
    sql = "SELECT id FROM ledger_account WHERE id = %s AND currency = %s"

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement = %s",
                           [sql.replace("%s", "$1", 1).replace("%s", "$2", 1)])
            return cursor.fetchone()[0]

    for n in range(settings.PREPARE_THRESHOLD + 1):  # psycopg prepares it the time after the threshold
        assert prepared() == 0
        with connection.cursor() as cursor:
            cursor.execute(sql, [f"acct_{n}", "USD"])
    assert prepared() == 1
