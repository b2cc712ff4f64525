"""Confirming a checkout: the one entry point that pays it on any rail and makes its order.

A free checkout becomes an order at once. A card (the sandbox, Stripe) is charged through
``payments.services.checkout_payment_start`` — lock and reserve, call the rail with no transaction
open, finalize — and the order is made when the rail reports success (``payment_succeed`` calls
``orders.services.checkout_payment_succeeded``, registered for the checkout purpose). The wallet
and the tab pay inside one short transaction here, so a refused spend leaves nothing behind.
"""

from django.db import transaction

from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import checkout_lock_open
from stall.payments.errors import BuyerRequired
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails import rail_for
from stall.payments.services import (
    checkout_card_payments_abandon,
    checkout_payment_start,
    payment_succeed,
)

from .services import order_create_for_checkout


def checkout_confirm(*, checkout_id: str, payment_method: str = "", buyer=None) -> Checkout:
    """Pay for a checkout. Returns the checkout, complete or awaiting the buyer's action.

    A free checkout completes with no payment. A checkout already complete, or with a payment
    already under way, is returned as it is: a double click or a replayed request charges once.
    A declined payment raises PaymentDeclined and leaves the checkout open for another try.
    The wallet and the tab need the signed-in ``buyer``; they pay in this one transaction, and
    a refusal (InsufficientFunds, LimitExceeded) rolls it back with no money moved.
    """
    if payment_method in ("wallet", "tab"):
        checkout_card_payments_abandon(checkout_id=checkout_id)
    with transaction.atomic():
        checkout = checkout_lock_open(checkout_id=checkout_id)
        if checkout.status == CheckoutStatus.COMPLETE:
            return checkout
        if checkout.amount_total == 0:
            order_create_for_checkout(checkout=checkout, payment=None)
            return Checkout.objects.get(pk=checkout.pk)
        if checkout.payments.filter(status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]).exists():
            return checkout
        rail = rail_for(store=checkout.store, payment_method=payment_method)
        if rail.in_ledger:
            return _checkout_pay_in_ledger(checkout=checkout, rail=rail, payment_method=payment_method, buyer=buyer)
    return checkout_payment_start(checkout_id=checkout_id, payment_method=payment_method)


def _checkout_pay_in_ledger(*, checkout: Checkout, rail, payment_method: str, buyer) -> Checkout:
    if buyer is None:
        raise BuyerRequired()
    payment = Payment.objects.create(
        store_id=checkout.store_id, checkout=checkout, buyer=buyer, rail=rail.name, payment_method=payment_method,
        amount=checkout.amount_total, currency=checkout.currency,
    )
    result = rail.ledger_charge(payment=payment)
    payment_succeed(payment_id=payment.pk, reference=result.reference, fee=result.fee)
    return Checkout.objects.get(pk=checkout.pk)
