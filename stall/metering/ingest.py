"""Ingestion of usage events: a batch of up to 1,000 checked event by event, then one bulk INSERT.

Each event is answered on its own — ``accepted``, ``duplicate`` or ``refused`` with a code and a
reason — so one bad event never refuses the batch. The event's ``id`` is the integrator's
idempotency key within the store: the INSERT skips ids the store already holds
(``ON CONFLICT (store_id, event_id) DO NOTHING``) and ``RETURNING`` tells which rows it wrote, so
a resent event, or one sent by two senders at once, is stored and counted once, and the sender
that did not write it hears ``duplicate``. A duplicate keeps the first event as it was sent.

Refused: a timestamp older than 35 days or more than 5 minutes ahead (or not a timestamp), an
unknown customer (or another store's), a name no meter of the store counts, a property that a
``sum``, ``max`` or ``latest`` meter reads holding something other than a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from stall.accounts.models import Customer
from stall.stores.models import Store

from . import rollups
from .errors import EventsInvalid
from .models import (
    NUMERIC_AGGREGATIONS,
    Aggregation,
    BillingMode,
    Meter,
    UsageEvent,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .tasks import usage_bill_live_task

BATCH_MAX = 1000
OLDEST = timedelta(days=35)
NEWEST = timedelta(minutes=5)
ID_MAX = 255
NAME_MAX = 120
PROPERTIES_MAX = 4096  # bytes of JSON per event

ACCEPTED, DUPLICATE, REFUSED = "accepted", "duplicate", "refused"


@dataclass
class EventResult:
    id: object
    status: str
    code: str | None = None
    message: str | None = None
    param: str | None = None

    def as_dict(self) -> dict:
        out = {"id": self.id, "status": self.status}
        if self.status == REFUSED:
            out["error"] = {"code": self.code, "message": self.message, "param": self.param}
        return out


@dataclass
class IngestResult:
    """Each event's answer, in the order sent, kept as two lists (its id and status) and the
    refusals by position rather than as an EventResult each: a thousand small objects a batch
    cost more than the answer is worth, and the API writes it from the lists."""

    ids: list  # each event's id as answered (None, or a number, only in a refusal)
    statuses: list[str]
    refusals: dict[int, EventResult]
    accepted: int
    duplicates: int
    refused: int
    live_subscriptions: list[str]  # live subscriptions whose customers got new usage

    @property
    def results(self) -> list[EventResult]:
        refusals = self.refusals
        return [refusals[i] if i in refusals else EventResult(id=event_id, status=status)
                for i, (event_id, status) in enumerate(zip(self.ids, self.statuses))]


def _refuse(event_id, code: str, message: str, param: str | None = None) -> EventResult:
    return EventResult(id=event_id, status=REFUSED, code=code, message=message, param=param)


def timestamp_parse(value) -> datetime | None:
    """An ISO 8601 timestamp with an offset ("2026-11-29T16:00:00Z") or Unix seconds; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = parse_datetime(value)
        except ValueError:
            return None
        if parsed is None or timezone.is_naive(parsed):
            return None
        return parsed.astimezone(dt_timezone.utc)
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def _meters_of(store: Store) -> list[tuple]:
    """The store's meters as (id, event name, aggregation, property, filters), in id order. In
    SQL, not the ORM: it runs twice a batch, and building the query cost more than running it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, event_name, aggregation, property, filters FROM {Meter._meta.db_table} "
                       "WHERE store_id = %s ORDER BY id", [store.pk])
        rows = cursor.fetchall()
    # The filters' JSON comes back as text (SQLite, and Django's psycopg set-up) or parsed.
    return [(pk, name, agg, prop, json.loads(filters) if isinstance(filters, str) else filters)
            for pk, name, agg, prop, filters in rows]


def _meters_by_name(meters: list[tuple]) -> dict[str, list[tuple[str, str]]]:
    """For each event name a meter counts: the properties its numeric meters read."""
    out: dict[str, list[tuple[str, str]]] = {}
    for _pk, name, agg, prop, _filters in meters:
        numeric = out.setdefault(name, [])
        if agg in NUMERIC_AGGREGATIONS and prop:
            numeric.append((prop, agg))
    return out


def _refuse_to_encode(value):
    raise TypeError(f"{type(value).__name__} is not JSON")


# The json module's C encoder with its default settings, made once: ``JSONEncoder().encode`` makes
# a new one on every call, which cost more than encoding an event's few properties. No check for
# cycles (JSON parsed from a request has none; a Python caller's cycle is a RecursionError). A
# property that is NaN or Infinity (which json.loads lets through) shows in its text, and only
# then is the strict encoder asked.
_encode_parts = json.encoder.c_make_encoder(
    None, _refuse_to_encode, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True,
) if json.encoder.c_make_encoder is not None else None
_encode_strict = json.JSONEncoder(allow_nan=False).encode


if _encode_parts is not None:
    def _encode(properties: dict, _join="".join, _parts=_encode_parts) -> str:
        return _join(_parts(properties, 0))
else:  # a Python without the C accelerator
    def _encode(properties: dict) -> str:
        return json.JSONEncoder().encode(properties)


def _properties_encode(properties: dict) -> tuple[str | None, dict]:
    """The properties as JSON text (None if they are not plain JSON), and as the rollups read
    them: what a caller in Python passed as a Decimal or a datetime is stored, and read, as text."""
    try:
        encoded = _encode(properties)
    except (TypeError, ValueError, RecursionError):
        try:
            encoded = json.dumps(properties, cls=DjangoJSONEncoder, allow_nan=False)
        except (TypeError, ValueError):
            return None, properties
        return encoded, json.loads(encoded)
    if "NaN" in encoded or "Infinity" in encoded:
        try:
            _encode_strict(properties)
        except ValueError:
            return None, properties
    return encoded, properties


class _Stamps:
    """Each distinct timestamp of a batch parsed and adapted for the database once."""

    def __init__(self, now):
        self.oldest, self.newest = now - OLDEST, now + NEWEST
        self.adapt = connection.ops.adapt_datetimefield_value
        self.seen: dict = {}

    def get(self, value):
        """(UTC datetime, database value), or (None, a refusal's (code, message))."""
        if type(value) is str:  # the usual case, looked up without making a key
            out = self.seen.get(value)
            if out is not None:
                return out
        key = value if type(value) is str else (type(value), value)  # 1, 1.0 and True: one dict key, not one type
        try:
            return self.seen[key]
        except KeyError:
            pass
        except TypeError:  # not hashable: not a timestamp
            return None, _BAD_STAMP
        stamp = timestamp_parse(value)
        if stamp is None:
            out = None, _BAD_STAMP
        elif stamp < self.oldest:
            out = None, ("timestamp_too_old", "Events older than 35 days are not accepted.")
        elif stamp > self.newest:
            out = None, ("timestamp_in_future", "Events more than 5 minutes in the future are not accepted.")
        else:
            out = stamp, self.adapt(stamp)
        self.seen[key] = out
        return out


_BAD_STAMP = ("invalid_timestamp",
              "The timestamp must be ISO 8601 with a time zone (2026-11-29T16:00:00Z) or Unix seconds.")


def _check(raw, stamps: _Stamps, meters, customers, seen) -> tuple | EventResult:
    """The event's row to write (a tuple), or its answer: refused, or a duplicate of one before it
    in the batch."""
    if not isinstance(raw, dict):
        return _refuse(None, "invalid_event", "Each event must be an object.")
    get = raw.get
    event_id = get("id")
    if not isinstance(event_id, str) or len(event_id) > ID_MAX or not event_id.strip():
        return _refuse(event_id if isinstance(event_id, (str, int)) else None, "invalid_event",
                       f"The event id must be text of 1 to {ID_MAX} characters.", "id")
    customer = get("customer")
    if not isinstance(customer, str) or customer not in customers:
        return _refuse(event_id, "customer_missing", "No such customer in this store.", "customer")
    name = get("name")
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        return _refuse(event_id, "invalid_event", f"The event name must be text of 1 to {NAME_MAX} characters.", "name")
    numeric = meters.get(name)
    if numeric is None:
        return _refuse(event_id, "meter_missing", f"No meter of this store counts events named {name!r}.", "name")
    stamp, db_stamp = stamps.get(get("timestamp"))
    if stamp is None:
        code, message = db_stamp
        return _refuse(event_id, code, message, "timestamp")
    properties = get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        return _refuse(event_id, "invalid_event", "Properties must be an object.", "properties")
    for prop, agg in numeric:
        if prop in properties and type(properties[prop]) is not int and not _is_number(properties[prop]):
            return _refuse(event_id, "invalid_property", f"The {agg} meter on {prop!r} needs a number.",
                           f"properties.{prop}")
    encoded, properties = _properties_encode(properties)
    if encoded is None:
        return _refuse(event_id, "invalid_event", "Properties must be plain JSON.", "properties")
    if len(encoded) > PROPERTIES_MAX:
        return _refuse(event_id, "invalid_event", f"Properties can be at most {PROPERTIES_MAX} bytes of JSON.",
                       "properties")
    if event_id in seen:
        return EventResult(id=event_id, status=DUPLICATE)
    seen.add(event_id)
    return (event_id, customer, name, stamp, db_stamp, encoded, properties)


_COLUMNS = ("store_id", "event_id", "customer_id", "name", "timestamp", "properties", "received_at")


def _insert_statement(*, store_id: str, rows: list[tuple], now) -> tuple[str, list]:
    """One INSERT of the rows, made before the transaction so that its write lock is not held
    while a thousand rows' values are gathered."""
    table = UsageEvent._meta.db_table
    received = connection.ops.adapt_datetimefield_value(now)
    # PostgreSQL reads the JSON text as jsonb; SQLite stores it as it is.
    json_mark = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    marks = "(%s, %s, %s, %s, %s, " + json_mark + ", %s)"
    params = []
    extend = params.extend
    for event_id, customer, name, _stamp, db_stamp, encoded, _properties in rows:
        extend((store_id, event_id, customer, name, db_stamp, encoded, received))
    sql = (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {', '.join([marks] * len(rows))} "
        "ON CONFLICT (store_id, event_id) DO NOTHING RETURNING event_id, id"
    )
    return sql, params


def _insert(*, sql: str, params: list) -> dict[str, int]:
    """Run the INSERT; the event ids it wrote (not those the store already held), each with its
    row id."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def _rollups_batch(*, meters: list[tuple], rows: list[tuple], written: dict[str, int] | None) -> rollups.Batch:
    """The rollup rows of the events written (all of ``rows`` when ``written`` is None)."""
    rules: dict[str, list[rollups.Rule]] = {}
    for pk, name, agg, prop, filters in meters:
        rules.setdefault(name, []).append(rollups.Rule.of_values(pk, agg, prop, filters))
    by_name: dict[str, list[tuple]] = {}
    for event_id, customer, name, stamp, _db_stamp, _encoded, properties in rows:
        if name in rules:
            pk = 0 if written is None else written.get(event_id)
            if pk is not None:
                by_name.setdefault(name, []).append((pk, customer, stamp, properties))
    batch = rollups.Batch()
    for name, events in by_name.items():
        batch.add_many(rules[name], events)
    return batch


def _rollups_add(*, store: Store, meters: list[tuple], batch: rollups.Batch, rows: list[tuple],
                 written: dict[str, int]) -> None:
    """Roll the rows just written into their meters' rollups (inside the INSERT's transaction).

    ``batch`` was computed before the transaction from ``meters`` (read before it too) as if
    every row were written, to keep the Python work out of the time the write lock is held. The
    meters are read again after the INSERT, under a share lock on the store on PostgreSQL
    (SQLite's write lock is already held), so a meter created or changed at the same time either
    sees these events when it rebuilds its rollups or is seen here — never neither; when they
    changed, or some rows were not written (duplicates), the batch is computed again. The latest
    aggregation orders by row id, which only the INSERT gives, so a batch with a latest meter is
    always computed here."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {Store._meta.db_table} WHERE id = %s FOR SHARE", [store.pk])
    now_meters = _meters_of(store)
    if now_meters != meters or len(written) != len(rows) or _needs_row_ids(now_meters):
        batch = _rollups_batch(meters=now_meters, rows=rows, written=written)
    batch.write()


def _needs_row_ids(meters: list[tuple]) -> bool:
    return any(agg == Aggregation.LATEST for _pk, _name, agg, _prop, _filters in meters)


def events_ingest(*, store: Store, events) -> IngestResult:
    """Record a batch of usage events for ``store``; see the module docstring for the answers."""
    if not isinstance(events, list):
        raise EventsInvalid("Send the events as a list.", param="events")
    if len(events) > BATCH_MAX:
        raise EventsInvalid(
            f"A batch holds at most {BATCH_MAX:,} events; this one has {len(events):,}. Split it.", param="events"
        )
    now = timezone.now()
    meters = _meters_of(store)
    numeric = _meters_by_name(meters)
    wanted = {c for e in events if isinstance(e, dict) and isinstance(c := e.get("customer"), str)}
    customers = _customers_of(store, wanted)
    ids: list = []
    statuses: list[str] = []
    refusals: dict[int, EventResult] = {}
    rows: list[tuple] = []
    at: list[int] = []
    seen: set[str] = set()
    stamps = _Stamps(now)
    for raw in events:
        out = _check(raw, stamps, numeric, customers, seen)
        if type(out) is tuple:
            at.append(len(statuses))
            rows.append(out)
            ids.append(out[0])
            statuses.append(ACCEPTED)  # or a duplicate: told by the INSERT
        else:
            if out.status == REFUSED:
                refusals[len(statuses)] = out
            ids.append(out.id)
            statuses.append(out.status)
    live: list[str] = []
    written: dict[str, int] = {}
    if rows:
        batch = rollups.Batch() if _needs_row_ids(meters) else _rollups_batch(meters=meters, rows=rows, written=None)
        sql, params = _insert_statement(store_id=store.pk, rows=rows, now=now)
        with transaction.atomic():
            written = _insert(sql=sql, params=params)
            if written:
                _rollups_add(store=store, meters=meters, batch=batch, rows=rows, written=written)
        if len(written) < len(rows):
            for index, row in zip(at, rows):
                if row[0] not in written:
                    statuses[index] = DUPLICATE
        if len(written) == len(statuses):  # every event written: each checked customer has some
            live = _live_subscriptions(customers)
        elif written:
            live = _live_subscriptions({row[1] for row in rows if row[0] in written})
    for pk in live:  # after the commit (at once outside a transaction): the charge reads the new rows
        transaction.on_commit(lambda pk=pk: usage_bill_live_task(pk))
    return IngestResult(
        ids=ids, statuses=statuses, refusals=refusals, accepted=len(written),
        duplicates=len(statuses) - len(written) - len(refusals), refused=len(refusals), live_subscriptions=live,
    )


# The two look-ups below are in SQL rather than the ORM for the reason _meters_of is: with a
# hundred ids in an IN list, building the query cost more than running it.


def _customers_of(store: Store, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` are the store's customers."""
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {Customer._meta.db_table} WHERE store_id = %s AND id IN "
                       f"({', '.join(['%s'] * len(wanted))})", [store.pk, *wanted])
        return {pk for (pk,) in cursor.fetchall()}


def _live_subscriptions(customers: set[str]) -> list[str]:
    """The active live-billed usage subscriptions of these customers."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {UsageSubscription._meta.db_table} WHERE billing = %s AND status = %s "
                       f"AND customer_id IN ({', '.join(['%s'] * len(customers))})",
                       [BillingMode.LIVE.value, UsageSubscriptionStatus.ACTIVE.value, *customers])
        return [pk for (pk,) in cursor.fetchall()]
