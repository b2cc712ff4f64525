"""API v1 refunds: /api/v1/refunds."""

import json

import pytest

from stall.integrations.services import api_key_create
from stall.ledger.selectors import account_balance
from stall.payments.models import Refund
from stall.testing import ApiClient, ProductFactory, StoreFactory, buy


@pytest.fixture
def other_api(client):
    _, secret = api_key_create(store=StoreFactory(), name="other")
    return ApiClient(client, secret)


@pytest.fixture
def order(store, product):
    """A $3.00 order paid by card: the store keeps $2.61 after the $0.39 card fee."""
    return buy(store=store, product=product)


def error(response):
    return json.loads(response.content)["error"]


def body(response):
    return json.loads(response.content)


def balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.pk, currency="USD").amount


def test_refund_an_order_in_full(api, store, order, django_capture_on_commit_callbacks, mailoutbox):
    """POST /refunds without an amount refunds the rest of the order, takes it from the balance and tells the buyer."""
    assert balance(store) == 261

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/refunds", {"order": order.pk, "reason": "Changed my mind"})

    assert response.status_code == 200
    refund = Refund.objects.get()
    assert body(response) == {
        "id": refund.pk, "object": "refund", "order": order.pk, "amount": 300, "currency": "USD",
        "status": "succeeded", "reason": "Changed my mind", "destination": "payment_method", "created": int(refund.created_at.timestamp()),
    }
    assert refund.pk.startswith("re_")
    assert balance(store) == -39
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("refunded", 300)
    assert [m.to for m in mailoutbox] == [["buyer@example.com"]]


def test_refund_part_of_an_order(api, store, order):
    """An amount refunds that much; the order is partially refunded."""
    response = api.post("/refunds", {"order": order.pk, "amount": 100})

    assert (response.status_code, body(response)["amount"]) == (200, 100)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("partially_refunded", 100)
    assert balance(store) == 161
    assert body(api.get(f"/orders/{order.pk}"))["amount_refunded"] == 100


def test_a_replayed_refund_refunds_once(api, store, order):
    """The same refund sent twice with its Idempotency-Key moves money once and answers the same."""
    first = api.post("/refunds", {"order": order.pk, "amount": 100}, idempotency_key="refund-1")
    replay = api.post("/refunds", {"order": order.pk, "amount": 100}, idempotency_key="refund-1")

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1
    assert balance(store) == 161


def test_a_refund_key_reused_with_another_amount_is_a_conflict(api, store, order):
    """The same key with another amount is a 409 and moves no money."""
    api.post("/refunds", {"order": order.pk, "amount": 100}, idempotency_key="refund-2")

    response = api.post("/refunds", {"order": order.pk, "amount": 200}, idempotency_key="refund-2")

    assert (response.status_code, error(response)["code"]) == (409, "idempotency_key_reused")
    assert list(Refund.objects.values_list("amount", flat=True)) == [100]
    assert balance(store) == 161


BAD_REFUND = [
    # (body builder, status, code, param)
    (lambda o: {}, 400, "invalid_request", "order"),
    (lambda o: {"amount": 100}, 400, "invalid_request", "order"),
    (lambda o: {"order": 5}, 400, "invalid_request", "order"),
    (lambda o: {"order": "ord_01aaaaaaaaaaaaaaaaaaaaaaaa"}, 400, "resource_missing", "order"),
    (lambda o: {"order": "order 1"}, 400, "resource_missing", "order"),
    (lambda o: {"order": o, "amount": 0}, 400, "invalid_amount", "amount"),
    (lambda o: {"order": o, "amount": -100}, 400, "invalid_amount", "amount"),
    (lambda o: {"order": o, "amount": 10**13}, 400, "invalid_amount", "amount"),
    (lambda o: {"order": o, "amount": 2**70}, 400, "invalid_amount", "amount"),
    (lambda o: {"order": o, "amount": "abc"}, 400, "invalid_request", "amount"),
    (lambda o: {"order": o, "amount": "100"}, 400, "invalid_request", "amount"),
    (lambda o: {"order": o, "amount": 1.5}, 400, "invalid_request", "amount"),
    (lambda o: {"order": o, "amount": True}, 400, "invalid_request", "amount"),
    (lambda o: {"order": o, "amount": 301}, 400, "amount_too_large", "amount"),
    (lambda o: {"order": o, "reason": "r" * 256}, 400, "invalid_request", "reason"),
    (lambda o: {"order": o, "reason": 7}, 400, "invalid_request", "reason"),
    (lambda o: {"order": o, "currency": "USD"}, 400, "invalid_request", "currency"),
]


@pytest.mark.parametrize(("build", "status", "code", "param"), BAD_REFUND)
def test_refund_refuses_bad_input(api, store, order, build, status, code, param):
    """Bad input is answered with the error object naming the parameter, and refunds nothing."""
    response = api.post("/refunds", build(order.pk))

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (status, code, param)
    assert Refund.objects.count() == 0
    assert balance(store) == 261


def test_refund_above_what_is_left_is_refused(api, store, order):
    """After a partial refund only the rest can be refunded; the message says how much."""
    api.post("/refunds", {"order": order.pk, "amount": 250})

    response = api.post("/refunds", {"order": order.pk, "amount": 100})

    assert response.status_code == 400
    assert error(response) == {"code": "amount_too_large", "message": "At most $0.50 of this order can be refunded.", "param": "amount"}


def test_refunding_a_refunded_order_is_refused(api, store, order):
    """A fully refunded order has nothing left to refund."""
    api.post("/refunds", {"order": order.pk})

    response = api.post("/refunds", {"order": order.pk})

    assert (response.status_code, error(response)["code"]) == (400, "charge_already_refunded")
    assert balance(store) == -39


def test_a_free_order_cannot_be_refunded(api, store):
    """A free order has no payment to give back."""
    order = buy(store=store, product=ProductFactory(store=store, amount=0))

    response = api.post("/refunds", {"order": order.pk})

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (400, "invalid_refund", "order")


def test_list_and_retrieve_refunds(api, store, order):
    """Refunds are listed newest first and each can be read by id."""
    ids = [body(api.post("/refunds", {"order": order.pk, "amount": 100}))["id"] for _ in range(3)]

    first = body(api.get("/refunds", {"limit": 2}))
    second = body(api.get("/refunds", {"limit": 2, "starting_after": ids[1]}))

    assert ([r["id"] for r in first["data"]], first["has_more"]) == ([ids[2], ids[1]], True)
    assert ([r["id"] for r in second["data"]], second["has_more"]) == ([ids[0]], False)
    assert body(api.get(f"/refunds/{ids[0]}")) == second["data"][0]


def test_another_stores_order_cannot_be_refunded(api, other_api, store, order):
    """Refunding another store's order is refused as if the order did not exist, and moves no money."""
    response = other_api.post("/refunds", {"order": order.pk})

    assert response.status_code == 400
    assert error(response) == {"code": "resource_missing", "message": "No such order.", "param": "order"}
    assert Refund.objects.count() == 0
    assert balance(store) == 261


def test_another_stores_refund_is_missing(api, other_api, store, order):
    """Another store's refunds are neither listed nor readable."""
    refund_id = body(api.post("/refunds", {"order": order.pk, "amount": 100}))["id"]

    read = other_api.get(f"/refunds/{refund_id}")

    assert (read.status_code, error(read)) == (404, {"code": "resource_missing", "message": "No such refund.", "param": None})
    assert body(other_api.get("/refunds"))["data"] == []


@pytest.mark.parametrize("refund_id", ["re_01aaaaaaaaaaaaaaaaaaaaaaaa", "refund", "re_\x00"])
def test_unknown_refund_is_missing(api, refund_id):
    """An id that matches no refund is a 404."""
    response = api.get(f"/refunds/{refund_id}")

    assert (response.status_code, error(response)["code"]) == (404, "resource_missing")
