"""Refunding one line of an order: up to what was paid for it, revoking only what it granted."""

import json

import pytest

from stall.checkout.discounts import discount_create
from stall.checkout.services import CheckoutItem, checkout_create
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Entitlement, Order, OrderLine
from stall.orders.refunds import refund_create
from stall.payments.errors import RefundInvalid
from stall.payments.models import Refund
from stall.testing import product_with_file
from stall.wallets.tests.test_rails import assert_ledger_balanced


@pytest.fixture
def order(store):
    """A $10 book and a $3 zine bought with 10% off: $11.70, the lines paid $9.00 and $2.70."""
    book = product_with_file(store=store, name="Book", amount=1000)
    zine = product_with_file(store=store, name="Zine", amount=300)
    discount_create(store=store, code="TEN", kind="percent", percent_off=10)
    checkout = checkout_create(store=store, email="b@example.com", discount_code="TEN",
                               items=[CheckoutItem(product_id=book.pk), CheckoutItem(product_id=zine.pk)])
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    return Order.objects.get(checkout=checkout)


def lines(order):
    book, zine = order.lines.order_by("name")
    return book, zine


def test_a_line_refunded_in_full_loses_its_downloads_only(store, order):
    book, zine = lines(order)
    assert (book.amount_paid, zine.amount_paid) == (900, 270)
    refund = refund_create(store=store, order_id=order.pk, line_id=zine.pk)
    assert refund.amount == 270
    order.refresh_from_db()
    zine.refresh_from_db()
    assert (order.status, order.amount_refunded, zine.amount_refunded) == ("partially_refunded", 270, 270)
    active = {e.product_id: e.revoked_at is None for e in Entitlement.objects.filter(order=order)}
    assert active == {book.product_id: True, zine.product_id: False}
    with pytest.raises(RefundInvalid, match="This line has been refunded in full."):
        refund_create(store=store, order_id=order.pk, line_id=zine.pk)
    assert_ledger_balanced()


def test_a_partial_line_refund_keeps_the_downloads_and_is_capped_at_the_line(store, order):
    book, _ = lines(order)
    refund_create(store=store, order_id=order.pk, line_id=book.pk, amount=400)
    with pytest.raises(RefundInvalid, match=r"At most \$5.00 of this line can be refunded."):
        refund_create(store=store, order_id=order.pk, line_id=book.pk, amount=600)
    assert Entitlement.objects.filter(order=order, revoked_at__isnull=False).count() == 0
    refund_create(store=store, order_id=order.pk, line_id=book.pk)  # the rest: $5.00
    book.refresh_from_db()
    assert book.amount_refunded == 900
    assert Entitlement.objects.get(order=order, product_id=book.product_id).revoked_at is not None


def test_refunding_every_line_refunds_the_order(store, order):
    book, zine = lines(order)
    refund_create(store=store, order_id=order.pk, line_id=book.pk)
    refund_create(store=store, order_id=order.pk, line_id=zine.pk)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("refunded", 1170)
    assert_ledger_balanced()


def test_a_line_of_another_order_is_refused(store, order):
    other_line = OrderLine.objects.exclude(order=order).first()
    assert other_line is None
    with pytest.raises(RefundInvalid, match="This order has no such line.") as exc:
        refund_create(store=store, order_id=order.pk, line_id=10**9)
    assert exc.value.param == "line"
    assert Refund.objects.count() == 0


def test_api_refunds_a_line(api, store, order):
    book, zine = lines(order)
    data = json.loads(api.get(f"/orders/{order.pk}").content)
    assert sorted((ln["id"], ln["amount_discount"]) for ln in data["lines"]) == sorted([(book.pk, 100), (zine.pk, 30)])
    response = api.post("/refunds", {"order": order.pk, "line": zine.pk})
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["amount"] == 270
    response = api.post("/refunds", {"order": order.pk, "line": 999999})
    assert response.status_code == 400
    assert json.loads(response.content)["error"] == {
        "code": "resource_missing", "message": "This order has no such line.", "param": "line",
    }
    response = api.post("/refunds", {"order": order.pk, "line": "1"})
    assert response.status_code == 400 and json.loads(response.content)["error"]["param"] == "line"
    data = json.loads(api.get(f"/orders/{order.pk}").content)
    assert {ln["id"]: ln["amount_refunded"] for ln in data["lines"]} == {book.pk: 0, zine.pk: 270}


def test_dashboard_refunds_one_line(client, creator, store, order):
    _, zine = lines(order)
    client.force_login(creator)
    page = client.get(f"/dashboard/{store.slug}/orders/{order.pk}/").content.decode()
    assert "The whole order" in page and "−$0.30 discount" in page
    response = client.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"line": str(zine.pk), "amount": ""})
    assert response.status_code == 302
    zine.refresh_from_db()
    assert zine.amount_refunded == 270
