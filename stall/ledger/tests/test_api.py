"""API v1 balance: /api/v1/balance."""

import json

from stall.integrations.services import api_key_create
from stall.orders.refunds import refund_create
from stall.testing import ApiClient, StoreFactory, buy


def body(response):
    return json.loads(response.content)


def test_a_new_store_has_nothing(api, store):
    """Before any sale the balance is zero in the store's currency."""
    response = api.get("/balance")

    assert response.status_code == 200
    assert body(response) == {"object": "balance", "available": [{"amount": 0, "currency": "USD"}], "store": store.pk}


def test_balance_is_sales_less_fees_and_refunds(api, store, product):
    """Two $3.00 card sales (fee $0.39 each) and a $1.00 refund leave $4.22."""
    buy(store=store, product=product)
    order = buy(store=store, product=product)
    refund_create(store=store, order_id=order.pk, amount=100)

    assert body(api.get("/balance"))["available"] == [{"amount": 2 * (300 - 39) - 100, "currency": "USD"}]


def test_balance_is_in_the_stores_currency(client, db):
    """A store selling in won sees its balance in KRW."""
    store = StoreFactory(currency="KRW")
    _, secret = api_key_create(store=store)

    data = body(ApiClient(client, secret).get("/balance"))

    assert data["available"] == [{"amount": 0, "currency": "KRW"}]


def test_a_store_sees_only_its_own_balance(api, client, store, product):
    """Another store's sales are not in this store's balance."""
    buy(store=store, product=product)
    other = StoreFactory()
    _, secret = api_key_create(store=other)

    data = body(ApiClient(client, secret).get("/balance"))

    assert (data["store"], data["available"]) == (other.pk, [{"amount": 0, "currency": "USD"}])
