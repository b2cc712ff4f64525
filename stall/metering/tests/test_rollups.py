"""Rollups give exactly what the events give: random events (resent, refused, late, on the same
instant) through ingestion, meters made before and after them, and ranges cut anywhere — every
quantity read from rollups equals the same aggregation over the raw events in SQL and in Python."""

import random
from datetime import UTC, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone

from stall.ledger.tests.test_concurrency import in_threads
from stall.metering import ingest, selectors
from stall.metering.ingest import events_ingest
from stall.metering.models import Meter, UsageEvent, UsageRollup
from stall.metering.rollups import distinct_key
from stall.metering.selectors import meter_quantity
from stall.metering.services import meter_create, meter_update
from stall.orders.services import customer_for_email

from .conftest import stamp

NAMES = ["llm.tokens", "api.call"]
REGIONS = ["eu", "us", "uk", "br"]


def _properties(rng: random.Random) -> dict:
    props = {}
    if rng.random() < 0.85:  # a few events lack the property
        props["tokens"] = rng.choice([rng.randrange(0, 5000), round(rng.uniform(0, 100), 2), -rng.randrange(1, 50)])
    if rng.random() < 0.9:
        props["region"] = rng.choice(REGIONS)
    if rng.random() < 0.9:
        props["user"] = rng.choice([f"u{rng.randrange(40)}", rng.randrange(5)])
    props["seats"] = rng.randrange(1, 30)
    return props


def _send(store, customers, rng, now, n, prefix):
    events = []
    for i in range(n):
        when = now - timedelta(seconds=rng.randrange(0, 3 * 86400))
        if i % 7 == 0 and events:
            when = events[-1]["_at"]  # the same instant as another event: the row id breaks the tie
        events.append({"id": f"{prefix}{i}", "customer": rng.choice(customers).pk, "name": rng.choice(NAMES),
                       "timestamp": when.isoformat(), "properties": _properties(rng), "_at": when})
    sent = [{k: v for k, v in e.items() if k != "_at"} for e in events]
    result = events_ingest(store=store, events=sent)
    return events, result


def _truth(meter, events, pks, customer_id, start, end):
    """The meter's aggregation in plain Python over the accepted events."""
    rows = []
    for e in events:
        if e["customer"] != customer_id or e["name"] != meter.event_name or not (start <= e["_at"] < end):
            continue
        props = e["properties"]
        ok = True
        for key, wanted in (meter.filters or {}).items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if key not in props or not any(type(props[key]) is type(w) and props[key] == w for w in values):
                ok = False
        if ok:
            rows.append((e["_at"], pks[e["id"]], props))
    agg, prop = meter.aggregation, meter.property
    if agg == "count":
        return Decimal(len(rows))
    if agg == "unique_count":
        return Decimal(len({distinct_key(p[prop]) for _, _, p in rows if prop in p}))
    six = Decimal("0.000001")
    numbers = [(at, pk, Decimal(repr(p[prop])).quantize(six, ROUND_HALF_UP)) for at, pk, p in rows if prop in p]
    if agg == "sum":
        return sum((v for _, _, v in numbers), Decimal(0))
    if agg == "max":
        return max((v for _, _, v in numbers), default=Decimal(0))
    if agg == "latest":
        return max(numbers, key=lambda r: (r[0], r[1]))[2] if numbers else Decimal(0)


def _ranges(rng, now):
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    out = [
        (now - timedelta(days=4), now + timedelta(minutes=10)),  # everything, cut mid-hour both ends
        (day - timedelta(days=2), day + timedelta(days=1)),  # whole days
        (hour - timedelta(hours=20), hour - timedelta(hours=3)),  # whole hours
        (hour - timedelta(hours=5, minutes=17), hour - timedelta(hours=5, minutes=2)),  # inside one hour
        (hour - timedelta(hours=2, seconds=1), hour - timedelta(hours=1, seconds=-1)),  # just over an hour
    ]
    for _ in range(6):
        a = now - timedelta(seconds=rng.randrange(0, 4 * 86400))
        out.append((a, a + timedelta(seconds=rng.randrange(60, 3 * 86400))))
    return out


METERS = [
    dict(key="calls", event_name="api.call"),
    dict(key="calls_eu_uk", event_name="api.call", filters={"region": ["eu", "uk"]}),
    dict(key="tokens", event_name="llm.tokens", aggregation="sum", property="tokens"),
    dict(key="tokens_eu", event_name="llm.tokens", aggregation="sum", property="tokens", filters={"region": "eu"}),
    dict(key="peak", event_name="llm.tokens", aggregation="max", property="tokens"),
    dict(key="seats", event_name="api.call", aggregation="latest", property="seats"),
    dict(key="users", event_name="llm.tokens", aggregation="unique_count", property="user"),
    dict(key="users_us", event_name="api.call", aggregation="unique_count", property="user",
         filters={"region": "us"}),
]


@pytest.mark.django_db
def test_rollups_equal_the_raw_events(store):
    rng = random.Random(20261129)
    customers = [customer_for_email(store_id=store.pk, email=f"r{n}@example.com") for n in range(3)]
    before = [meter_create(store=store, name=m["key"], **m) for m in METERS[:4]]  # rolled up on ingest
    now = timezone.now()
    events, first = _send(store, customers, rng, now, 700, "a")
    resent = [{k: v for k, v in e.items() if k != "_at"} for e in events[:300]]
    again = events_ingest(store=store, events=resent)  # a resent batch is not counted again
    assert again.accepted == 0 and again.duplicates == 300
    more, _ = _send(store, customers, rng, now, 500, "b")
    events += more
    after = [meter_create(store=store, name=m["key"], **m) for m in METERS[4:]]  # rebuilt from stored events
    changed = meter_update(meter=before[1], filters={"region": "us"})  # and rebuilt when changed
    meters = [before[0], changed, *before[2:], *after]
    pks = dict(UsageEvent.objects.filter(store=store).values_list("event_id", "id"))
    assert UsageRollup.objects.exists()

    checked = 0
    for start, end in _ranges(rng, now):
        for customer in customers:
            for meter in meters:
                quantity = meter_quantity(meter=meter, customer_id=customer.pk, start=start, end=end)
                assert quantity == _truth(meter, events, pks, customer.pk, start, end), (meter.key, start, end)
                if meter.aggregation != "unique_count":
                    raw = selectors._raw(meter, customer.pk, start, end)
                    raw = raw[2] if meter.aggregation == "latest" and raw else raw
                    assert quantity == (raw if raw is not None else 0), (meter.key, start, end)
                checked += quantity != 0
    assert checked > 100  # the ranges hold events


@pytest.mark.django_db
def test_a_late_event_rolls_into_its_own_hour_and_an_older_one_is_not_the_latest(store):
    customer = customer_for_email(store_id=store.pk, email="late@example.com")
    seats = meter_create(store=store, key="seats", name="Seats", event_name="s", aggregation="latest", property="n")
    peak = meter_create(store=store, key="peak", name="Peak", event_name="s", aggregation="max", property="n")
    when = stamp(60)
    events_ingest(store=store, events=[{"id": "new", "customer": customer.pk, "name": "s", "timestamp": when,
                                        "properties": {"n": 4}}])
    events_ingest(store=store, events=[{"id": "old", "customer": customer.pk, "name": "s",
                                        "timestamp": stamp(3 * 24 * 60), "properties": {"n": 9}}])
    start, end = timezone.now() - timedelta(days=5), timezone.now()
    assert meter_quantity(meter=seats, customer_id=customer.pk, start=start, end=end) == 4
    events_ingest(store=store, events=[{"id": "same", "customer": customer.pk, "name": "s", "timestamp": when,
                                        "properties": {"n": 5}}])  # the same instant, sent after: it is the latest
    assert meter_quantity(meter=seats, customer_id=customer.pk, start=start, end=end) == 5
    assert meter_quantity(meter=peak, customer_id=customer.pk, start=start, end=end) == 9
    assert UsageRollup.objects.filter(meter=peak).count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_roll_up_each_id_once(store):
    meter_create(store=store, key="api_calls", name="Calls", event_name="api.call")
    tokens = meter_create(store=store, key="tokens", name="Tokens", event_name="api.call", aggregation="sum",
                          property="tokens")
    customers = [customer_for_email(store_id=store.pk, email=f"c{n}@example.com") for n in range(3)]
    when = stamp()

    def batch(i):
        events = [{"id": f"e{n}", "customer": customers[n % 3].pk, "name": "api.call", "timestamp": when,
                   "properties": {"tokens": n}} for n in range(i * 50, i * 50 + 150)]
        return events_ingest(store=store, events=events)

    results, errors = in_threads(4, batch)
    assert errors == [None] * 4
    distinct = 3 * 50 + 150
    rolled = UsageRollup.objects.filter(meter__key="api_calls")
    assert sum(rolled.values_list("count", flat=True)) == distinct
    start, end = timezone.now() - timedelta(hours=2), timezone.now() + timedelta(hours=1)
    total = sum(meter_quantity(meter=tokens, customer_id=c.pk, start=start, end=end) for c in customers)
    assert total == sum(range(distinct))


@pytest.mark.django_db
def test_python_values_in_properties_are_stored_and_rolled_up_as_their_text(store):
    """A caller in Python may pass a Decimal or a datetime: it is stored as JSON text, and the
    rollups read that text, as the raw events do."""
    customer = customer_for_email(store_id=store.pk, email="py@example.com")
    users = meter_create(store=store, key="users", name="Users", event_name="p", aggregation="unique_count",
                         property="user")
    result = events_ingest(store=store, events=[
        {"id": f"p{n}", "customer": customer.pk, "name": "p", "timestamp": stamp(90),
         "properties": {"user": value, "at": timezone.now()}}
        for n, value in enumerate([Decimal("1.5"), "1.5", Decimal("2")])
    ])
    assert result.accepted == 3
    start, end = timezone.now() - timedelta(days=3), timezone.now()
    assert meter_quantity(meter=users, customer_id=customer.pk, start=start, end=end) == 2
    assert meter_quantity(meter=users, customer_id=customer.pk, start=start - timedelta(minutes=7), end=end) == 2


@pytest.mark.django_db
def test_unique_count_over_any_range_equals_the_raw_distinct_values(store, django_assert_max_num_queries):
    """A unique_count read from distinct values per day, per hour within the partial days, and the
    events of the partial hours, equals the distinct values of the raw events — over random ranges
    cut to the second, ranges of whole hours inside one day, and ranges over whole days with a
    few whole and partial hours at either end — and reads at most two partial hours of events."""
    rng = random.Random(9)
    customers = [customer_for_email(store_id=store.pk, email=f"u{n}@example.com") for n in range(2)]
    users = meter_create(store=store, key="users", name="Users", event_name="llm.tokens", aggregation="unique_count",
                         property="user")
    now = timezone.now()
    events = []
    for part in range(3):  # 3,000 events over three days, sent in batches as ingestion takes them
        sent, result = _send(store, customers, rng, now, 1000, f"u{part}-")
        assert result.accepted > 400  # the rest are named api.call, which no meter here counts
        events += sent
    pks = dict(UsageEvent.objects.filter(store=store).values_list("event_id", "id"))
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ranges = []
    for _ in range(25):
        a = now - timedelta(seconds=rng.randrange(0, 4 * 86400))
        ranges.append((a, a + timedelta(seconds=rng.randrange(1, 4 * 86400))))
    for _ in range(10):
        a = day - timedelta(days=rng.randrange(1, 3), hours=rng.randrange(0, 24), seconds=rng.randrange(0, 3600))
        ranges.append((a, a + timedelta(days=1, hours=rng.randrange(1, 24), seconds=rng.randrange(0, 3600))))
    for _ in range(5):
        a = day - timedelta(days=1, hours=rng.randrange(1, 12))
        ranges.append((a, a + timedelta(hours=rng.randrange(1, 12))))
    checked = 0
    for start, end in ranges:
        for customer in customers:
            with django_assert_max_num_queries(5):  # days, the hours of two partial days, two partial hours
                quantity = meter_quantity(meter=users, customer_id=customer.pk, start=start, end=end)
            assert quantity == _truth(users, events, pks, customer.pk, start, end), (start, end)
            assert quantity == len(selectors._distinct_raw(users, customer.pk, start, end)), (start, end)
            checked += quantity > 1
    assert checked > 40


@pytest.mark.django_db
def test_a_meter_made_while_a_batch_is_checked_rolls_up_the_batch(store, monkeypatch):
    """Ingestion rolls a batch up before it writes it, with the meters it read then. A meter made
    after that but before the batch is stored (its rebuild cannot see these events) is seen when
    the batch is written, and counts the batch's events."""
    customer = customer_for_email(store_id=store.pk, email="racer@example.com")
    meter_create(store=store, key="calls", name="Calls", event_name="api.call")
    real_insert = ingest._insert

    def insert_after_a_new_meter(**kwargs):
        meter_create(store=store, key="tokens", name="Tokens", event_name="api.call", aggregation="sum",
                     property="tokens")
        return real_insert(**kwargs)

    monkeypatch.setattr(ingest, "_insert", insert_after_a_new_meter)
    result = events_ingest(store=store, events=[
        {"id": f"r{n}", "customer": customer.pk, "name": "api.call", "timestamp": stamp(), "properties": {"tokens": n}}
        for n in range(1, 5)
    ])
    assert result.accepted == 4
    tokens = Meter.objects.get(store=store, key="tokens")
    start, end = timezone.now() - timedelta(days=1), timezone.now() + timedelta(hours=1)
    assert meter_quantity(meter=tokens, customer_id=customer.pk, start=start, end=end) == 10
    assert sum(UsageRollup.objects.filter(meter=tokens).values_list("total", flat=True)) == 10
