"""The health check load balancers and `stall serve` probe."""

import pytest


@pytest.mark.django_db
def test_healthz_reports_database_and_queue_ok(client):
    """With the database and the queue answering, /healthz is 200 and says so for each part."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "queue": "ok", "queue_pending": 0}


@pytest.mark.django_db
def test_healthz_counts_tasks_waiting_in_the_queue(client):
    """queue_pending is the number of tasks enqueued and not yet run."""
    from huey.contrib.djhuey import HUEY

    from stall.orders.tasks import library_link_send

    HUEY.immediate = False  # the configured queue for this test: the task waits instead of running
    try:
        HUEY.flush()  # the test data directory's queue, emptied of anything an earlier run left
        assert client.get("/healthz").json()["queue_pending"] == 0
        library_link_send("reader@example.com")
        assert client.get("/healthz").json()["queue_pending"] == 1
    finally:
        HUEY.flush()
        HUEY.immediate = True
