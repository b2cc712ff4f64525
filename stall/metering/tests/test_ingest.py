"""Ingestion: each event answered on its own; duplicates counted once; bad events refused."""

from datetime import timedelta

import pytest
from django.utils import timezone

from stall.metering.errors import EventsInvalid
from stall.metering.ingest import events_ingest
from stall.metering.models import UsageEvent
from stall.metering.services import meter_create
from stall.orders.services import customer_for_email
from stall.testing import StoreFactory

from .conftest import send, stamp

pytestmark = pytest.mark.django_db


def _event(who, id="e1", **changes):
    event = {"id": id, "customer": who.pk, "name": "api.call", "timestamp": stamp(), "properties": {}}
    event.update(changes)
    return event


def test_a_resent_batch_changes_nothing(store, customer, calls):
    first = send(store, customer, n=5)
    again = send(store, customer, n=5)
    assert (first.accepted, first.duplicates) == (5, 0)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert [r.status for r in again.results] == ["duplicate"] * 5
    assert UsageEvent.objects.filter(store=store).count() == 5


def test_the_same_id_twice_in_one_batch_is_a_duplicate(store, customer, calls):
    result = events_ingest(store=store, events=[_event(customer), _event(customer)])
    assert [r.status for r in result.results] == ["accepted", "duplicate"]


def test_another_store_may_use_the_same_event_ids(store, customer, calls):
    other = StoreFactory()
    meter_create(store=other, key="api_calls", name="Calls", event_name="api.call")
    their = customer_for_email(store_id=other.pk, email="x@example.com")
    send(store, customer, n=2)
    assert send(other, their, n=2).accepted == 2


@pytest.mark.parametrize("timestamp, code", [
    # Relative times are worked out when the test runs (a callable), not when the suite is collected:
    # a long run would otherwise make "6 minutes ahead" the past by the time it is sent.
    (lambda: (timezone.now() - timedelta(days=35, minutes=1)).isoformat(), "timestamp_too_old"),
    (lambda: (timezone.now() + timedelta(minutes=6)).isoformat(), "timestamp_in_future"),
    ("2026-13-45T00:00:00Z", "invalid_timestamp"),
    ("yesterday", "invalid_timestamp"),
    ("2026-11-29T10:00:00", "invalid_timestamp"),  # no time zone
    (None, "invalid_timestamp"),
    (True, "invalid_timestamp"),
])
def test_late_future_and_malformed_timestamps_are_refused_per_event(store, customer, calls, timestamp, code):
    timestamp = timestamp() if callable(timestamp) else timestamp
    result = events_ingest(store=store, events=[_event(customer, id="bad", timestamp=timestamp), _event(customer, id="ok")])
    assert [r.status for r in result.results] == ["refused", "accepted"]
    assert result.results[0].as_dict()["error"]["code"] == code
    assert result.results[0].param == "timestamp"


def test_recent_past_and_near_future_and_unix_seconds_are_accepted(store, customer, calls):
    events = [
        _event(customer, id="a", timestamp=(timezone.now() - timedelta(days=34)).isoformat()),
        _event(customer, id="b", timestamp=(timezone.now() + timedelta(minutes=4)).isoformat()),
        _event(customer, id="c", timestamp=int(timezone.now().timestamp())),
    ]
    assert events_ingest(store=store, events=events).accepted == 3


def test_bad_events_are_refused_with_a_reason_and_the_rest_accepted(store, customer, calls):
    other_store = StoreFactory()
    theirs = customer_for_email(store_id=other_store.pk, email="y@example.com")
    meter_create(store=store, key="tokens", name="Tokens", event_name="llm", aggregation="sum", property="tokens")
    events = [
        _event(customer, id="unknown-customer", customer="cus_nobody"),
        _event(customer, id="their-customer", customer=theirs.pk),
        _event(customer, id="no-meter", name="never.metered"),
        _event(customer, id="text-tokens", name="llm", properties={"tokens": "many"}),
        _event(customer, id="bool-tokens", name="llm", properties={"tokens": True}),
        _event(customer, id="", ),
        "not an object",
        _event(customer, id="list-props", properties=[1, 2]),
        _event(customer, id="fine"),
    ]
    result = events_ingest(store=store, events=events)
    codes = [(r.status, r.code, r.param) for r in result.results]
    assert codes == [
        ("refused", "customer_missing", "customer"),
        ("refused", "customer_missing", "customer"),
        ("refused", "meter_missing", "name"),
        ("refused", "invalid_property", "properties.tokens"),
        ("refused", "invalid_property", "properties.tokens"),
        ("refused", "invalid_event", "id"),
        ("refused", "invalid_event", None),
        ("refused", "invalid_event", "properties"),
        ("accepted", None, None),
    ]
    assert UsageEvent.objects.filter(store=store).count() == 1


def test_more_than_a_thousand_events_refuse_the_batch(store, customer, calls):
    with pytest.raises(EventsInvalid, match="at most 1,000 events; this one has 1,001"):
        events_ingest(store=store, events=[_event(customer, id=f"e{i}") for i in range(1001)])
    assert not UsageEvent.objects.exists()
    assert events_ingest(store=store, events=[_event(customer, id=f"e{i}") for i in range(1000)]).accepted == 1000
