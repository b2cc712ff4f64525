"""Paying for a checkout and refunding an order.

The pattern for every rail call (after Saleor's ``complete_checkout``): lock and reserve in one
short transaction, call the rail with no transaction open — a card network can take seconds and
must not hold row locks (or, on SQLite, the single write lock) — then finalize in another short
transaction. Finalizing is idempotent, so a rail that reports the same success twice, by a
redirect and by a webhook, makes one order.
"""

import logging
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from stall.checkout.errors import AmountTooSmall, CheckoutInvalid
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import checkout_lock_open
from stall.core.errors import InvalidRequest
from stall.core.money import amount_validate, format_money, prorate
from stall.ledger.models import AccountKind
from stall.ledger.services import account_open, transfer_create
from stall.orders.models import Order, OrderStatus
from stall.orders.schemas import order_out
from stall.orders.services import entitlements_revoke_for_order, order_create_for_checkout
from stall.stores.models import Store

from .errors import BuyerRequired, PaymentDeclined, PaymentNotAwaitingAction, PaymentNotFound, RefundFailed, RefundInvalid
from .models import Payment, PaymentPurpose, PaymentStatus, Refund, RefundStatus
from .rails import RailResult, rail_for, rail_get
from .schemas import payment_out, refund_out

logger = logging.getLogger(__name__)


def checkout_confirm(*, checkout_id: str, payment_method: str = "", buyer=None) -> Checkout:
    """Pay for a checkout. Returns the checkout, complete or awaiting the buyer's action.

    A free checkout completes with no payment. A checkout already complete, or with a payment
    already under way, is returned as it is: a double click or a replayed request charges once.
    A declined payment raises PaymentDeclined and leaves the checkout open for another try.
    The wallet and the tab need the signed-in ``buyer``; they pay in this one transaction, and
    a refusal (InsufficientFunds, LimitExceeded) rolls it back with no money moved.
    """
    if payment_method in ("wallet", "tab"):
        _checkout_card_payments_abandon(checkout_id=checkout_id)
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
        if getattr(rail, "in_ledger", False):
            return _checkout_pay_in_ledger(checkout=checkout, rail=rail, payment_method=payment_method, buyer=buyer)
        minimum = rail.minimum_charge(checkout.currency)
        if checkout.amount_total < minimum:
            raise AmountTooSmall(
                f"Card payments must be at least {format_money(minimum, checkout.currency)}.", param="amount"
            )
        payment = Payment.objects.create(
            store_id=checkout.store_id,
            checkout=checkout,
            rail=rail.name,
            payment_method=payment_method,
            amount=checkout.amount_total,
            currency=checkout.currency,
        )

    result = rail.payment_start(
        payment_id=payment.pk, amount=payment.amount, currency=payment.currency, payment_method=payment_method
    )
    payment_apply_result(payment_id=payment.pk, result=result)
    if result.status == "failed":
        raise PaymentDeclined(result.failure_message, code=result.failure_code or "payment_failed")
    return Checkout.objects.get(pk=checkout.pk)


def _checkout_card_payments_abandon(*, checkout_id: str) -> None:
    """The buyer chose the wallet or the tab: give up card payments of this checkout that they have
    not confirmed (the Stripe page opens one as it loads; a sandbox 3-D Secure check may be waiting).
    The rail is asked first, outside any transaction; if it says the card payment went through
    after all, that payment is recorded and completes the checkout instead."""
    open_payments = Payment.objects.filter(
        checkout_id=checkout_id, status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]
    )
    for payment in open_payments:
        rail = rail_get(payment.rail)
        if getattr(rail, "in_ledger", False) or not hasattr(rail, "payment_cancel"):
            continue
        result = rail.payment_cancel(payment_id=payment.pk)
        if result.status == "succeeded":
            payment_apply_result(payment_id=payment.pk, result=result)
        elif result.status == "failed":
            Payment.objects.filter(
                pk=payment.pk, status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]
            ).update(status=PaymentStatus.CANCELED, failure_code="canceled", updated_at=timezone.now())


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


def payment_create_for_purpose(
    *, purpose: str, buyer, amount: int, currency: str, payment_method: str = "", store=None, before_start=None,
    saved=None,
) -> Payment:
    """Take a card payment that is not for a checkout (a wallet top-up, a tab settlement).

    The same lock, call, finalize pattern as a checkout. The rail is picked as for ``store`` (a
    store's own Stripe account) or, with no store, the platform's. Raises PaymentDeclined on a
    decline; a payment that needs the buyer's action (3-D Secure) is returned in requires_action.
    With ``saved`` (a SavedPaymentMethod) the card is charged with the buyer away, on whichever
    rail keeps it (``payment_start_off_session``); a card that would need the buyer fails instead.
    """
    amount_validate(amount, allow_zero=False)
    if saved is not None:
        from .saved_methods import _sandbox_check

        if saved.detached_at is not None:
            raise InvalidRequest("This saved payment method was removed.", param="payment_method")
        _sandbox_check(saved.rail)
        rail, payment_method = rail_get(saved.rail), saved.method_ref
    else:
        rail = rail_for(store=store, payment_method=payment_method)
    if getattr(rail, "in_ledger", False):
        raise InvalidRequest("Pay this with a card.", param="payment_method", code="card_required")
    minimum = rail.minimum_charge(currency)
    if amount < minimum:
        raise AmountTooSmall(f"Card payments must be at least {format_money(minimum, currency)}.", param="amount")
    with transaction.atomic():
        payment = Payment.objects.create(
            purpose=purpose, store=store, buyer=buyer, rail=rail.name, payment_method=payment_method,
            amount=amount, currency=currency,
        )
        if before_start is not None:
            before_start(payment)  # link the payment to what it pays for, before the rail can report
    if saved is not None:
        result = rail.payment_start_off_session(payment_id=payment.pk, amount=amount, currency=currency, saved=saved)
    else:
        result = rail.payment_start(payment_id=payment.pk, amount=amount, currency=currency, payment_method=payment_method)
    payment = payment_apply_result(payment_id=payment.pk, result=result)
    if result.status == "failed":
        raise PaymentDeclined(result.failure_message, code=result.failure_code or "payment_failed")
    return payment


# What a succeeded payment that is not for a checkout does (a wallet top-up, a tab settlement):
# apps register a handler(payment=) that moves the money; it runs in payment_succeed's transaction.
# An optional failure handler(payment=) runs in payment_fail's transaction (a declined settlement
# reopens the tab, a declined automatic top-up is recorded).
PURPOSE_HANDLERS: dict[str, object] = {}
PURPOSE_FAILURE_HANDLERS: dict[str, object] = {}


def payment_purpose_register(purpose: str, handler, on_failure=None) -> None:
    PURPOSE_HANDLERS[purpose] = handler
    if on_failure is not None:
        PURPOSE_FAILURE_HANDLERS[purpose] = on_failure


def payment_apply_result(*, payment_id: str, result: RailResult) -> Payment:
    if result.status == "succeeded":
        payment_succeed(payment_id=payment_id, reference=result.reference, fee=result.fee)
    elif result.status == "failed":
        payment_fail(payment_id=payment_id, code=result.failure_code, message=result.failure_message, reference=result.reference)
    elif result.status == "requires_action":
        Payment.objects.filter(pk=payment_id, status=PaymentStatus.PROCESSING).update(
            status=PaymentStatus.REQUIRES_ACTION, rail_reference=result.reference, updated_at=timezone.now()
        )
    return Payment.objects.get(pk=payment_id)


def payment_confirm_action(*, payment_id: str, approve: bool) -> Checkout:
    """The buyer answered the rail's challenge (3-D Secure) for a checkout's payment: its checkout."""
    payment = payment_authenticate(payment_id=payment_id, approve=approve)
    return Checkout.objects.get(pk=payment.checkout_id)


def payment_authenticate(*, payment_id: str, approve: bool) -> Payment:
    """The buyer answered the rail's challenge (3-D Secure) on the hosted page, for any payment
    (a checkout's, a top-up's, a tab settlement's). Returns the payment; a second answer to a
    payment that already succeeded changes nothing. Raises PaymentDeclined when it fails."""
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise PaymentNotFound()
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        raise PaymentNotAwaitingAction()
    result = rail_get(payment.rail).payment_confirm(payment_id=payment.pk, reference=payment.rail_reference, approve=approve)
    payment = payment_apply_result(payment_id=payment.pk, result=result)
    if result.status == "failed":
        raise PaymentDeclined(result.failure_message, code=result.failure_code or "payment_failed")
    return payment


@transaction.atomic
def payment_fail(*, payment_id: str, code: str, message: str, reference: str = "") -> None:
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if payment.status not in (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION):
        return
    payment.status = PaymentStatus.FAILED
    payment.failure_code = code[:40]
    payment.failure_message = message[:255]
    payment.rail_reference = reference or payment.rail_reference
    payment.save(update_fields=["status", "failure_code", "failure_message", "rail_reference", "updated_at"])
    if payment.checkout_id:
        Checkout.objects.filter(pk=payment.checkout_id).update(last_error_code=code[:40], last_error_message=message[:255])
    on_failure = PURPOSE_FAILURE_HANDLERS.get(payment.purpose)
    if on_failure is not None:
        on_failure(payment=payment)
    if payment.store_id:
        _event_emit(payment.store_id, "payment.failed", payment_out(payment))


def _event_emit(store_id: str, type: str, obj: dict) -> None:
    from stall.integrations.webhooks import event_emit

    event_emit(store_id=store_id, type=type, data={"object": obj})


def _platform_fee(amount: int) -> int:
    bps = settings.STALL_PLATFORM_FEE_BPS
    return int((Decimal(amount) * bps / 10_000).to_integral_value(ROUND_HALF_UP)) if bps else 0


@transaction.atomic
def payment_succeed(*, payment_id: str, reference: str = "", fee: int = 0) -> Order:
    """Record a rail's success: mark the payment, create the order, move the money. Idempotent."""
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if payment.purpose != PaymentPurpose.CHECKOUT:
        return _payment_succeed_for_purpose(payment=payment, reference=reference, fee=fee)
    if payment.status == PaymentStatus.SUCCEEDED:
        return Order.objects.get(payment=payment)
    checkout = Checkout.objects.select_for_update().select_related("store").get(pk=payment.checkout_id)
    if checkout.status == CheckoutStatus.COMPLETE:
        # The checkout was paid by another payment; this one must be given back, not kept.
        logger.error("payment %s succeeded on a completed checkout %s", payment.pk, checkout.pk)
        raise CheckoutInvalid("This checkout was already paid.", code="checkout_complete")
    amount_validate(fee, param="fee")
    payment.status = PaymentStatus.SUCCEEDED
    payment.rail_reference = reference or payment.rail_reference
    payment.fee = fee
    payment.save(update_fields=["status", "rail_reference", "fee", "updated_at"])

    platform_fee = _platform_fee(payment.amount)
    order = order_create_for_checkout(checkout=checkout, payment=payment, fee=fee, platform_fee=platform_fee)

    currency, store_id = payment.currency, checkout.store_id
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner=store_id, currency=currency)
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=currency)
    transfer_create(
        idempotency_key=f"{payment.pk}:sale", debit_account=clearing, credit_account=balance,
        amount=payment.amount, code="sale", reference=order.pk,
    )
    if platform_fee:
        platform = account_open(kind=AccountKind.PLATFORM_FEES, owner="platform", currency=currency)
        transfer_create(
            idempotency_key=f"{payment.pk}:platform_fee", debit_account=balance, credit_account=platform,
            amount=platform_fee, code="platform_fee", reference=order.pk,
        )
    if fee:
        fees = rail_fee_account(payment=payment)
        transfer_create(
            idempotency_key=f"{payment.pk}:processor_fee", debit_account=balance, credit_account=fees,
            amount=fee, code="processor_fee", reference=order.pk,
        )
    return order


def rail_fee_account(*, payment: Payment):
    """Where a payment's fee goes: the rail's own choice (the wallet's fee pool), else its processor fees."""
    rail = rail_get(payment.rail)
    if hasattr(rail, "fee_account"):
        return rail.fee_account(payment=payment)
    return account_open(kind=AccountKind.PROCESSOR_FEES, owner=payment.rail, currency=payment.currency)


def _payment_succeed_for_purpose(*, payment: Payment, reference: str, fee: int):
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment
    amount_validate(fee, param="fee")
    payment.status = PaymentStatus.SUCCEEDED
    payment.rail_reference = reference or payment.rail_reference
    payment.fee = fee
    payment.save(update_fields=["status", "rail_reference", "fee", "updated_at"])
    handler = PURPOSE_HANDLERS.get(payment.purpose)
    if handler is None:
        raise RuntimeError(f"no handler registered for payments of purpose {payment.purpose}")
    handler(payment=payment)
    return payment


def refund_create(*, store: Store, order_id: str, amount: int | None = None, reason: str = "") -> Refund:
    """Refund all or part of an order through the rail that took the payment.

    The processor's fee is not returned (card processors keep it); the platform's fee is returned
    in proportion. A full refund revokes the order's downloads and emails the buyer.
    """
    from stall.orders.errors import OrderNotFound

    reason = (reason or "").strip()[:255]
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(store=store, pk=order_id).first()
        if order is None:
            raise OrderNotFound()
        if order.payment_id is None:
            raise RefundInvalid("A free order has nothing to refund.", param="order")
        pending = sum(order.refunds.filter(status=RefundStatus.PENDING).values_list("amount", flat=True))
        refundable = order.amount_total - order.amount_refunded - pending
        if refundable <= 0:
            raise RefundInvalid("This order has been refunded in full.", param="order", code="charge_already_refunded")
        if amount is None:
            amount = refundable
        amount_validate(amount, allow_zero=False)
        if amount > refundable:
            raise RefundInvalid(
                f"At most {format_money(refundable, order.currency)} of this order can be refunded.",
                param="amount", code="amount_too_large",
            )
        payment = order.payment
        refund = Refund.objects.create(
            store=store, payment=payment, order=order, amount=amount, currency=order.currency, reason=reason
        )
        rail = rail_get(payment.rail)
        if getattr(rail, "in_ledger", False):
            # The wallet and the tab give the money back inside this transaction.
            rail.ledger_refund(refund=refund)
            return refund_succeed(refund_id=refund.pk)

    result = rail.refund(
        payment_id=payment.pk, reference=payment.rail_reference, amount=amount, currency=order.currency,
        refund_id=refund.pk,
    )
    if result.status == "processing":
        # The rail took the refund but has not carried it out (Stripe's "pending"): it stays
        # pending, counted against what can still be refunded, until the rail's webhook or the
        # reconciliation task settles it.
        return refund
    if result.status != "succeeded":
        Refund.objects.filter(pk=refund.pk).update(status=RefundStatus.FAILED, failure_message=result.failure_message[:255])
        raise RefundFailed(result.failure_message or None)
    return refund_succeed(refund_id=refund.pk)


@transaction.atomic
def refund_succeed(*, refund_id: str) -> Refund:
    """Record a refund the rail carried out: move the money back, update the order. Idempotent."""
    from stall.orders.tasks import refund_notice_send

    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return refund
    order = Order.objects.select_for_update().get(pk=refund.order_id)
    payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
    currency = order.currency
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner=order.store_id, currency=currency)
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=currency)
    transfer_create(
        idempotency_key=f"{refund.pk}:refund", debit_account=balance, credit_account=clearing,
        amount=refund.amount, code="refund", reference=order.pk,
    )
    refunded_after = order.amount_refunded + refund.amount
    if order.platform_fee:
        # Return the platform fee in proportion, computed on the running total so that partial
        # refunds add up to exactly the fee once the order is refunded in full.
        back = prorate(order.platform_fee, refunded_after, order.amount_total) - prorate(
            order.platform_fee, order.amount_refunded, order.amount_total
        )
        if back:
            platform = account_open(kind=AccountKind.PLATFORM_FEES, owner="platform", currency=currency)
            transfer_create(
                idempotency_key=f"{refund.pk}:platform_fee_refund", debit_account=platform, credit_account=balance,
                amount=back, code="platform_fee_refund", reference=order.pk,
            )
    order.amount_refunded = refunded_after
    order.status = OrderStatus.REFUNDED if refunded_after == order.amount_total else OrderStatus.PARTIALLY_REFUNDED
    order.save(update_fields=["amount_refunded", "status"])
    payment.amount_refunded += refund.amount
    payment.save(update_fields=["amount_refunded", "updated_at"])
    refund.status = RefundStatus.SUCCEEDED
    refund.save(update_fields=["status"])
    if order.status == OrderStatus.REFUNDED:
        entitlements_revoke_for_order(order=order)
    transaction.on_commit(lambda: refund_notice_send(refund.pk))
    _event_emit(order.store_id, "order.refunded", {**order_out(order), "refund": refund_out(refund)})
    return refund
