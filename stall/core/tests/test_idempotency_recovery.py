from datetime import timedelta

import pytest
from django.utils import timezone

from stall.core.models import IdempotencyRecord


@pytest.mark.django_db
def test_a_key_left_unfinished_by_a_dead_process_is_taken_over_after_a_minute(api, product):
    """A record with no response (its process died) answers 409 while fresh, and after a minute the
    next request with the key runs and its answer is stored and replayed."""
    body = {"email": "fan@example.com", "items": [{"product": product.pk}]}
    first = api.post("/checkouts", body, idempotency_key="k-1")
    assert first.status_code == 200
    record = IdempotencyRecord.objects.get(key="k-1")
    IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=None, body=None)

    busy = api.post("/checkouts", body, idempotency_key="k-1")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"

    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    retried = api.post("/checkouts", body, idempotency_key="k-1")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    replay = api.post("/checkouts", body, idempotency_key="k-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == retried.json()["id"]
