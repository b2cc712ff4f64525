from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.integrations import webhooks
from stall.integrations.models import WebhookEndpoint
from stall.payments.services import checkouts_expire_due
from stall.testing import buy

from .test_webhooks import Receiver


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def test_a_paid_order_is_sent_as_order_paid(store, product, receiver, django_capture_on_commit_callbacks):
    """Buying a product sends a signed order.paid event carrying the order as the API shows it."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.paid"])
    with django_capture_on_commit_callbacks(execute=True):
        order = buy(store=store, product=product, email="fan@example.com")
    headers, body = receiver.requests[0]
    event = Webhook(endpoint.secret).verify(body, headers)
    assert event["type"] == "order.paid"
    assert event["data"]["object"]["id"] == order.pk
    assert event["data"]["object"]["amount_total"] == 300
    line = order.lines.get()
    assert event["data"]["object"]["lines"] == [{
        "id": line.pk, "product": product.pk, "name": product.name, "unit_amount": 300, "quantity": 1,
        "amount_discount": 0, "amount_refunded": 0,
    }]


def test_an_abandoned_checkout_is_sent_as_checkout_expired(store, product, receiver, django_capture_on_commit_callbacks):
    """When the periodic task expires an abandoned checkout, checkout.expired goes out once."""
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["checkout.expired"])
    checkout = checkout_create(store=store, email="fan@example.com", items=[CheckoutItem(product_id=product.pk)])
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert checkouts_expire_due() == 1
        assert checkouts_expire_due() == 0
    assert len(receiver.requests) == 1
    event = Webhook(WebhookEndpoint.objects.get().secret).verify(*reversed(receiver.requests[0]))
    assert (event["type"], event["data"]["object"]["id"], event["data"]["object"]["status"]) == ("checkout.expired", checkout.pk, "expired")


def test_a_refund_is_sent_as_order_refunded(store, product, receiver, django_capture_on_commit_callbacks):
    """A refund sends order.refunded with the order after the refund and the refund itself."""
    from stall.orders.refunds import refund_create

    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.refunded"])
    order = buy(store=store, product=product)
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_create(store=store, order_id=order.pk, amount=100)
    headers, body = receiver.requests[0]
    event = Webhook(WebhookEndpoint.objects.get().secret).verify(body, headers)
    obj = event["data"]["object"]
    assert (event["type"], obj["id"], obj["status"], obj["amount_refunded"]) == ("order.refunded", order.pk, "partially_refunded", 100)
    assert (obj["refund"]["id"], obj["refund"]["amount"]) == (refund.pk, 100)


def test_a_declined_card_is_sent_as_payment_failed(store, product, receiver, django_capture_on_commit_callbacks):
    """A declined payment sends payment.failed with the processor's code and message."""
    from stall.orders.checkout_pay import checkout_confirm
    from stall.payments.errors import PaymentDeclined

    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["payment.failed"])
    checkout = checkout_create(store=store, email="fan@example.com", items=[CheckoutItem(product_id=product.pk)])
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(PaymentDeclined):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_declined")
    headers, body = receiver.requests[0]
    obj = Webhook(WebhookEndpoint.objects.get().secret).verify(body, headers)["data"]["object"]
    assert (obj["object"], obj["checkout"], obj["status"], obj["failure_code"], obj["failure_message"]) == (
        "payment", checkout.pk, "failed", "card_declined", "Your card was declined.")
