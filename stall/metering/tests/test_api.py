"""API v1: event batches, a customer's usage, meters, plans and usage subscriptions, and the
errors for bad input — an error object with a 4xx, never a 500."""

import hashlib
import json

import pytest

from stall.integrations.services import api_key_create
from stall.metering.models import MeteredPrice
from stall.orders.services import customer_for_email
from stall.testing import StoreFactory

from .conftest import stamp

pytestmark = pytest.mark.django_db


def _events(customer_id, n, prefix="e", **changes):
    return [dict({"id": f"{prefix}{i}", "customer": customer_id, "name": "api.call", "timestamp": stamp(0)}, **changes)
            for i in range(n)]


@pytest.fixture
def setup(api, store, customer, allowance):
    assert api.post("/meters", {"key": "api_calls", "name": "API calls", "event_name": "api.call"}).status_code == 200
    meter = api.post("/meters", {"key": "tokens", "name": "Tokens", "event_name": "llm", "aggregation": "sum",
                                 "property": "tokens"}).json()
    plan = api.post("/plans", {"name": "API", "prices": [
        {"meter": "api_calls", "unit_price": "0.2"},
        {"meter": "tokens", "model": "tiered", "tiers": [{"up_to": 1000, "unit_price": 0}, {"up_to": None, "unit_price": "0.01"}]},
    ]}).json()
    sub = api.post("/usage_subscriptions", {"customer": customer.pk, "plan": plan["id"], "threshold": 5}).json()
    return {"meter": meter, "plan": plan, "sub": sub}


def test_meter_plan_and_subscription_are_created_and_read_back(api, setup, customer):
    assert setup["meter"]["aggregation"] == "sum" and setup["meter"]["id"].startswith("mtr_")
    assert [p["unit_price"] for p in setup["plan"]["prices"]] == ["0.2", "0"]
    assert setup["plan"]["prices"][1]["tiers"] == [{"up_to": "1000", "unit_price": "0"}, {"up_to": None, "unit_price": "0.01"}]
    assert setup["sub"]["status"] == "active" and setup["sub"]["customer"] == customer.pk
    assert api.get(f"/plans/{setup['plan']['id']}").json()["name"] == "API"
    assert [m["key"] for m in api.get("/meters").json()["data"]] == ["tokens", "api_calls"]
    updated = api.post(f"/meters/{setup['meter']['id']}", {"filters": {"model": ["small", "large"]}}).json()
    assert updated["filters"] == {"model": ["small", "large"]} and updated["property"] == "tokens"
    assert api.get(f"/usage_subscriptions/{setup['sub']['id']}").json()["threshold"] == 5


def test_a_batch_is_answered_per_event_and_usage_is_rated(api, setup, customer, django_capture_on_commit_callbacks):
    body = {"events": _events(customer.pk, 30) + [
        {"id": "t1", "customer": customer.pk, "name": "llm", "timestamp": stamp(0), "properties": {"tokens": 1500}},
        {"id": "t2", "customer": customer.pk, "name": "llm", "timestamp": stamp(0), "properties": {"tokens": "lots"}},
    ]}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/events", body)
    assert response.status_code == 200
    out = response.json()
    assert (out["accepted"], out["duplicates"], out["refused"]) == (31, 0, 1)
    assert out["data"][-1] == {"id": "t2", "status": "refused", "error": {
        "code": "invalid_property", "message": "The sum meter on 'tokens' needs a number.", "param": "properties.tokens"}}
    again = api.post("/events", body).json()
    assert (again["accepted"], again["duplicates"], again["refused"]) == (0, 31, 1)
    usage = api.get(f"/customers/{customer.pk}/usage").json()
    assert [(m["meter"], m["quantity"], m["cost"]) for m in usage["meters"]] == [
        ("api_calls", "30", {"exact": "6", "amount": 6}),
        ("tokens", "1500", {"exact": "5", "amount": 5}),
    ]
    assert usage["total"] == {"exact": "11", "amount": 11}
    assert usage["charged"] == 11  # charged live: 11¢ had accrued past the 5¢ threshold
    one = api.get(f"/customers/{customer.pk}/usage", {"meter": "tokens"}).json()
    assert [m["meter"] for m in one["meters"]] == ["tokens"]


def test_a_customers_usage_lists_the_meters_by_name_whatever_their_prices_ids(api, setup, customer):
    """A plan's prices are made in one request, so their ids are in no set order within that
    millisecond: the usage answer lists the meters by name all the same, as the invoice does."""
    prices = {p.meter.key: p.pk for p in MeteredPrice.objects.filter(plan_id=setup["plan"]["id"]).select_related("meter")}
    MeteredPrice.objects.filter(pk=prices["api_calls"]).update(id="mprice_" + "z" * 26)  # now after tokens' price
    usage = api.get(f"/customers/{customer.pk}/usage").json()
    assert [m["meter"] for m in usage["meters"]] == ["api_calls", "tokens"]

def test_a_batch_resent_with_its_key_replays_its_answer_and_counts_nothing_again(api, setup, customer):
    """The answer to a batch of a thousand (stored compressed) is replayed byte for byte with its
    Idempotency-Key; the same key with another body is refused; a new key hears duplicates. A
    record stored before answers were compressed still replays."""
    from stall.core.models import IdempotencyRecord
    from stall.metering.models import UsageEvent, UsageRollup

    body = {"events": _events(customer.pk, 999) + [{"id": "bad", "customer": "cus_none", "name": "api.call",
                                                    "timestamp": stamp(0)}]}
    first = api.post("/events", body, idempotency_key="batch-1")
    assert (first.json()["accepted"], first.json()["refused"]) == (999, 1)
    record = IdempotencyRecord.objects.get(key="batch-1")
    assert record.compressed and len(record.body) < len(first.content) / 4
    replay = api.post("/events", body, idempotency_key="batch-1")
    assert replay.content == first.content and replay.headers["Idempotent-Replayed"] == "true"
    other = api.post("/events", {"events": body["events"][:10]}, idempotency_key="batch-1")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    again = api.post("/events", body, idempotency_key="batch-2").json()
    assert (again["accepted"], again["duplicates"], again["refused"]) == (0, 999, 1)
    assert UsageEvent.objects.count() == 999
    assert sum(UsageRollup.objects.filter(meter__key="api_calls").values_list("count", flat=True)) == 999

    IdempotencyRecord.objects.filter(key="batch-1").update(body=first.content, compressed=None)
    assert api.post("/events", body, idempotency_key="batch-1").content == first.content


def test_a_long_batch_is_the_bytes_sent_and_a_record_of_its_canonical_form_still_replays(api, setup, customer):
    """A body over 32 KB is hashed as sent: the same batch written with its keys in another order
    is another request (409, nothing written). A record stored when such bodies were hashed
    parsed, with sorted keys, still answers its replay."""
    from stall.core.models import IdempotencyRecord
    from stall.metering.models import UsageEvent

    events = _events(customer.pk, 300)
    first = api.post("/events", {"events": events}, idempotency_key="long-1")
    reordered = json.dumps({"events": [dict(reversed(e.items())) for e in events]})
    assert len(reordered) > 32 * 1024
    response = api.post("/events", raw=reordered, idempotency_key="long-1")
    assert response.status_code == 409 and response.json()["error"]["code"] == "idempotency_key_reused"

    canonical = hashlib.sha256(b"POST /api/v1/events?\n" + json.dumps({"events": events}, sort_keys=True).encode())
    IdempotencyRecord.objects.filter(key="long-1").update(request_hash=canonical.hexdigest())
    replay = api.post("/events", raw=reordered, idempotency_key="long-1")
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert UsageEvent.objects.count() == 300


def test_webhook_events_are_still_listed_at_the_same_path(api, setup):
    assert api.get("/events").json()["object"] == "list"
    response = api.client.put("/api/v1/events", headers={"Authorization": f"Bearer {api.secret}"})
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_more_than_a_thousand_events_are_refused_as_a_batch(api, setup, customer):
    response = api.post("/events", {"events": _events(customer.pk, 1001)})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_events", "param": "events",
        "message": "A batch holds at most 1,000 events; this one has 1,001. Split it."}


@pytest.mark.parametrize("raw, param", [
    ("{not json", None),
    (json.dumps({"events": "x"}), "events"),
    (json.dumps({}), "events"),
    (json.dumps({"events": [], "extra": 1}), "extra"),
])
def test_a_malformed_batch_is_a_400(api, setup, raw, param):
    response = api.post("/events", raw=raw)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_bad_events_each_get_their_reason(api, setup, customer):
    other = StoreFactory()
    theirs = customer_for_email(store_id=other.pk, email="them@example.com")
    events = [
        {"id": "a", "customer": theirs.pk, "name": "api.call", "timestamp": stamp(0)},
        {"id": "b", "customer": "cus_missing", "name": "api.call", "timestamp": stamp(0)},
        {"id": "c", "customer": customer.pk, "name": "nope", "timestamp": stamp(0)},
        {"id": "d", "customer": customer.pk, "name": "api.call", "timestamp": "2026-02-30T00:00:00Z"},
        {"id": "e", "customer": customer.pk, "name": "api.call", "timestamp": "2020-01-01T00:00:00Z"},
        {"id": "f", "customer": customer.pk, "name": "api.call", "timestamp": "2999-01-01T00:00:00Z"},
        {"id": "g", "customer": customer.pk, "name": "api.call", "timestamp": stamp(0)},
    ]
    out = api.post("/events", {"events": events}).json()
    assert [(d["status"], (d.get("error") or {}).get("code")) for d in out["data"]] == [
        ("refused", "customer_missing"), ("refused", "customer_missing"), ("refused", "meter_missing"),
        ("refused", "invalid_timestamp"), ("refused", "timestamp_too_old"), ("refused", "timestamp_in_future"),
        ("accepted", None),
    ]


def test_usage_bad_input(api, setup, customer):
    other = StoreFactory()
    theirs = customer_for_email(store_id=other.pk, email="them@example.com")
    cases = [
        (f"/customers/{theirs.pk}/usage", {}, 404, "resource_missing", "customer"),
        ("/customers/cus_nobody/usage", {}, 404, "resource_missing", "customer"),
        (f"/customers/{customer.pk}/usage", {"meter": "nope"}, 404, "resource_missing", "meter"),
        (f"/customers/{customer.pk}/usage", {"from": "last week"}, 400, "invalid_timestamp", "from"),
        (f"/customers/{customer.pk}/usage", {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, 400,
         "invalid_request", "to"),
    ]
    for path, params, status, code, param in cases:
        response = api.get(path, params)
        assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["param"]) == (
            status, code, param), path


def test_another_stores_objects_are_not_found(api, setup, client):
    other = StoreFactory()
    _, secret = api_key_create(store=other, name="other")
    for path in (f"/meters/{setup['meter']['id']}", f"/plans/{setup['plan']['id']}",
                 f"/usage_subscriptions/{setup['sub']['id']}"):
        assert api.get(path, secret=secret).status_code == 404
    response = api.post("/usage_subscriptions", {"customer": setup["sub"]["customer"], "plan": setup["plan"]["id"]},
                        secret=secret)
    assert response.status_code == 404 and response.json()["error"]["param"] == "customer"


@pytest.mark.parametrize("path, body, param, code", [
    ("/meters", {"key": "Bad Key", "name": "x", "event_name": "x"}, "key", "invalid_request"),
    ("/meters", {"key": "api_calls", "name": "x", "event_name": "x"}, "key", "meter_key_taken"),
    ("/meters", {"key": "s", "name": "x", "event_name": "x", "aggregation": "sum"}, "property", "invalid_meter"),
    ("/meters", {"key": "s", "name": "x", "event_name": "x", "aggregation": "median"}, "aggregation", None),
    ("/meters", {"key": "s", "name": "x", "event_name": "x", "filters": {"a": {"b": 1}}}, "filters", "invalid_meter"),
    ("/plans", {"name": "p", "prices": [{"meter": "nope", "unit_price": "1"}]}, "meter", "resource_missing"),
    ("/plans", {"name": "p", "prices": [{"meter": "api_calls", "unit_price": "0.0000001"}]}, "prices.0.unit_price",
     "invalid_plan"),
    ("/plans", {"name": "p", "prices": [{"meter": "api_calls", "unit_price": "-1"}]}, "prices.0.unit_price",
     "invalid_plan"),
    ("/plans", {"name": "p", "prices": [{"meter": "api_calls", "model": "package", "unit_price": "5"}]},
     "prices.0.package_size", "invalid_plan"),
    ("/plans", {"name": "p", "prices": [{"meter": "api_calls", "model": "tiered",
                                          "tiers": [{"up_to": 10, "unit_price": "1"}]}]}, "prices.0.tiers", "invalid_plan"),
    ("/plans", {"name": "p", "fixed_fee": -1}, "fixed_fee", "invalid_amount"),
    ("/usage_subscriptions", {"customer": "cus_x", "plan": "plan_x"}, "customer", "resource_missing"),
])
def test_bad_definitions_are_refused_with_the_parameter(api, setup, path, body, param, code):
    response = api.post(path, body)
    assert 400 <= response.status_code < 500, response.content
    error = response.json()["error"]
    assert error["param"] == param
    if code:
        assert error["code"] == code


def test_a_customer_subscribes_once(api, setup, customer):
    response = api.post("/usage_subscriptions", {"customer": customer.pk, "plan": setup["plan"]["id"]})
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_subscribed"
    canceled = api.post(f"/usage_subscriptions/{setup['sub']['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert api.post("/usage_subscriptions", {"customer": customer.pk, "plan": setup["plan"]["id"]}).status_code == 200


def test_the_openapi_document_names_the_operations(api):
    doc = api.client.get("/api/v1/openapi.json").json()
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {"events_ingest", "events_list", "customers_usage_retrieve", "meters_create", "plans_update",
            "usage_subscriptions_retry"} <= ids
