"""Giving back what a card paid past a capped tier's monthly price (cap-to-subscribe).

A card unlock is priced under the cap when its checkout is made and asked the cap again before
the card is charged (``orders.pricing.checkout_prices_check``), but a Stripe page confirms its
PaymentIntent in the reader's browser, and a sandbox 3-D Secure check or a Lightning invoice is
paid after it was started: the cap may have been reached by other unlocks in between. That money
was taken already and cannot be rolled back, so ``services.cap_observe`` counts only what keeps
the reader at the cap and queues this refund of the rest, after its transaction commits, through
the ordinary refund path (the rail gives it back, or for Lightning, which cannot pay a buyer back,
it goes into the buyer's Stall wallet; the receipt and the books see it). What is owed
is written down in that transaction too (``CapExcess``): a refund whose task was never queued —
the process stopped between the commit and the queue — is given back by the sweep.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from huey.contrib.djhuey import db_task

from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.errors import RefundFailed
from stall.payments.models import Refund, RefundStatus

from .models import CapExcess

logger = logging.getLogger(__name__)

CAP_REFUND_REASON = "Over the membership's monthly cap: given back"

# Rails that cannot pay a buyer back (Lightning needs an invoice from the buyer's wallet): what
# they took past the cap goes into the buyer's Stall wallet instead, to spend at any store.
_CANNOT_REFUND = ("lightning",)


def cap_excess_refund(*, order_id: str, amount: int) -> Refund | None:
    """Refund ``amount`` of a card order that paid past a cap. Idempotent: an order given back
    once (a refund with this reason, pending or done) is not given back again, so a retried task
    or the sweep refunds once. Settles what was owed (``CapExcess``) unless the rail failed and
    may answer later. Returns the refund, or None when there was nothing (more) to do."""
    refund = _refund(order_id=order_id, amount=amount)
    CapExcess.objects.filter(order_id=order_id, settled_at__isnull=True).update(settled_at=timezone.now())
    return refund


def _refund(*, order_id: str, amount: int) -> Refund | None:
    order = Order.objects.select_related("store", "payment").filter(pk=order_id).first()
    if order is None or amount <= 0:
        return None
    if Refund.objects.filter(order_id=order_id, reason=CAP_REFUND_REASON).exclude(status=RefundStatus.FAILED).exists():
        return None
    amount = min(amount, order.amount_total - order.amount_refunded)
    if amount <= 0:
        return None  # the creator refunded it already
    to_wallet = order.payment is not None and order.payment.rail in _CANNOT_REFUND
    # A card processor's failure is raised: the task retries, and the sweep later.
    return refund_create(store=order.store, order_id=order_id, amount=amount, reason=CAP_REFUND_REASON, to_wallet=to_wallet)


# How long an owed refund waits for its queued task before the sweep gives it back itself.
SWEEP_AFTER = timedelta(minutes=10)


def cap_excess_sweep() -> int:
    """Give back every excess still owed a while after its order: its task was lost, or every try
    of it failed. Each one alone (a rail failing for one order does not stop the others); returns
    how many were settled."""
    settled = 0
    owed = CapExcess.objects.filter(settled_at__isnull=True, created_at__lt=timezone.now() - SWEEP_AFTER).order_by("created_at")
    for order_id, amount in owed.values_list("order_id", "amount")[:500]:
        try:
            cap_excess_refund(order_id=order_id, amount=amount)
        except RefundFailed:
            logger.warning("order %s: the refund of %s past a cap failed again; the sweep will try later", order_id, amount)
            continue
        settled += 1
    return settled


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def cap_excess_refund_task(order_id: str, amount: int):
    """Queued after the commit of a card order that paid past a cap; retried if the rail fails."""
    refund = cap_excess_refund(order_id=order_id, amount=amount)
    return refund.pk if refund is not None else None
