"""API v1 checkouts: /api/v1/checkouts."""

import json

import pytest
from django.conf import settings

from stall.checkout.models import Checkout
from stall.integrations.services import api_key_create
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.testing import ApiClient, ProductFactory, StoreFactory


@pytest.fixture
def other_api(client):
    _, secret = api_key_create(store=StoreFactory(), name="other")
    return ApiClient(client, secret)


@pytest.fixture
def pwyw(store):
    """Pay what you want, at least $1, $5 suggested."""
    return ProductFactory(store=store, name="Tip", price_type="pay_what_you_want", amount=100, suggested_amount=500)


def error(response):
    return json.loads(response.content)["error"]


def body(response):
    return json.loads(response.content)


def create(api, product, **extra):
    return body(api.post("/checkouts", {"email": "buyer@example.com", "product": product.pk, **extra}))


def test_create_checkout_returns_the_checkout(api, store, product):
    """POST /checkouts prices the product on the server and answers with an open checkout."""
    response = api.post("/checkouts", {"email": "Buyer@Example.COM", "items": [{"product": product.pk, "quantity": 2}]})

    assert response.status_code == 200
    checkout = Checkout.objects.get(store=store)
    assert body(response) == {
        "id": checkout.pk,
        "object": "checkout",
        "status": "open",
        "email": "Buyer@example.com",
        "amount_subtotal": 600,
        "amount_discount": 0,
        "amount_total": 600,
        "currency": "USD",
        "discount_code": None,
        "lines": [{"product": product.pk, "name": product.name, "unit_amount": 300, "quantity": 2, "amount_discount": 0}],
        "expires_at": int(checkout.expires_at.timestamp()),
        "url": f"{settings.BASE_URL}/checkout/{checkout.pk}/",
        "payment": None,
        "order": None,
        "livemode": True,
        "created": int(checkout.created_at.timestamp()),
    }


def test_create_checkout_with_the_one_product_shorthand(api, pwyw):
    """{"email", "product", "amount"} is a one-line checkout at the buyer's chosen amount."""
    data = create(api, pwyw, amount=250)

    assert (data["amount_total"], data["lines"][0]["unit_amount"], data["lines"][0]["quantity"]) == (250, 250, 1)


def test_create_checkout_of_several_products(api, store, product, pwyw):
    """Items are priced one by one and summed."""
    response = api.post("/checkouts", {"email": "b@example.com", "items": [
        {"product": product.pk}, {"product": pwyw.pk, "amount": 700, "quantity": 3},
    ]})

    assert body(response)["amount_total"] == 300 + 2100
    assert [(ln["product"], ln["unit_amount"], ln["quantity"]) for ln in body(response)["lines"]] == [
        (product.pk, 300, 1), (pwyw.pk, 700, 3),
    ]


def test_pay_what_you_want_without_amount_takes_the_suggestion(api, pwyw):
    """Leaving out the amount charges the suggested amount."""
    assert create(api, pwyw)["amount_total"] == 500


BAD_CREATE = [
    # (body builder, status, code, param)
    (lambda p, w: {"product": p}, 400, "invalid_request", "email"),
    (lambda p, w: {"email": "not-an-email", "product": p}, 400, "invalid_checkout", "email"),
    (lambda p, w: {"email": 42, "product": p}, 400, "invalid_request", "email"),
    (lambda p, w: {"email": "a@" + "b" * 260 + ".com", "product": p}, 400, "invalid_request", "email"),
    (lambda p, w: {"email": "b@example.com"}, 400, "invalid_request", "items"),
    (lambda p, w: {"email": "b@example.com", "items": []}, 400, "invalid_request", "items"),
    (lambda p, w: {"email": "b@example.com", "items": {"product": p}}, 400, "invalid_request", "items"),
    (lambda p, w: {"email": "b@example.com", "items": [{"amount": 100}]}, 400, "invalid_request", "items[0].product"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": p}], "product": p}, 400, "invalid_request", "product"),
    (lambda p, w: {"email": "b@example.com", "product": "prod_01aaaaaaaaaaaaaaaaaaaaaaaa"}, 400, "resource_missing", "product"),
    (lambda p, w: {"email": "b@example.com", "product": "bogus"}, 400, "resource_missing", "product"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": p}, {"product": "prod_01aaaaaaaaaaaaaaaaaaaaaaaa"}]}, 400, "resource_missing", "items[1].product"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": "prod_01aaaaaaaaaaaaaaaaaaaaaaaa"}]}, 400, "resource_missing", "items[0].product"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": "abc"}, 400, "invalid_request", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": 1.5}, 400, "invalid_request", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": True}, 400, "invalid_request", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": -100}, 400, "invalid_amount", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": 10**13}, 400, "invalid_amount", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": 2**70}, 400, "invalid_amount", "amount"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": w, "amount": -1}]}, 400, "invalid_amount", "items[0].amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": 99}, 400, "amount_too_small", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": w, "amount": 0}, 400, "amount_too_small", "amount"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": w, "amount": 99}]}, 400, "amount_too_small", "items[0].amount"),
    (lambda p, w: {"email": "b@example.com", "product": p, "amount": 100}, 400, "invalid_checkout", "amount"),
    (lambda p, w: {"email": "b@example.com", "product": p, "quantity": 0}, 400, "invalid_request", "quantity"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": p, "quantity": 101}]}, 400, "invalid_request", "items[0].quantity"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": p, "quantity": "2"}]}, 400, "invalid_request", "items[0].quantity"),
    (lambda p, w: {"email": "b@example.com", "items": [{"product": p}] * 51}, 400, "invalid_checkout", "items"),
    (lambda p, w: {"email": "b@example.com", "product": p, "currency": "USD"}, 400, "invalid_request", "currency"),
]


@pytest.mark.parametrize(("build", "status", "code", "param"), BAD_CREATE)
def test_create_checkout_refuses_bad_input(api, store, product, pwyw, build, status, code, param):
    """Bad input is answered with the error object naming the parameter, and opens no checkout."""
    response = api.post("/checkouts", build(product.pk, pwyw.pk))

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (status, code, param)
    assert Checkout.objects.count() == 0


def test_create_checkout_refuses_a_draft_product(api, store):
    """A product that is not published cannot be bought."""
    draft = ProductFactory(store=store, status="draft")

    response = api.post("/checkouts", {"email": "b@example.com", "product": draft.pk})

    assert response.status_code == 400
    assert error(response) == {"code": "resource_missing", "message": "No such product, or it is not for sale.", "param": "product"}


def test_create_checkout_refuses_another_stores_product(api, other_api, product):
    """A store cannot sell another store's product: it does not exist for that store."""
    response = other_api.post("/checkouts", {"email": "b@example.com", "product": product.pk})

    assert (response.status_code, error(response)["code"]) == (400, "resource_missing")
    assert Checkout.objects.count() == 0


def test_create_checkout_amount_too_small_message(api, pwyw):
    """The minimum is stated in money, not minor units."""
    response = api.post("/checkouts", {"email": "b@example.com", "product": pwyw.pk, "amount": 50})

    assert error(response)["message"] == "The minimum for Tip is $1.00."


def test_malformed_json_is_400(api):
    """A body that is not JSON is a 400 with the error object."""
    response = api.post("/checkouts", raw='{"email": ')

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_request", "message": "The request body is not valid JSON.", "param": None}


def test_create_checkout_replays_with_the_same_idempotency_key(api, store, product):
    """A retried create with the same key answers with the first checkout and opens no second one."""
    payload = {"email": "b@example.com", "product": product.pk}
    first = api.post("/checkouts", payload, idempotency_key="chk-1")
    replay = api.post("/checkouts", payload, idempotency_key="chk-1")

    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert Checkout.objects.count() == 1


def test_create_checkout_with_a_reused_idempotency_key_and_another_body_is_a_conflict(api, store, product):
    """The same key with a different body is a 409 and opens nothing."""
    api.post("/checkouts", {"email": "b@example.com", "product": product.pk}, idempotency_key="chk-2")

    response = api.post("/checkouts", {"email": "c@example.com", "product": product.pk}, idempotency_key="chk-2")

    assert (response.status_code, error(response)["code"]) == (409, "idempotency_key_reused")
    assert list(Checkout.objects.values_list("email", flat=True)) == ["b@example.com"]


def test_retrieve_checkout(api, product):
    """GET /checkouts/{id} answers with the checkout as it is now."""
    created = create(api, product)

    response = api.get(f"/checkouts/{created['id']}")

    assert (response.status_code, body(response)) == (200, created)


def test_confirm_with_a_card_completes_the_checkout(api, store, product):
    """Confirming with sandbox_visa pays: the checkout is complete, with its payment and order."""
    checkout_id = create(api, product)["id"]

    response = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert response.status_code == 200
    order = Order.objects.get(checkout_id=checkout_id)
    data = body(response)
    assert (data["status"], data["order"]) == ("complete", order.pk)
    assert data["payment"] == {
        "id": order.payment_id, "object": "payment", "status": "succeeded", "amount": 300, "currency": "USD",
        "payment_method": "sandbox_visa", "failure_code": None, "failure_message": None, "next_action": None,
        "livemode": True,
    }


@pytest.mark.parametrize(("method", "code", "message"), [
    ("sandbox_declined", "card_declined", "Your card was declined."),
    ("sandbox_insufficient_funds", "insufficient_funds", "Your card has insufficient funds."),
])
def test_a_declined_card_is_402_and_the_checkout_stays_open(api, product, method, code, message):
    """A decline is the error object with the rail's reason; the checkout stays open and a good card then pays."""
    checkout_id = create(api, product)["id"]

    declined = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": method})

    assert declined.status_code == 402
    assert error(declined) == {"code": code, "message": message, "param": None}
    after = body(api.get(f"/checkouts/{checkout_id}"))
    assert (after["status"], after["payment"]["status"], after["payment"]["failure_code"], after["order"]) == ("open", "failed", code, None)

    paid = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert (paid.status_code, body(paid)["status"]) == (200, "complete")
    assert Order.objects.filter(checkout_id=checkout_id).count() == 1


def test_confirm_with_3ds_asks_for_the_buyers_action(api, product):
    """sandbox_3ds answers 200 with the payment requiring action and where to send the buyer."""
    checkout_id = create(api, product)["id"]

    response = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_3ds"})

    assert response.status_code == 200
    data = body(response)
    assert (data["status"], data["order"], data["payment"]["status"]) == ("open", None, "requires_action")
    assert data["payment"]["next_action"] == {
        "type": "redirect_to_url", "url": f"{settings.BASE_URL}/checkout/{checkout_id}/authenticate/",
    }


def test_confirming_twice_charges_once(api, product):
    """A second confirm of a complete checkout returns it as it is, with no second payment."""
    checkout_id = create(api, product)["id"]
    first = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    second = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert body(second) == body(first)
    assert Payment.objects.filter(checkout_id=checkout_id).count() == 1


def test_a_free_checkout_confirms_without_a_payment_method(api, store):
    """A free product's checkout completes with no payment."""
    free = ProductFactory(store=store, amount=0)
    checkout_id = create(api, free)["id"]

    data = body(api.post(f"/checkouts/{checkout_id}/confirm", {}))

    assert (data["status"], data["payment"], data["amount_total"]) == ("complete", None, 0)
    assert data["order"] == Order.objects.get(checkout_id=checkout_id).pk


@pytest.mark.parametrize(("payload", "code", "param"), [
    ({}, "invalid_payment_method", "payment_method"),
    ({"payment_method": "sandbox_mastercard"}, "invalid_payment_method", "payment_method"),
    ({"payment_method": 4242}, "invalid_request", "payment_method"),
    ({"payment_method": "x" * 65}, "invalid_request", "payment_method"),
    ({"payment_method": "sandbox_visa", "amount": 1}, "invalid_request", "amount"),
])
def test_confirm_refuses_bad_input(api, product, payload, code, param):
    """A bad confirm is a 400 naming the parameter and charges nothing."""
    checkout_id = create(api, product)["id"]

    response = api.post(f"/checkouts/{checkout_id}/confirm", payload)

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (400, code, param)
    assert Payment.objects.count() == 0


def test_confirm_below_the_card_minimum_is_refused(api, store):
    """A card cannot be charged less than the rail's minimum: 400 amount_too_small, nothing charged."""
    cheap = ProductFactory(store=store, amount=25)
    checkout_id = create(api, cheap)["id"]

    response = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert response.status_code == 400
    assert error(response) == {"code": "amount_too_small", "message": "Card payments must be at least $0.50.", "param": "amount"}
    assert Payment.objects.count() == 0


def test_confirm_an_expired_checkout_is_a_conflict(api, product):
    """An expired checkout cannot be paid: 409 checkout_expired, and it reads as expired."""
    from datetime import timedelta

    from django.utils import timezone

    checkout_id = create(api, product)["id"]
    Checkout.objects.filter(pk=checkout_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert (response.status_code, error(response)["code"]) == (409, "checkout_expired")
    assert body(api.get(f"/checkouts/{checkout_id}"))["status"] == "expired"
    assert Payment.objects.count() == 0


def test_another_stores_checkout_is_missing(api, other_api, product):
    """Another store's checkout is 404 to read and to confirm, and confirming it charges nothing."""
    checkout_id = create(api, product)["id"]

    read = other_api.get(f"/checkouts/{checkout_id}")
    confirm = other_api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"})

    assert (read.status_code, error(read)["code"]) == (404, "resource_missing")
    assert (confirm.status_code, error(confirm)["code"]) == (404, "resource_missing")
    assert Payment.objects.count() == 0


@pytest.mark.parametrize("checkout_id", ["chk_01aaaaaaaaaaaaaaaaaaaaaaaa", "nope", "chk_\x00"])
def test_unknown_checkout_is_missing(api, checkout_id):
    """An unknown checkout is 404 to read and to confirm."""
    assert api.get(f"/checkouts/{checkout_id}").status_code == 404
    assert api.post(f"/checkouts/{checkout_id}/confirm", {"payment_method": "sandbox_visa"}).status_code == 404


def test_wrong_method_is_405(api, product):
    """Checkouts cannot be listed or deleted."""
    checkout_id = create(api, product)["id"]
    auth = {"Authorization": f"Bearer {api.secret}"}

    responses = [api.client.get("/api/v1/checkouts", headers=auth), api.client.delete(f"/api/v1/checkouts/{checkout_id}", headers=auth)]

    assert [(r.status_code, error(r)["code"]) for r in responses] == [(405, "method_not_allowed")] * 2
