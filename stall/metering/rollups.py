"""Rollups of usage events per meter, customer and UTC hour (and distinct values per day and per
hour), kept
as events are accepted, so a customer's month reads ~744 small rows instead of every event.

A rollup is per meter, not per event name: a meter's filter and property decide what its rows
hold. Ingestion aggregates the rows it actually wrote (not duplicates: the INSERT's RETURNING
says which) in Python and UPSERTs one row per (meter, customer, hour) in the same transaction,
so rollups are never behind the events and a resent event is never counted twice. Creating a
meter, or changing what it counts, rebuilds its rollups from the stored events.

The Python side here must agree with the SQL the selectors run over raw events (for the partial
hours at the ends of a range): a filter matches a text only to the same text and a number only
to an equal number (never a boolean); sum, max and latest read numbers rounded half-up to 6
decimals (what PostgreSQL's cast to numeric(30,6) does); unique_count keys a value by its text
(a string as it is, a number as JSON writes it), so "1" and 1 are the same value, as in
PostgreSQL's ``->>``. ``tests/test_rollups.py`` checks random events against the raw SQL.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

from django.db import connection

from .models import Aggregation, Meter, UsageDistinct, UsageDistinctHour, UsageEvent, UsageRollup

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_SIX = Decimal("0.000001")
_ZERO = Decimal(0)
_WIDE = Context(prec=60)
VALUE_MAX = 100  # longer unique_count values are keyed by their SHA-256


def hour_of(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def inner_range(start: datetime, end: datetime, unit: timedelta) -> tuple[datetime, datetime] | None:
    """The whole hours (or days) inside [start, end), or None when there is none."""
    floor = hour_of if unit == HOUR else day_of
    first = floor(start)
    if first < start:
        first += unit
    last = floor(end)
    return (first, last) if first < last else None


def number(value) -> Decimal | None:
    """A property's numeric value as the meters read it, or None (absent, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    try:
        return Decimal(repr(value)).quantize(_SIX, rounding=ROUND_HALF_UP, context=_WIDE)
    except InvalidOperation:
        return None


def distinct_key(value) -> str | None:
    """How unique_count tells values apart: their text, a long one by its hash; None for null."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > VALUE_MAX:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def _same(value, wanted) -> bool:
    if isinstance(value, bool):
        return False  # a filter is text or numbers, and JSON true is not 1
    if isinstance(wanted, str):
        return isinstance(value, str) and value == wanted
    return isinstance(value, (int, float)) and value == wanted


@dataclass(frozen=True)
class Rule:
    """What one meter takes from an event: whether it matches, and what it reads."""

    meter_id: str
    aggregation: str
    property: str
    filters: tuple[tuple[str, tuple], ...]

    @classmethod
    def of(cls, meter: Meter) -> Rule:
        return cls.of_values(meter.pk, meter.aggregation, meter.property, meter.filters)

    @classmethod
    def of_values(cls, meter_id: str, aggregation: str, prop: str, filters: dict | None) -> Rule:
        filters = tuple((key, tuple(wanted) if isinstance(wanted, list) else (wanted,))
                        for key, wanted in sorted((filters or {}).items()))
        return cls(meter_id=meter_id, aggregation=aggregation, property=prop, filters=filters)

    def matches(self, properties: dict) -> bool:
        for key, wanted in self.filters:
            if key not in properties:
                return False
            value = properties[key]
            if not any(_same(value, w) for w in wanted):
                return False
        return True


def rules_by_name(meters) -> dict[str, list[Rule]]:
    out: dict[str, list[Rule]] = {}
    for meter in meters:
        out.setdefault(meter.event_name, []).append(Rule.of(meter))
    return out


class Batch:
    """Rollup rows (and distinct values) of some events, merged in memory before one UPSERT."""

    def __init__(self) -> None:
        # (meter, customer, hour) -> [count, total, peak, latest_at, latest_event, latest]
        self.rows: dict[tuple, list] = {}
        self.distinct: set[tuple] = set()  # (meter, customer, day, value)
        self.distinct_hours: set[tuple] = set()  # (meter, customer, hour, value)

    def _row(self, key: tuple) -> list:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0, Decimal(0), None, None, None, None]
        return row

    def add_many(self, rules: list[Rule], events: list[tuple]) -> None:
        """``add`` for each of the events (row id, customer, UTC timestamp, properties), which have
        one name. The events are keyed by customer and hour once; a count, and a sum, with no
        filter — the usual meters — are then summed per key at once rather than event by event
        (whole numbers as ints, made a Decimal once per key: the same total)."""
        hours: dict = {}
        keys = []
        for _pk, customer, stamp, _properties in events:
            hour = hours.get(stamp)
            if hour is None:
                hour = hours[stamp] = stamp.replace(minute=0, second=0, microsecond=0)
            keys.append((customer, hour))
        counts = None
        for rule in rules:
            agg = rule.aggregation
            if rule.filters or agg not in (Aggregation.COUNT, Aggregation.SUM):
                for event in events:
                    self.add([rule], *event)
                continue
            if counts is None:
                counts = Counter(keys)
            meter_id = rule.meter_id
            for (customer, hour), n in counts.items():
                self._row((meter_id, customer, hour))[0] += n
            if agg != Aggregation.SUM:
                continue
            prop = rule.property
            whole: dict = {}
            exact: dict = {}
            for key, event in zip(keys, events):
                properties = event[3]
                if prop not in properties:
                    continue
                raw = properties[prop]
                if type(raw) is int:  # not a bool, whose type is bool
                    whole[key] = whole.get(key, 0) + raw
                elif (value := number(raw)) is not None:
                    exact[key] = exact.get(key, _ZERO) + value
            for part in (whole, exact):
                for (customer, hour), total in part.items():
                    self._row((meter_id, customer, hour))[1] += total

    def add(self, rules: list[Rule], pk: int, customer: str, stamp: datetime, properties: dict) -> None:
        for rule in rules:
            if rule.filters and not rule.matches(properties):
                continue
            key = (rule.meter_id, customer, stamp.replace(minute=0, second=0, microsecond=0))
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = [0, Decimal(0), None, None, None, None]
            row[0] += 1
            agg = rule.aggregation
            if agg == Aggregation.COUNT or rule.property not in properties:
                continue
            raw = properties[rule.property]
            if agg == Aggregation.UNIQUE_COUNT:
                text = distinct_key(raw)
                if text is not None:
                    self.distinct.add((rule.meter_id, customer, key[2].replace(hour=0), text))
                    self.distinct_hours.add((rule.meter_id, customer, key[2], text))
                continue
            value = number(raw)
            if value is None:
                continue
            if agg == Aggregation.SUM:
                row[1] += value
            elif agg == Aggregation.MAX:
                if row[2] is None or value > row[2]:
                    row[2] = value
            elif agg == Aggregation.LATEST and (row[3] is None or (stamp, pk) > (row[3], row[4])):
                row[3], row[4], row[5] = stamp, pk, value

    def write(self) -> None:
        """UPSERT the rows, in a stable order so two concurrent batches lock rows alike."""
        if self.rows:
            _rollups_upsert(sorted(self.rows.items()))
        if self.distinct:
            _distinct_insert(UsageDistinct, sorted(self.distinct))
        if self.distinct_hours:
            _distinct_insert(UsageDistinctHour, sorted(self.distinct_hours))
        self.rows, self.distinct, self.distinct_hours = {}, set(), set()


_ROLLUP_COLUMNS = "meter_id, customer_id, bucket, count, total, peak, latest_at, latest_event, latest"
_NEWER = "(excluded.latest_at > r.latest_at OR (excluded.latest_at = r.latest_at AND excluded.latest_event > r.latest_event))"
_TAKE_LATEST = f"excluded.latest_at IS NOT NULL AND (r.latest_at IS NULL OR {_NEWER})"


def _rollups_upsert(items: list[tuple[tuple, list]], chunk: int = 500) -> None:
    table = UsageRollup._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    update = (
        "count = r.count + excluded.count, total = r.total + excluded.total, "
        "peak = CASE WHEN excluded.peak IS NOT NULL AND (r.peak IS NULL OR excluded.peak > r.peak) "
        "THEN excluded.peak ELSE r.peak END, "
        + ", ".join(f"{col} = CASE WHEN {_TAKE_LATEST} THEN excluded.{col} ELSE r.{col} END"
                    for col in ("latest", "latest_event", "latest_at"))
    )
    buckets: dict = {}  # a batch's rows share a few hours: each adapted once
    with connection.cursor() as cursor:
        for at in range(0, len(items), chunk):
            part = items[at:at + chunk]
            params: list = []
            for (meter_id, customer, bucket), (count, total, peak, latest_at, latest_event, latest) in part:
                at_hour = buckets.get(bucket)
                if at_hour is None:
                    at_hour = buckets[bucket] = adapt(bucket)
                params += [meter_id, customer, at_hour, count, total, peak,
                           adapt(latest_at) if latest_at is not None else None, latest_event, latest]
            marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(part))
            cursor.execute(
                f"INSERT INTO {table} AS r ({_ROLLUP_COLUMNS}) VALUES {marks} "
                f"ON CONFLICT (meter_id, customer_id, bucket) DO UPDATE SET {update}", params,
            )


def _distinct_insert(model, items: list[tuple], chunk: int = 500) -> None:
    table = model._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for at in range(0, len(items), chunk):
            part = items[at:at + chunk]
            params: list = []
            for meter_id, customer, bucket, value in part:
                params += [meter_id, customer, adapt(bucket), value]
            marks = ", ".join(["(%s, %s, %s, %s)"] * len(part))
            cursor.execute(
                f"INSERT INTO {table} (meter_id, customer_id, bucket, value) VALUES {marks} "
                "ON CONFLICT (meter_id, customer_id, bucket, value) DO NOTHING", params,
            )


def meter_rollups_rebuild(*, meter: Meter, chunk: int = 5000) -> None:
    """Drop a meter's rollups and build them again from every stored event of its name (call it
    inside the transaction that created or changed the meter)."""
    UsageRollup.objects.filter(meter=meter).delete()
    UsageDistinct.objects.filter(meter=meter).delete()
    UsageDistinctHour.objects.filter(meter=meter).delete()
    rules = [Rule.of(meter)]
    batch = Batch()
    events = UsageEvent.objects.filter(store_id=meter.store_id, name=meter.event_name).order_by()
    for n, (pk, customer, stamp, properties) in enumerate(
        events.values_list("id", "customer_id", "timestamp", "properties").iterator(chunk_size=chunk), start=1
    ):
        batch.add(rules, pk, customer, stamp.astimezone(UTC), properties if isinstance(properties, dict) else {})
        if n % chunk == 0:
            batch.write()
    batch.write()
