"""Refunds of Stripe payments through localstripe: the ledger follows what Stripe did."""

import pytest

from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import OrderStatus
from stall.orders.refunds import refund_create
from stall.payments.errors import PaymentProcessorUnavailable, RefundInvalid
from stall.payments.models import Refund, RefundStatus, StripeAccount
from stall.payments.stripe_services import stripe_payments_reconcile

from .conftest import VISA, open_checkout


def _paid_order(store, card, amount=1000):
    checkout = checkout_confirm(checkout_id=open_checkout(store, amount=amount).pk, payment_method=card(VISA))
    return checkout.order


def _stripe_refunds(localstripe_client, intent_id):
    return [
        (r["amount"], r["status"], r["metadata"].get("stall_refund"))
        for r in localstripe_client.v1.refunds.list(params={"payment_intent": intent_id}).to_dict()["data"]
    ]


def _balance(store):
    return account_balance(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD").amount


def test_partial_then_full_refunds_go_through_stripe_and_the_books(stripe_store, card, localstripe_client, django_capture_on_commit_callbacks, mailoutbox):
    """Each Stall refund is one Stripe refund of the same amount, tagged with our id; the store's
    balance gives back exactly that (the card fee stays spent) and the order follows."""
    order = _paid_order(stripe_store, card)
    intent = order.payment.rail_reference
    fee = order.payment.fee
    assert _balance(stripe_store) == 1000 - fee

    with django_capture_on_commit_callbacks(execute=True):
        partial = refund_create(store=stripe_store, order_id=order.pk, amount=250, reason="late")
    assert partial.status == RefundStatus.SUCCEEDED
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 250)
    assert _balance(stripe_store) == 1000 - fee - 250

    rest = refund_create(store=stripe_store, order_id=order.pk)

    assert (rest.amount, rest.status) == (750, RefundStatus.SUCCEEDED)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 1000)
    assert _balance(stripe_store) == -fee
    assert sorted(_stripe_refunds(localstripe_client, intent)) == [(250, "succeeded", partial.pk), (750, "succeeded", rest.pk)]
    assert [m.subject for m in mailoutbox][-1] == f"Refund from {stripe_store.name}"


def test_a_stripe_orders_net_is_what_the_ledger_moved(stripe_store, card, settings):
    """With a 5% platform fee, a $10.00 Stripe order refunded by $2.50 through localstripe: Stripe
    keeps its fee, 13¢ of the 50¢ platform fee comes back, and the order's net on its row (and in
    the API's shape) is what its transfers moved into the store's balance."""
    from stall.orders.schemas import order_out
    from stall.orders.selectors import order_ledger_totals

    settings.STALL_PLATFORM_FEE_BPS = 500
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee

    refund_create(store=stripe_store, order_id=order.pk, amount=250)

    order.refresh_from_db()
    ledger = order_ledger_totals(orders=[order])[order.pk]
    net = 1000 - 250 - fee - 37
    assert (order.fee_net, order.platform_fee_refunded, order.net) == (fee, 13, net)
    assert (ledger.net, ledger.fee_net, ledger.platform_fee_net) == (order.net, -fee, -37)
    assert order_out(order)["net"] == order.net == _balance(stripe_store)


def test_stall_refuses_an_over_refund_that_localstripe_would_accept(stripe_store, card, localstripe_client):
    """Refunding more than is left is refused by Stall before Stripe is called: no Stripe refund,
    no money moved. localstripe itself takes such a refund, so the guard is ours."""
    order = _paid_order(stripe_store, card, amount=500)
    intent = order.payment.rail_reference
    refund_create(store=stripe_store, order_id=order.pk, amount=400)

    with pytest.raises(RefundInvalid, match=r"^At most \$1.00 of this order can be refunded.$") as caught:
        refund_create(store=stripe_store, order_id=order.pk, amount=400)

    assert caught.value.code == "amount_too_large"
    assert _stripe_refunds(localstripe_client, intent) == [(400, "succeeded", Refund.objects.get().pk)]
    order.refresh_from_db()
    assert order.amount_refunded == 400
    # The peer would have refunded 900 of a 500 charge.
    localstripe_client.v1.refunds.create(params={"payment_intent": intent, "amount": 400})
    assert sum(amount for amount, _, _ in _stripe_refunds(localstripe_client, intent)) == 800


def test_a_refund_stripe_never_answered_stays_pending_until_reconciled(stripe_store, card, closed_port_url, localstripe_client, settings):
    """With Stripe unreachable, the refund is a 503 and stays pending, blocking a second refund of
    the same money; reconciliation sends it again under the same idempotency key and books it."""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    order = _paid_order(stripe_store, card)
    base = StripeAccount.objects.get(store=stripe_store).api_base
    StripeAccount.objects.filter(store=stripe_store).update(api_base=closed_port_url)

    with pytest.raises(PaymentProcessorUnavailable):
        refund_create(store=stripe_store, order_id=order.pk)

    refund = Refund.objects.get()
    assert (refund.status, refund.amount) == (RefundStatus.PENDING, 1000)
    with pytest.raises(RefundInvalid, match="refunded in full"):
        refund_create(store=stripe_store, order_id=order.pk, amount=100)
    order.refresh_from_db()
    assert order.amount_refunded == 0

    StripeAccount.objects.filter(store=stripe_store).update(api_base=base)
    assert stripe_payments_reconcile(older_than_minutes=0) == 1

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 1000)
    assert _stripe_refunds(localstripe_client, order.payment.rail_reference) == [(1000, "succeeded", refund.pk)]
