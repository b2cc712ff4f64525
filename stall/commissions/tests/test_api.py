"""API v1 /commissions: the creator's side, and bad input answered with the error object."""

import io

import pytest

from stall.commissions.models import Commission
from stall.integrations.services import api_key_create
from stall.testing import ApiClient, StoreFactory, buy, product_with_file

from .conftest import order_commission

pytestmark = pytest.mark.django_db


def named(name: str, content: bytes) -> io.BytesIO:
    file = io.BytesIO(content)
    file.name = name
    return file


def test_list_retrieve_message_and_deliver(api, store, service):
    commission = order_commission(store=store, product=service)
    listed = api.get("/commissions", {"status": "awaiting_delivery"}).json()
    assert [c["id"] for c in listed["data"]] == [commission.pk]
    assert listed["data"][0]["amount_held"] == {"amount": commission.amount_held, "currency": "USD"}

    by_order = api.get(f"/commissions/{commission.order_id}").json()
    assert (by_order["id"], by_order["brief"], by_order["status"]) == (commission.pk, "A fox in the snow, A4.", "awaiting_delivery")

    said = api.post(f"/commissions/{commission.pk}/messages", {"body": "Red or grey fox?"}).json()
    assert said["messages"][0]["author"] == "creator" and said["messages"][0]["body"] == "Red or grey fox?"

    response = api.upload(f"/commissions/{commission.pk}/deliver",
                          {"note": "Enjoy!", "files": [named("fox.png", b"\x89PNG"), named("fox.psd", b"layers")]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "delivered" and body["delivery_note"] == "Enjoy!"
    assert sorted((f["name"], f["role"]) for f in body["files"]) == [("fox.png", "delivery"), ("fox.psd", "delivery")]

    again = api.upload(f"/commissions/{commission.pk}/deliver", {"note": "Twice"})
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "commission_state", "param": "id",
                                      "message": "This commission is delivered: it cannot be delivered."}}


def test_decline_refunds(api, store, service):
    commission = order_commission(store=store, product=service)
    body = api.post(f"/commissions/{commission.pk}/decline", {"reason": "Too busy"}).json()
    assert (body["status"], body["decline_reason"]) == ("declined", "Too busy")
    commission.refresh_from_db()
    assert commission.order.status == "refunded"
    again = api.post(f"/commissions/{commission.pk}/decline", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "commission_state"


def test_bad_input_is_an_error_object_never_a_500(api, client, store, service):
    order = buy(store=store, product=product_with_file(store=store, name="Zine"))
    response = api.upload(f"/commissions/{order.pk}/deliver", {"note": "x"})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "not_a_commission", "param": "id", "message":
                                         "This order is not a commission: only orders of a service product are delivered."}}

    missing = api.post("/commissions/com_missing/decline", {})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")

    commission = order_commission(store=store, product=service)
    empty = api.upload(f"/commissions/{commission.pk}/deliver", {"note": ""})
    assert (empty.status_code, empty.json()["error"]["param"]) == (400, "note")
    unknown = api.post(f"/commissions/{commission.pk}/decline", {"reasn": "typo"})
    assert unknown.status_code == 400

    # Another store's key sees none of it.
    other = StoreFactory()
    _, secret = api_key_create(store=other, name="other")
    theirs = ApiClient(client, secret)
    assert theirs.get(f"/commissions/{commission.pk}").status_code == 404
    assert theirs.upload(f"/commissions/{commission.pk}/deliver", {"note": "x"}).status_code == 404
    assert theirs.post(f"/commissions/{commission.pk}/decline", {}).status_code == 404
    assert theirs.get("/commissions").json()["data"] == []
    commission.refresh_from_db()
    assert commission.status == "awaiting_delivery"
    assert Commission.objects.count() == 1
