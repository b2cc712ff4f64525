"""Chargebacks: a cardholder asked their bank for a card payment back.

The processor tells us by webhook (Stripe's ``charge.dispute.created``, ``…funds_withdrawn``,
``…funds_reinstated``, ``…closed``), each event carrying the dispute as it stands. Events come
more than once and in any order, so ``dispute_record`` does not follow the events one by one: it
keeps one Dispute per processor dispute and works out, from what it was told and what was already
done, which of the dispute's two money movements are now due:

- the withdrawal (the disputed amount, and the processor's dispute fee) once Stripe took the money:
  a ``funds_withdrawn`` event, or a dispute whose status says so (a real dispute is withdrawn as it
  opens; a lost one certainly was);
- the reinstatement (the amount given back) once the store won: a ``funds_reinstated`` event or a
  ``won`` status. A dispute won before we heard of its withdrawal is withdrawn and reinstated in
  the same step, so the books still show the fee.

Each is made once (a flag on the Dispute under its row lock, and the transfers' idempotency keys).
The owner of the payment's purpose (orders, for a checkout) moves the money and tells whom it
must: ``PurposeHandlers.disputed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import DISPUTE_CLOSED_STATUSES, Dispute, DisputeStatus, Payment
from .services import purpose_handlers

logger = logging.getLogger(__name__)

# A real dispute (not an inquiry) in these statuses has had its money taken by the processor.
_WITHDRAWN_STATUSES = (DisputeStatus.NEEDS_RESPONSE, DisputeStatus.UNDER_REVIEW, DisputeStatus.WON, DisputeStatus.LOST)


@dataclass(frozen=True)
class DisputeNews:
    """What one processor event says about a dispute."""

    reference: str  # the processor's dispute id
    amount: int
    currency: str
    status: str
    reason: str = ""
    evidence_due_by: datetime | None = None
    funds: str = ""  # "withdrawn" or "reinstated" when the event is about the money itself
    fee: int = 0  # the processor's dispute fee, charged with the withdrawal of a real dispute
    fee_returned_when_won: bool = False


@dataclass(frozen=True)
class DisputeChange:
    """What ``dispute_record`` did this time, for the purpose's handler."""

    opened: bool = False  # first heard of
    withdraw: bool = False  # take the amount (and fee) from the store now
    reinstate: bool = False  # give the amount back now
    reinstate_fee: bool = False  # give the fee back now
    closed: bool = False  # closed by this news (won, lost, inquiry closed)


@transaction.atomic
def dispute_record(*, payment: Payment, news: DisputeNews) -> tuple[Dispute, DisputeChange]:
    """Record what the processor says about a dispute of ``payment`` and make the money movements
    now due, once. Returns the dispute and what changed (nothing, for news already acted on)."""
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    dispute = Dispute.objects.select_for_update().filter(rail=payment.rail, rail_reference=news.reference).first()
    status = news.status if news.status in DisputeStatus.values else DisputeStatus.NEEDS_RESPONSE
    opened = dispute is None
    if opened:
        dispute = Dispute.objects.create(
            store_id=payment.store_id, payment=payment, rail=payment.rail, rail_reference=news.reference,
            amount=news.amount, currency=news.currency, reason=news.reason[:40], status=status,
            evidence_due_by=news.evidence_due_by,
        )
    was_closed = not opened and dispute.closed
    if not was_closed:
        # A closed dispute stays closed: an older event arriving late does not reopen it.
        dispute.status = status
    dispute.evidence_due_by = news.evidence_due_by or dispute.evidence_due_by
    inquiry = dispute.status.startswith("warning_")
    withdraw = not dispute.withdrawn and not inquiry and (
        news.funds in ("withdrawn", "reinstated") or dispute.status in _WITHDRAWN_STATUSES
    )
    if withdraw:
        dispute.withdrawn = True
        dispute.fee = news.fee
    reinstate = dispute.withdrawn and not dispute.reinstated and (
        news.funds == "reinstated" or dispute.status == DisputeStatus.WON
    )
    reinstate_fee = reinstate and news.fee_returned_when_won and dispute.fee > 0
    if reinstate:
        dispute.reinstated = True
        dispute.fee_reinstated = reinstate_fee
    closed = not was_closed and dispute.status in DISPUTE_CLOSED_STATUSES
    if closed:
        dispute.closed_at = timezone.now()
    dispute.save()
    change = DisputeChange(opened=opened, withdraw=withdraw, reinstate=reinstate, reinstate_fee=reinstate_fee, closed=closed)
    if not any((opened, withdraw, reinstate, closed)):
        return dispute, change
    handler = purpose_handlers(payment.purpose).disputed
    if handler is None:
        # A disputed wallet top-up or tab settlement: the money is the buyer's wallet's, which
        # may be spent already; recorded here for a person to settle with the buyer.
        logger.error("dispute %s of %s payment %s recorded; nothing moves it in the books", dispute.pk, payment.purpose, payment.pk)
        return dispute, change
    handler(dispute=dispute, payment=payment, change=change)
    return dispute, change
