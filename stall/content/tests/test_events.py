"""post.unlocked and tip.created reach a store's webhook endpoints, emitted in the paying transaction."""

import pytest
from standardwebhooks.webhooks import Webhook

from stall.content.services import post_unlock, tip_jar_update, tip_send
from stall.integrations import webhooks
from stall.integrations.models import Event
from stall.integrations.tests.test_webhooks import Receiver
from stall.orders.checkout_pay import checkout_confirm
from stall.wallets.errors import WalletEmpty

from .conftest import make_post


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def received(receiver, endpoint):
    return [Webhook(endpoint.secret).verify(body, headers) for headers, body in receiver.requests]


def test_a_one_click_unlock_sends_post_unlocked(store, post, funded, receiver, django_capture_on_commit_callbacks):
    """The endpoint gets post.unlocked with the post, the order, the reader's email and the amount."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["post.unlocked"])
    with django_capture_on_commit_callbacks(execute=True):
        order = post_unlock(post=post, method="wallet", buyer=funded).order
    [event] = received(receiver, endpoint)
    obj = event["data"]["object"]
    assert event["type"] == "post.unlocked"
    assert (obj["object"], obj["post"], obj["product"], obj["order"], obj["email"], obj["amount"], obj["currency"]) == (
        "post_unlock", post.pk, post.product_id, order.pk, "reader@example.com", 25, "USD")


def test_a_card_unlock_sends_post_unlocked_when_paid(store, receiver, django_capture_on_commit_callbacks):
    """By card the event goes out when the card is paid, not when the checkout opens."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["post.unlocked"])
    post = make_post(store, amount=100)
    with django_capture_on_commit_callbacks(execute=True):
        checkout = post_unlock(post=post, method="card", email="card@example.com").checkout
    assert receiver.requests == []
    with django_capture_on_commit_callbacks(execute=True):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    [event] = received(receiver, endpoint)
    assert (event["type"], event["data"]["object"]["email"]) == ("post.unlocked", "card@example.com")


def test_a_tip_sends_tip_created(store, funded, receiver, django_capture_on_commit_callbacks):
    """The endpoint gets tip.created with the tip as the API shows it."""
    tip_jar_update(store=store, enabled=True)
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["tip.created"])
    with django_capture_on_commit_callbacks(execute=True):
        tip = tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Ana", message="Bravo", public=True).tip
    [event] = received(receiver, endpoint)
    obj = event["data"]["object"]
    assert event["type"] == "tip.created"
    assert (obj["id"], obj["object"], obj["order"], obj["amount"], obj["name"], obj["message"], obj["public"]) == (
        tip.pk, "tip", tip.order_id, 100, "Ana", "Bravo", True)


def test_a_refused_unlock_emits_nothing(store, post, reader, receiver, django_capture_on_commit_callbacks):
    """The event is in the transaction: when the wallet refuses, no event is stored or sent."""
    webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(WalletEmpty):
        post_unlock(post=post, method="wallet", buyer=reader)
    assert (Event.objects.count(), receiver.requests) == (0, [])


def test_endpoints_may_subscribe_to_the_new_types(store, receiver):
    """post.unlocked and tip.created are known event types."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["post.unlocked", "tip.created"])
    assert endpoint.enabled_events == ["post.unlocked", "tip.created"]
