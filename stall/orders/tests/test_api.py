"""API v1 orders: /api/v1/orders."""

import json

import pytest

from stall.integrations.services import api_key_create
from stall.testing import ApiClient, StoreFactory, buy


@pytest.fixture
def other_api(client):
    _, secret = api_key_create(store=StoreFactory(), name="other")
    return ApiClient(client, secret)


def error(response):
    return json.loads(response.content)["error"]


def body(response):
    return json.loads(response.content)


def test_retrieve_order(api, store, product):
    """GET /orders/{id} answers with the order: amounts, fees, its net, lines and what it links
    to."""
    order = buy(store=store, product=product, email="fan@example.com")

    response = api.get(f"/orders/{order.pk}")

    assert response.status_code == 200
    assert body(response) == {
        "id": order.pk,
        "object": "order",
        "status": "paid",
        "email": "fan@example.com",
        "customer": order.customer_id,
        "amount_total": 300,
        "amount_refunded": 0,
        "currency": "USD",
        "fee": 39,
        "fee_refunded": 0,
        "fee_net": 39,
        "platform_fee": 0,
        "platform_fee_refunded": 0,
        "platform_fee_net": 0,
        "amount_disputed": 0,
        "dispute_fee": 0,
        "disputed": False,
        "dispute_status": "",
        "net": 261,
        "lines": [{"id": order.lines.get().pk, "product": product.pk, "name": product.name, "unit_amount": 300,
                   "quantity": 1, "amount_discount": 0, "amount_refunded": 0}],
        "payment": order.payment_id,
        "checkout": order.checkout_id,
        "livemode": True,
        "created": int(order.created_at.timestamp()),
    }
    assert (order.customer_id[:4], order.payment_id[:4], order.checkout_id[:4]) == ("cus_", "pay_", "chk_")


def test_list_orders_pages_newest_first(api, store, product):
    """Lists are newest first; limit and starting_after walk the pages and has_more says when to stop."""
    ids = [buy(store=store, product=product, email=f"b{i}@example.com").pk for i in range(3)]

    first = body(api.get("/orders", {"limit": 2}))
    second = body(api.get("/orders", {"limit": 2, "starting_after": first["data"][-1]["id"]}))

    assert ([o["id"] for o in first["data"]], first["has_more"]) == ([ids[2], ids[1]], True)
    assert ([o["id"] for o in second["data"]], second["has_more"]) == ([ids[0]], False)
    assert first["object"] == second["object"] == "list"


def test_list_orders_filters_by_email(api, store, product):
    """?email= keeps that buyer's orders only: the exact address, in any case, not a substring."""
    mine = buy(store=store, product=product, email="ann@example.com")
    buy(store=store, product=product, email="joann@example.com")

    data = body(api.get("/orders", {"email": "ANN@example.com"}))["data"]

    assert [o["id"] for o in data] == [mine.pk]


def test_list_orders_shows_only_this_stores_orders(api, other_api, store, product):
    """Another store's orders are not in the list."""
    order = buy(store=store, product=product)

    assert [o["id"] for o in body(api.get("/orders"))["data"]] == [order.pk]
    assert body(other_api.get("/orders"))["data"] == []


@pytest.mark.parametrize(("params", "param"), [
    ({"limit": -1}, "limit"),
    ({"limit": 1000}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"starting_after": "ord_\x00"}, "starting_after"),
    ({"email": "x" * 255}, "email"),
    ({"email": "a\x00b@example.com"}, "email"),
])
def test_list_orders_refuses_bad_parameters(api, params, param):
    """Bad list parameters are a 400 naming the parameter."""
    response = api.get("/orders", params)

    assert response.status_code == 400
    assert (error(response)["code"], error(response)["param"]) == ("invalid_request", param)


def test_another_stores_order_is_missing(api, other_api, store, product):
    """Another store's order is a 404, never revealed."""
    order = buy(store=store, product=product)

    response = other_api.get(f"/orders/{order.pk}")

    assert response.status_code == 404
    assert error(response) == {"code": "resource_missing", "message": "No such order.", "param": None}


@pytest.mark.parametrize("order_id", ["ord_01aaaaaaaaaaaaaaaaaaaaaaaa", "ORD-1", "ord_" + "1" * 100])
def test_unknown_order_is_missing(api, order_id):
    """An id that matches no order is a 404."""
    response = api.get(f"/orders/{order_id}")

    assert (response.status_code, error(response)["code"]) == (404, "resource_missing")


def test_orders_cannot_be_created_or_changed(api, store, product):
    """Orders come from paid checkouts: POST to /orders is a 405 and creates nothing."""
    order = buy(store=store, product=product)

    create = api.post("/orders", {"email": "b@example.com"})
    change = api.post(f"/orders/{order.pk}", {"status": "refunded"})

    assert [(r.status_code, error(r)["code"]) for r in (create, change)] == [(405, "method_not_allowed")] * 2
    order.refresh_from_db()
    assert order.status == "paid"
