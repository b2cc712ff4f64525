from datetime import timedelta

import pytest
from django.utils import timezone

from stall.core.models import IdempotencyRecord
from stall.core.tasks import idempotency_records_prune

pytestmark = pytest.mark.django_db


def record(key: str, age: timedelta) -> IdempotencyRecord:
    made = IdempotencyRecord.objects.create(
        scope="s" * 64, key=key, request_hash="h" * 64, status_code=200
    )
    IdempotencyRecord.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)
    return made


def test_prune_forgets_keys_older_than_a_day_and_keeps_the_rest():
    """The hourly prune deletes Idempotency-Keys stored more than 24 hours ago, says how many, and
    keeps younger ones, which still replay."""
    record("two-days", timedelta(days=2))
    record("a-day-and-a-minute", timedelta(hours=24, minutes=1))
    record("almost-a-day", timedelta(hours=23, minutes=59))
    record("just-now", timedelta(0))

    assert idempotency_records_prune.call_local() == 2
    kept = sorted(IdempotencyRecord.objects.values_list("key", flat=True))
    assert kept == ["almost-a-day", "just-now"]
    assert idempotency_records_prune.call_local() == 0
