"""A sandbox card checkout over the API (create, then confirm): the statements its two requests
send, pinned, and the confirm's answer, which is made from what the payment's transaction wrote
rather than read back, the same as reading the checkout afterwards."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stall.accounts.models import Customer
from stall.checkout.discounts import discount_create
from stall.integrations.models import Event, WebhookEndpoint
from stall.orders.models import Order
from stall.testing import ProductFactory

pytestmark = pytest.mark.django_db

# Both requests, everything they send: the API key (twice), the product, the checkout and its line;
# then the checkout (the API's store check), its capped posts (orders.pricing), its lock with what
# the card payment asks about it, the payment, the payment and checkout locked together, the
# payment's success, one read for the order (customer, buyer, webhook endpoints, observers), the
# new customer and buyer, the order, the checkout's lines, the order's line and entitlement, the
# checkout completed, a failed pledge paid through this checkout looked for (stall.campaigns: the
# card path's observers are not handed the order's read), the order.paid event, the ledger
# transfers and the balances. Before: 32.
CARD_CHECKOUT_STATEMENTS = 23


def _sent(queries) -> list[str]:
    """Statements as the issue counts them: BEGIN, COMMIT and savepoints are how a transaction is
    opened and closed, not work of their own."""
    skip = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")
    return [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(skip)]


def _buy(api, product, email):
    created = api.post("/checkouts", {"email": email, "items": [{"product": product.pk}]})
    assert created.status_code == 200, created.content
    paid = api.post(f"/checkouts/{json.loads(created.content)['id']}/confirm", {"payment_method": "sandbox_visa"})
    assert paid.status_code == 200, paid.content
    return json.loads(paid.content)


def test_a_sandbox_card_checkout_over_the_api_is_at_most_twenty_three_statements(api, store, django_capture_on_commit_callbacks):
    product = ProductFactory(store=store, amount=300)
    with django_capture_on_commit_callbacks(execute=True):
        _buy(api, product, "first@example.com")  # the store's first sale opens its accounts
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        answer = _buy(api, product, "buyer@example.com")
    sent = _sent(queries.captured_queries)
    assert len(sent) <= CARD_CHECKOUT_STATEMENTS, f"{len(sent)} statements:\n" + "\n".join(s[:160] for s in sent)
    assert answer["status"] == "complete"
    order = Order.objects.get(pk=answer["order"])
    assert (order.amount_total, order.fee, order.payment.rail, order.customer.email) == (300, 39, "sandbox", "buyer@example.com")


def test_the_confirm_answer_is_the_checkout_as_read_afterwards(api, store):
    """After a declined card, with a discount code: the answer shows the payment that paid (not the
    declined one), the order, the lines with their discount, as GET /checkouts/{id} does."""
    product = ProductFactory(store=store, amount=1000)
    discount_create(store=store, code="TENOFF", kind="percent", percent_off=10)
    created = json.loads(api.post("/checkouts", {"email": "Buyer@Example.com", "items": [{"product": product.pk}],
                                                 "discount_code": "TENOFF"}).content)
    declined = api.post(f"/checkouts/{created['id']}/confirm", {"payment_method": "sandbox_declined"})
    assert declined.status_code == 402
    paid = api.post(f"/checkouts/{created['id']}/confirm", {"payment_method": "sandbox_visa"})
    assert paid.status_code == 200
    answer = json.loads(paid.content)
    assert answer == json.loads(api.get(f"/checkouts/{created['id']}").content)
    assert (answer["status"], answer["amount_total"], answer["payment"]["status"]) == ("complete", 900, "succeeded")
    assert answer["lines"][0]["amount_discount"] == 100 and answer["order"] is not None


def test_a_returning_buyer_is_the_same_customer_whatever_the_case_of_their_email(api, store):
    """Matched as customer_for_email matches, without regard to case, even a customer whose email
    was kept as it was typed (a row not made by a purchase)."""
    product = ProductFactory(store=store, amount=300)
    kept = Customer.objects.create(store=store, email="Reader@example.com")
    first = _buy(api, product, "reader@example.com")
    again = _buy(api, product, "READER@EXAMPLE.com")
    orders = Order.objects.filter(pk__in=[first["order"], again["order"]])
    assert {o.customer_id for o in orders} == {kept.pk}
    assert Customer.objects.filter(store=store).count() == 1


def test_order_paid_webhooks_are_dispatched_only_to_a_store_with_an_endpoint(api, store, django_capture_on_commit_callbacks):
    """With no endpoint the order's events are recorded as dispatched (nobody to deliver them to);
    with one, they wait for the dispatch task, which makes their deliveries."""
    product = ProductFactory(store=store, amount=300)
    with django_capture_on_commit_callbacks(execute=True):
        answer = _buy(api, product, "a@example.com")
    event = Event.objects.get(type="order.paid", data__object__id=answer["order"])
    assert event.dispatched_at is not None and not event.deliveries.exists()
    WebhookEndpoint.objects.create(store=store, url="https://hooks.example.com/stall", enabled_events=["*"], secret="whsec_test")
    with django_capture_on_commit_callbacks(execute=True):
        answer = _buy(api, product, "b@example.com")
    event = Event.objects.get(type="order.paid", data__object__id=answer["order"])
    assert event.dispatched_at is not None and event.deliveries.count() == 1
