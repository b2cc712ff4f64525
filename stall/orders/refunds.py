"""Refunding an order: all or part of it, through the rail that took its payment.

``refund_create`` reserves the refund against the order, then asks the rail (a card processor is
called with no transaction open; the wallet and the tab give the money back inside the same
transaction). ``payments.services.refund_succeed`` records the rail's success, whenever it comes
(at once, by webhook, or by reconciliation), and calls ``order_refunded`` (registered for the
checkout purpose) to move the money back and update the order.
"""

from collections.abc import Callable

from django.db import transaction
from django.db.models import F

from stall.accounts.services import buyer_for_email
from stall.core.money import amount_validate, format_money, prorate
from stall.integrations.webhooks import event_emit
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import account_open, transfer_create
from stall.payments.errors import RefundFailed, RefundInvalid
from stall.payments.models import Refund, RefundStatus
from stall.payments.rails import rail_get
from stall.payments.rails.wallet import buyer_accounts_lock, refund_into_wallet
from stall.payments.schemas import refund_out
from stall.payments.services import refund_succeed
from stall.stores.models import Store

from .errors import OrderNotFound
from .models import DisputeState, LineRefund, Order, OrderLine, OrderStatus
from .schemas import order_out
from .services import entitlements_revoke_for_line, entitlements_revoke_for_order
from .tasks import refund_notice_send

# What a refund means to the domains above orders, registered in their AppConfig.ready: a check
# may refuse a refund before any money moves (a gift card already redeemed); an observer runs in
# ``order_refunded``'s transaction once the money moved back and the order is updated, as
# ``handler(*, order, refund, refunded_before)`` (stall.books returns the refund's share of what
# the sale set aside; gift cards are cancelled; license keys disabled).
_REFUND_CHECKS: list[Callable[..., None]] = []
_REFUND_OBSERVERS: list[Callable[..., None]] = []


def refund_check_register(check: Callable[..., None]) -> None:
    """``check(order=, amount=)`` raises a StallError to refuse refunding ``amount`` of ``order``."""
    if check not in _REFUND_CHECKS:
        _REFUND_CHECKS.append(check)


def order_refunded_register(handler: Callable[..., None]) -> None:
    if handler not in _REFUND_OBSERVERS:
        _REFUND_OBSERVERS.append(handler)


def refund_create(
    *, store: Store, order_id: str, amount: int | None = None, reason: str = "", line_id: int | None = None,
    to_wallet: bool = False,
) -> Refund:
    """Refund all or part of an order through the rail that took the payment.

    ``line_id``: refund one line of the order, up to what the buyer paid for it (its price less
    its share of the discount) and not yet refunded; all of that when ``amount`` is left out.
    Refunding a line in full revokes what it granted (its downloads, or a bundle's parts').

    A card processor keeps its fee; a wallet sale's share of its buyer's top-up fee goes back to the
    wallet's fee pool in proportion, and the platform's fee is returned in proportion. A full
    refund revokes the order's downloads and emails the buyer.

    ``to_wallet``: give the money back into the buyer's wallet instead of through the rail, inside
    this transaction (``payments.rails.wallet.refund_into_wallet``); for a rail that cannot pay a
    buyer back. An order paid from the wallet or the tab is refunded by its rail either way.
    """
    reason = (reason or "").strip()[:255]
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(store=store, pk=order_id).first()
        if order is None:
            raise OrderNotFound()
        if order.payment_id is None:
            raise RefundInvalid("A free order has nothing to refund.", param="order")
        if order.dispute_state in (DisputeState.OPEN, DisputeState.LOST):
            # The processor refuses to refund a charge under dispute; a lost one went back already.
            raise RefundInvalid(
                "This order's payment is disputed by the cardholder: it cannot be refunded.",
                param="order", code="charge_disputed",
            )
        pending = sum(order.refunds.filter(status=RefundStatus.PENDING).values_list("amount", flat=True))
        refundable = order.amount_total - order.amount_refunded - pending
        if refundable <= 0:
            raise RefundInvalid("This order has been refunded in full.", param="order", code="charge_already_refunded")
        line = None
        if line_id is not None:
            line = OrderLine.objects.filter(order=order, pk=line_id).first() if isinstance(line_id, int) else None
            if line is None:
                raise RefundInvalid("This order has no such line.", param="line", code="resource_missing")
            line_pending = sum(
                LineRefund.objects.filter(line=line, refund__status=RefundStatus.PENDING).values_list("refund__amount", flat=True)
            )
            line_refundable = min(refundable, line.amount_paid - line.amount_refunded - line_pending)
            if line_refundable <= 0:
                raise RefundInvalid("This line has been refunded in full.", param="line", code="charge_already_refunded")
        if amount is None:
            amount = refundable if line is None else line_refundable
        amount_validate(amount, allow_zero=False)
        if line is not None and amount > line_refundable:
            raise RefundInvalid(
                f"At most {format_money(line_refundable, order.currency)} of this line can be refunded.",
                param="amount", code="amount_too_large",
            )
        if amount > refundable:
            raise RefundInvalid(
                f"At most {format_money(refundable, order.currency)} of this order can be refunded.",
                param="amount", code="amount_too_large",
            )
        for check in _REFUND_CHECKS:
            check(order=order, amount=amount)
        payment = order.payment
        rail = rail_get(payment.rail)
        refund = Refund.objects.create(
            store=store, payment=payment, order=order, amount=amount, currency=order.currency, reason=reason,
            to_wallet=to_wallet and not rail.in_ledger,
        )
        if line is not None:
            LineRefund.objects.create(refund=refund, line=line)
        if rail.in_ledger or refund.to_wallet:
            # The wallet and the tab, and a refund into the wallet, move the money inside this transaction.
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


def order_refunded(*, refund: Refund, payment) -> None:
    """Move a refund's money back and update its order (registered with payments for the checkout
    purpose; runs inside ``refund_succeed``'s transaction)."""
    order = Order.objects.select_for_update().get(pk=refund.order_id)
    currency = order.currency
    rail = rail_get(payment.rail)
    if rail.in_ledger or refund.to_wallet:
        # The buyer's accounts before the store's balance and the clearing account, as a spend
        # locks them: a spend of the same buyer at this moment waits here rather than deadlocks.
        buyer_id = payment.buyer_id or buyer_for_email(email=order.email).pk
        buyer_accounts_lock(buyer_id=buyer_id, currency=currency)
    # A test order's money comes back out of the store's test balance, where it went.
    store_owner = ledger_owner(order.store_id, livemode=order.livemode)
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=currency)
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=currency)
    transfer_create(
        idempotency_key=f"{refund.pk}:refund", debit_account=balance, credit_account=clearing,
        amount=refund.amount, code="refund", reference=order.pk,
    )
    # Every transfer below that touches the store's balance has its column on the order, changed
    # here in the same transaction, so the order's net stays what the ledger says it is.
    if rail.in_ledger:
        # The wallet and the tab: on from clearing to the buyer, with the sale's fee share.
        order.fee_refunded += rail.ledger_refund(refund=refund, order=order)
    elif refund.to_wallet:
        # On from the rail's clearing into the buyer's wallet; the rail keeps its fee, as a card
        # processor does on a refund.
        refund_into_wallet(refund=refund, order=order, clearing=clearing)
    refunded_before = order.amount_refunded
    refunded_after = refunded_before + refund.amount
    if order.platform_fee:
        # Return the platform fee in proportion, computed on the running total so that partial
        # refunds add up to exactly the fee once the order is refunded in full.
        back = prorate(order.platform_fee, refunded_after, order.amount_total) - prorate(
            order.platform_fee, order.amount_refunded, order.amount_total
        )
        if back:
            platform_owner = ledger_owner("platform", livemode=order.livemode)
            platform = account_open(
                kind=AccountKind.PLATFORM_FEES, owner=platform_owner, currency=currency
            )
            transfer_create(
                idempotency_key=f"{refund.pk}:platform_fee_refund", debit_account=platform, credit_account=balance,
                amount=back, code="platform_fee_refund", reference=order.pk,
            )
            order.platform_fee_refunded += back
    order.amount_refunded = refunded_after
    order.status = OrderStatus.REFUNDED if refunded_after == order.amount_total else OrderStatus.PARTIALLY_REFUNDED
    order.save(update_fields=["amount_refunded", "status", "fee_refunded", "platform_fee_refunded"])
    line_refund = LineRefund.objects.filter(refund=refund).select_related("line").first()
    if line_refund is not None:
        line = line_refund.line
        OrderLine.objects.filter(pk=line.pk).update(amount_refunded=F("amount_refunded") + refund.amount)
        if line.amount_refunded + refund.amount >= line.amount_paid:
            entitlements_revoke_for_line(order=order, line=line)
    if order.status == OrderStatus.REFUNDED:
        entitlements_revoke_for_order(order=order)
    for handler in _REFUND_OBSERVERS:
        handler(order=order, refund=refund, refunded_before=refunded_before)
    refund_id = refund.pk
    transaction.on_commit(lambda: refund_notice_send(refund_id))
    event_emit(store_id=order.store_id, type="order.refunded", data={"object": {**order_out(order), "refund": refund_out(refund)}})
