"""Stripe's inbound webhooks: signatures, exactly-once processing, events in any order, and an
order made by the webhook alone (localstripe delivering to a live server)."""

import logging
import time

import httpx
import pytest
from django.core import mail

from stall.checkout.models import CheckoutStatus
from stall.ledger.models import Transfer
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.models import (
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    StripeAccount,
    StripeEvent,
)

from .conftest import SECRET_KEY, VISA, intent_event, open_checkout, signed_delivery


def _post(client, url, payload, **signing):
    body, header = signed_delivery(payload, **signing)
    return client.post(url, data=body, content_type="application/json", headers={"Stripe-Signature": header})


def _page_payment(client, store, buyer_browser, localstripe_client, number=VISA):
    """A checkout whose buyer paid on the Stripe page and never came back: (payment, intent)."""
    checkout = open_checkout(store)
    client.get(f"/checkout/{checkout.pk}/")
    payment = Payment.objects.get(checkout=checkout)
    buyer_browser.pay(payment.rail_reference, number)
    return payment, localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()


def test_a_bad_signature_is_refused_with_a_warning_and_no_effect(stripe_store, client, buyer_browser, localstripe_client, caplog):
    """An event signed with another secret is a 400 and a WARNING line; nothing is recorded or paid."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client)
    url = f"/webhooks/stripe/{stripe_store.pk}"

    with caplog.at_level(logging.WARNING, logger="stall.payments.stripe_services"):
        response = _post(client, url, intent_event("evt_forged", "payment_intent.succeeded", intent), secret="whsec_wrong")
        unsigned = client.post(url, data=b"{}", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert unsigned.status_code == 400
    assert [r.levelname for r in caplog.records if "stripe webhook refused" in r.getMessage()] == ["WARNING", "WARNING"]
    assert not StripeEvent.objects.exists()
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.REQUIRES_ACTION


def test_a_stale_event_is_refused(stripe_store, client, buyer_browser, localstripe_client):
    """A correctly signed event whose timestamp is ten minutes old (a replay) is a 400."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client)

    response = _post(
        client, f"/webhooks/stripe/{stripe_store.pk}", intent_event("evt_old", "payment_intent.succeeded", intent),
        timestamp=int(time.time()) - 600,
    )

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert not Order.objects.exists()


def test_a_replayed_event_is_processed_once(stripe_store, client, buyer_browser, localstripe_client, django_capture_on_commit_callbacks, mailoutbox):
    """payment_intent.succeeded makes the order and sends the receipt; the same event delivered
    again is acknowledged as a duplicate and changes nothing."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client)
    event = intent_event("evt_paid_1", "payment_intent.succeeded", intent)
    url = f"/webhooks/stripe/{stripe_store.pk}"

    with django_capture_on_commit_callbacks(execute=True):
        first = _post(client, url, event)
    with django_capture_on_commit_callbacks(execute=True):
        second = _post(client, url, event)

    assert (first.status_code, first.json()) == (200, {"received": True, "id": "evt_paid_1", "duplicate": False})
    assert (second.status_code, second.json()) == (200, {"received": True, "id": "evt_paid_1", "duplicate": True})
    payment.refresh_from_db()
    assert (payment.status, payment.checkout.status) == (PaymentStatus.SUCCEEDED, CheckoutStatus.COMPLETE)
    assert Order.objects.filter(payment=payment).count() == 1
    assert Transfer.objects.filter(code="sale").count() == 1
    assert [m.subject for m in mailoutbox] == [f"Your receipt from {stripe_store.name}"]
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.store_id, stored.payload["data"]["object"]["id"]) == ("payment_intent.succeeded", stripe_store.pk, intent["id"])
    assert stored.processed_at is not None


def test_events_in_any_order_change_the_books_once(stripe_store, client, buyer_browser, localstripe_client):
    """Two distinct success events and a late failure event for one intent: one order, one sale,
    and the failure arriving after the success does not undo it."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client)
    url = f"/webhooks/stripe/{stripe_store.pk}"
    failed_snapshot = {**intent, "status": "requires_payment_method",
                       "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}}

    responses = [
        _post(client, url, intent_event("evt_a", "payment_intent.succeeded", intent)),
        _post(client, url, intent_event("evt_b", "payment_intent.succeeded", intent)),
        _post(client, url, intent_event("evt_c", "payment_intent.payment_failed", failed_snapshot)),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200]
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.SUCCEEDED, "")
    assert Order.objects.filter(payment=payment).count() == 1
    assert Transfer.objects.filter(code="sale").count() == 1
    assert StripeEvent.objects.count() == 3


def test_a_failure_event_fails_an_open_payment(stripe_store, client, buyer_browser, localstripe_client):
    """payment_intent.payment_failed fails the payment with Stripe's reason; the checkout stays open."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client, number="4000000000000341")
    assert intent["status"] == "requires_payment_method"

    response = _post(client, f"/webhooks/stripe/{stripe_store.pk}", intent_event("evt_f", "payment_intent.payment_failed", intent))

    assert response.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_message) == (PaymentStatus.FAILED, "card_declined", "Your card was declined.")
    assert payment.checkout.status == CheckoutStatus.OPEN


def test_unknown_events_and_events_for_others_are_acknowledged_and_ignored(stripe_store, client, buyer_browser, localstripe_client, settings):
    """An unknown type is a 200 that does nothing; an event from the platform's account for a
    store with its own account, or for an intent that is not the payment's, changes nothing."""
    payment, intent = _page_payment(client, stripe_store, buyer_browser, localstripe_client)
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_platform", "whsec_platform"

    unknown = _post(client, f"/webhooks/stripe/{stripe_store.pk}", intent_event("evt_u", "customer.created", {"id": "cus_1"}))
    other_account = _post(client, "/webhooks/stripe", intent_event("evt_p", "payment_intent.succeeded", intent), secret="whsec_platform")
    other_intent = _post(
        client, f"/webhooks/stripe/{stripe_store.pk}", intent_event("evt_i", "payment_intent.succeeded", {**intent, "id": "pi_other"})
    )

    assert [r.status_code for r in (unknown, other_account, other_intent)] == [200, 200, 200]
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.REQUIRES_ACTION
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 3


def test_webhooks_nobody_set_up_are_not_found(stripe_store, client):
    """No platform webhook secret, or a store without its own keys: 404, nothing stored."""
    body, header = signed_delivery({"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {}}})

    assert client.post("/webhooks/stripe", data=body, content_type="application/json", headers={"Stripe-Signature": header}).status_code == 404
    assert client.post("/webhooks/stripe/str_nobody", data=body, content_type="application/json", headers={"Stripe-Signature": header}).status_code == 404
    assert client.get(f"/webhooks/stripe/{stripe_store.pk}").status_code == 405
    assert not StripeEvent.objects.exists()


def test_a_refund_event_settles_a_pending_refund(stripe_store, card, client, closed_port_url, settings):
    """A refund left pending (Stripe unreachable, or Stripe's own "pending") is booked when
    refund.updated says it succeeded, and only once."""
    from stall.orders.refunds import refund_create
    from stall.payments.errors import PaymentProcessorUnavailable

    order = checkout_confirm(checkout_id=open_checkout(stripe_store).pk, payment_method=card(VISA)).order
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    base = StripeAccount.objects.get(store=stripe_store).api_base
    StripeAccount.objects.filter(store=stripe_store).update(api_base=closed_port_url)
    with pytest.raises(PaymentProcessorUnavailable):
        refund_create(store=stripe_store, order_id=order.pk, amount=100)
    StripeAccount.objects.filter(store=stripe_store).update(api_base=base)
    refund = Refund.objects.get()
    stripe_refund = {"id": "re_1", "object": "refund", "amount": 100, "status": "succeeded",
                     "payment_intent": order.payment.rail_reference, "metadata": {"stall_refund": refund.pk}}

    url = f"/webhooks/stripe/{stripe_store.pk}"
    assert _post(client, url, intent_event("evt_r1", "refund.updated", stripe_refund)).status_code == 200
    assert _post(client, url, intent_event("evt_r2", "charge.refunded", {"id": "ch_1", "refunds": {"data": [stripe_refund]}})).status_code == 200

    refund.refresh_from_db()
    order.refresh_from_db()
    assert (refund.status, order.amount_refunded) == (RefundStatus.SUCCEEDED, 100)
    assert Transfer.objects.filter(code="refund").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_webhook_alone_makes_the_order_when_the_browser_never_comes_back(live_server, localstripe, localstripe_client, buyer_browser, settings, client):
    """localstripe signs and delivers payment_intent.succeeded to /webhooks/stripe on a live
    server: the buyer who closed the tab after paying still gets the order and the receipt."""
    from stall.testing import StoreFactory

    settings.STRIPE_SECRET_KEY, settings.STRIPE_PUBLISHABLE_KEY = SECRET_KEY, "pk_test_platform"
    settings.STRIPE_API_BASE, settings.STRIPE_WEBHOOK_SECRET = localstripe, "whsec_platform_live"
    store = StoreFactory()
    register = f"{localstripe}/_config/webhooks/stall-live"
    answer = httpx.post(register, data={"url": f"{live_server.url}/webhooks/stripe", "secret": "whsec_platform_live"})
    assert answer.status_code == 200
    try:
        checkout = open_checkout(store)
        client.get(f"/checkout/{checkout.pk}/")
        payment = Payment.objects.get(checkout=checkout)
        assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"

        deadline = time.monotonic() + 10
        while not Order.objects.filter(payment=payment).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        # Events of later tests must not reach this (then stopped) server.
        httpx.post(register, json={"url": f"{live_server.url}/webhooks/stripe", "secret": "whsec_platform_live", "events": ["stall.none"]})

    order = Order.objects.get(payment=payment)
    assert (order.amount_total, order.email) == (300, "buyer@example.com")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    # Deliveries of earlier tests' intents may arrive too (localstripe waits a second before
    # sending); they name no payment of this database and are acknowledged and ignored.
    ours = [
        e for e in StripeEvent.objects.filter(type="payment_intent.succeeded")
        if e.payload["data"]["object"]["metadata"].get("stall_payment") == payment.pk
    ]
    assert [(e.store_id, e.processed_at is not None) for e in ours] == [(None, True)]
    assert [m.subject for m in mail.outbox] == [f"Your receipt from {store.name}"]
