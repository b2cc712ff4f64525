"""A chargeback of an order's card payment, as the books and the creator see it.

``payments.disputes.dispute_record`` works out which money movements a dispute needs now and calls
``order_disputed`` (registered for the checkout purpose) in its transaction. Here the money moves:

- withdrawn: the disputed amount goes from the store's balance back to the processor's clearing
  account (the processor gave it to the cardholder), and the dispute fee to the processor's fees;
- reinstated (the store won): the amount comes back, and the fee when the processor returns it.

Each transfer references the order and changes its columns (``amount_disputed``, ``dispute_fee``)
in the same transaction, so the order's net stays what the ledger says (``selectors.order_ledger_totals``)
and a store's balance stays the sum of its orders' nets.

What a dispute means beyond the money is decided by whoever registered for it
(``order_disputed_register``), as ``handler(*, order, dispute, change)``: license keys are disabled
while it is open or lost and enabled again when it is won. On a lost dispute the order's downloads
are revoked here: the buyer has their money back, as after a full refund. While it is open they
stay (the cardholder may have bought it: "unrecognized" disputes are often family members).
"""

from collections.abc import Callable

from stall.integrations.webhooks import event_emit
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import account_open, transfer_create
from stall.payments.models import Dispute, DisputeStatus
from stall.payments.services import rail_fee_account

from .models import DisputeState, Order
from .schemas import dispute_out, order_out
from .services import entitlements_revoke_for_order

_DISPUTE_OBSERVERS: list[Callable[..., None]] = []


def order_disputed_register(handler: Callable[..., None]) -> None:
    """``handler(*, order, dispute, change)`` runs in ``order_disputed``'s transaction after the
    money moved and the order is updated; ``order.dispute_state`` says where the dispute stands."""
    if handler not in _DISPUTE_OBSERVERS:
        _DISPUTE_OBSERVERS.append(handler)


def _state(dispute: Dispute) -> str:
    if dispute.status == DisputeStatus.WON:
        return DisputeState.WON
    if dispute.status == DisputeStatus.LOST:
        return DisputeState.LOST
    if dispute.status == DisputeStatus.WARNING_CLOSED:
        return DisputeState.CLOSED
    return DisputeState.OPEN


def order_disputed(*, dispute: Dispute, payment, change) -> None:
    """Move a dispute's money and update its order (registered with payments for the checkout
    purpose; runs inside ``dispute_record``'s transaction)."""
    order = Order.objects.select_for_update().filter(payment=payment).first()
    if order is None:
        # A payment that made no order (a duplicate charge being refunded): nothing here to move.
        return
    currency = order.currency
    store_owner = ledger_owner(order.store_id, livemode=order.livemode)
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=currency)
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=currency)
    fees = rail_fee_account(payment=payment)
    key = f"{dispute.rail}:{dispute.rail_reference}"
    if change.withdraw:
        transfer_create(
            idempotency_key=f"{key}:dispute", debit_account=balance, credit_account=clearing,
            amount=dispute.amount, code="dispute", reference=order.pk,
        )
        order.amount_disputed += dispute.amount
        if dispute.fee:
            transfer_create(
                idempotency_key=f"{key}:dispute_fee", debit_account=balance, credit_account=fees,
                amount=dispute.fee, code="dispute_fee", reference=order.pk,
            )
            order.dispute_fee += dispute.fee
    if change.reinstate:
        transfer_create(
            idempotency_key=f"{key}:dispute_reinstated", debit_account=clearing, credit_account=balance,
            amount=dispute.amount, code="dispute_reinstated", reference=order.pk,
        )
        order.amount_disputed -= dispute.amount
    if change.reinstate_fee:
        transfer_create(
            idempotency_key=f"{key}:dispute_fee_reinstated", debit_account=fees, credit_account=balance,
            amount=dispute.fee, code="dispute_fee_reinstated", reference=order.pk,
        )
        order.dispute_fee -= dispute.fee
    before = order.dispute_state
    order.dispute_state = _state(dispute)
    order.save(update_fields=["amount_disputed", "dispute_fee", "dispute_state"])
    if order.dispute_state == DisputeState.LOST and before != DisputeState.LOST:
        entitlements_revoke_for_order(order=order)
    if order.dispute_state != before:
        for handler in _DISPUTE_OBSERVERS:
            handler(order=order, dispute=dispute, change=change)
    data = {"object": {**order_out(order), "dispute": dispute_out(dispute)}}
    if change.opened:
        event_emit(store_id=order.store_id, type="order.disputed", data=data)
    if change.closed:
        event_emit(store_id=order.store_id, type="dispute.closed", data=data)


def disputes_for_order(*, order: Order) -> list[Dispute]:
    """The order's disputes (a card payment has at most one, in practice), newest first."""
    if not order.payment_id:
        return []
    return list(Dispute.objects.filter(payment_id=order.payment_id).order_by("-created_at", "-pk"))

