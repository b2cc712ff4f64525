"""Commissions: reserve with a brief, open when paid (money held), talk, deliver, accept or decline.

The money: the sale lands in the store's balance like any order's (``orders``). Opening the
commission then moves the order's net (what the sale left in the balance after fees) out of the
balance into the store's escrow account (``store_pending``) and makes a *pending* transfer from
escrow back to the balance: the creator sees it as incoming, cannot spend or pay it out. The
buyer's acceptance (or the auto-accept task after the offer's days) posts it; the creator's
decline voids it, returns the escrowed money to the balance and refunds the order in full through
its rail, so the balance ends where it started.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext_noop

from stall.catalog.models import Product, ProductKind
from stall.checkout.models import Checkout
from stall.core.errors import StallError
from stall.core.ids import new_id
from stall.integrations.webhooks import EventRow, event_emit
from stall.ledger.models import AccountKind, Transfer, ledger_owner
from stall.ledger.services import account_open, transfer_create, transfer_post, transfer_void
from stall.orders.models import Order, OrderStatus
from stall.orders.refunds import refund_create
from stall.stores.models import Store

from .errors import (
    CommissionInvalid,
    CommissionNotFound,
    CommissionSlotsFull,
    CommissionStateConflict,
    NotACommission,
)
from .models import (
    OPEN_STATUSES,
    Author,
    Commission,
    CommissionFile,
    CommissionMessage,
    CommissionStatus,
    FileRole,
    ServiceOffer,
)
from .notices import commission_notice_send
from .schemas import commission_out

logger = logging.getLogger(__name__)

BRIEF_MAX = 10000
MESSAGE_MAX = 5000
FILES_MAX = 10
# A reservation outlives its checkout by this much, so a payment still finishing (a bank's check)
# when the checkout's time runs out still finds its slot.
RESERVATION_GRACE = timedelta(hours=1)


# --- Terms -----------------------------------------------------------------------------------


@transaction.atomic
def service_offer_set(*, product: Product, slots: int | None = None, auto_accept_days: int = 7) -> ServiceOffer:
    """A service product's terms. Fewer slots than are taken is allowed: no new commission until
    enough close."""
    if product.kind != ProductKind.SERVICE:
        raise CommissionInvalid("Only a service product takes commissions.", param="product")
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1 or slots > 1000):
        raise CommissionInvalid("Slots must be a whole number from 1 to 1000, or none for no limit.", param="slots")
    if isinstance(auto_accept_days, bool) or not isinstance(auto_accept_days, int) or not 1 <= auto_accept_days <= 60:
        raise CommissionInvalid("Days before a delivery is accepted must be from 1 to 60.", param="auto_accept_days")
    offer, _ = ServiceOffer.objects.select_for_update().get_or_create(product=product)
    offer.slots, offer.auto_accept_days = slots, auto_accept_days
    if slots is not None and offer.taken > slots:
        # The CHECK keeps taken <= slots; the open ones stay open and count, so the offer is full.
        offer.slots = offer.taken
    offer.save()
    return offer


def service_terms_set(*, product: Product, **terms) -> ServiceOffer:
    """The products API's way to the terms (registered with catalog): the terms not sent keep
    their value (the defaults for a new service product)."""
    unknown = sorted(set(terms) - {"slots", "auto_accept_days"})
    if unknown:
        raise CommissionInvalid(f"A service has no term {unknown[0]}.", param=unknown[0])
    offer = ServiceOffer.objects.filter(product=product).first()
    return service_offer_set(
        product=product,
        slots=terms["slots"] if "slots" in terms else (offer.slots if offer else None),
        auto_accept_days=terms.get("auto_accept_days", offer.auto_accept_days if offer else 7),
    )


def service_terms_out(product: Product) -> dict | None:
    offer = ServiceOffer.objects.filter(product=product).first()
    if offer is None:
        return None
    return {"slots": offer.slots, "slots_left": slots_left(offer), "auto_accept_days": offer.auto_accept_days}


def slots_left(offer: ServiceOffer | None) -> int | None:
    return None if offer is None or offer.slots is None else max(offer.slots - offer.taken, 0)


# --- Reserve (checkout) and open (paid) ------------------------------------------------------------


def _upload_check(upload) -> None:
    if upload is None or not getattr(upload, "name", ""):
        raise CommissionInvalid(gettext_noop("Choose a file to attach."), param="files")
    if not upload.size:
        raise CommissionInvalid(f"{upload.name}: the file is empty.", param="files")
    if upload.size > settings.STALL_MAX_UPLOAD_BYTES:
        raise CommissionInvalid(
            f"{upload.name}: files can be at most {settings.STALL_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.", param="files"
        )


def _files_add(*, commission: Commission, role: str, uploads) -> list[CommissionFile]:
    uploads = list(uploads or ())
    if len(uploads) > FILES_MAX:
        raise CommissionInvalid(f"Attach at most {FILES_MAX} files.", param="files")
    for upload in uploads:
        _upload_check(upload)
    storage = storages["private"]
    added: list[CommissionFile] = []
    try:
        for upload in uploads:
            display = os.path.basename(upload.name)[:255]
            stored = storage.save(f"commissions/{commission.store_id}/{new_id('f')}/{get_valid_filename(display) or 'file'}", upload)
            content_type = getattr(upload, "content_type", None) or mimetypes.guess_type(display)[0] or "application/octet-stream"
            added.append(CommissionFile(commission=commission, role=role, name=display, storage_name=stored,
                                        size=upload.size, content_type=content_type[:120]))
        CommissionFile.objects.bulk_create(added)
    except Exception:
        for file in added:
            storage.delete(file.storage_name)  # the rows roll back with the transaction; the bytes would stay
        raise
    return added


def _release_expired(*, product_id: str) -> None:
    """Give back the slots of reservations whose checkout was never paid."""
    now = timezone.now()
    expired = list(Commission.objects.filter(
        product_id=product_id, status=CommissionStatus.RESERVED, reserved_until__lt=now, holds_slot=True,
    ).values_list("pk", flat=True)[:100])
    if not expired:
        return
    # Only the rows this call moves count, so two callers never give the same slot back twice.
    released = Commission.objects.filter(pk__in=expired, status=CommissionStatus.RESERVED, holds_slot=True).update(
        status=CommissionStatus.EXPIRED, holds_slot=False, closed_at=now,
    )
    if released:
        ServiceOffer.objects.filter(pk=product_id).update(taken=F("taken") - released)


def _slot_take(*, product_id: str) -> bool:
    """Take one of the offer's slots: one guarded UPDATE, so two buyers racing for the last slot
    cannot both get it. False when the offer has no limit (nothing to take)."""
    offer = ServiceOffer.objects.filter(pk=product_id).values_list("slots", flat=True).first()
    if offer is None:
        return False  # no terms set: no limit
    taken = ServiceOffer.objects.filter(pk=product_id).filter(Q(slots__isnull=True) | Q(taken__lt=F("slots"))).update(
        taken=F("taken") + 1
    )
    if not taken:
        raise CommissionSlotsFull(param="product")
    return True


def _slot_release(commission: Commission) -> None:
    if commission.holds_slot:
        ServiceOffer.objects.filter(pk=commission.product_id, taken__gt=0).update(taken=F("taken") - 1)
        commission.holds_slot = False


@transaction.atomic
def commission_reserve(*, checkout: Checkout, brief: str, files=()) -> Commission:
    """Keep the brief of a checkout for a service product, and one of its slots until the checkout
    is paid or runs out. Call in the transaction that made the checkout, so a full offer leaves no
    checkout behind."""
    line = checkout.lines.select_related("product").filter(product__kind=ProductKind.SERVICE).first()
    if line is None:
        raise NotACommission("This checkout has no service product to brief.", param="checkout")
    brief = (brief or "").strip()
    if not brief:
        raise CommissionInvalid(gettext_noop("Describe what you would like made."), param="brief")
    if len(brief) > BRIEF_MAX:
        raise CommissionInvalid(f"Keep the brief under {BRIEF_MAX} characters.", param="brief")
    _release_expired(product_id=line.product_id)
    holds_slot = _slot_take(product_id=line.product_id)
    commission = Commission.objects.create(
        store_id=checkout.store_id, product_id=line.product_id, checkout_id=checkout.pk, email=checkout.email,
        brief=brief, holds_slot=holds_slot, currency=checkout.currency,
        reserved_until=checkout.expires_at + RESERVATION_GRACE,
    )
    _files_add(commission=commission, role=FileRole.BRIEF, uploads=files)
    return commission


def _hold_accounts(order: Order):
    owner = ledger_owner(order.store_id, livemode=order.livemode)
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner=owner, currency=order.currency)
    escrow = account_open(kind=AccountKind.STORE_PENDING, owner=owner, currency=order.currency)
    return balance, escrow


def commission_fulfil(*, order: Order, lines, context=None) -> list:
    """The fulfilment of a paid service order (registered with orders; inside the paid order's
    transaction): the reserved commission opens and the order's net is held in escrow."""
    commission = Commission.objects.select_for_update().filter(checkout_id=order.checkout_id).first()
    if commission is None:
        # Bought without a brief (through the API's checkout): opened with an empty one to ask for.
        commission = Commission.objects.create(
            store_id=order.store_id, product_id=lines[0].product_id, checkout_id=order.checkout_id or new_id("none"),
            email=order.email, brief="", currency=order.currency, reserved_until=timezone.now(),
        )
    if commission.status == CommissionStatus.EXPIRED:
        # Paid after its reservation ran out (a slow bank): it is sold, so it opens; it takes a slot
        # if one is free, and never fails the payment's transaction for want of one.
        commission.holds_slot = bool(ServiceOffer.objects.filter(pk=commission.product_id).filter(
            Q(slots__isnull=True) | Q(taken__lt=F("slots"))).update(taken=F("taken") + 1))
    now = timezone.now()
    commission.order = order
    commission.status = CommissionStatus.AWAITING_DELIVERY
    commission.opened_at = now
    held = order.amount_total - order.fee - order.platform_fee
    if held > 0:
        balance, escrow = _hold_accounts(order)
        transfer_create(idempotency_key=f"{order.pk}:commission_escrow", debit_account=balance, credit_account=escrow,
                        amount=held, code="commission_escrow", reference=order.pk)
        hold = transfer_create(idempotency_key=f"{order.pk}:commission_hold", debit_account=escrow, credit_account=balance,
                               amount=held, code="commission_hold", reference=order.pk, pending=True)
        commission.amount_held, commission.hold_transfer_id = held, hold.pk
    commission.save()
    commission_id = commission.pk
    transaction.on_commit(lambda: commission_notice_send(commission_id, "opened"))
    return [EventRow("commission.opened", commission_out(commission))]


# --- The creator's side ------------------------------------------------------------------------


def commission_for_store(*, store: Store, commission_id: str, lock: bool = False) -> Commission:
    """The store's commission by its id, or by its order's id. Another store's is not found; an
    order of this store that is not a commission is ``not_a_commission``."""
    qs = Commission.objects.select_for_update() if lock else Commission.objects.all()
    key = str(commission_id or "")
    found = qs.filter(store=store, order_id=key).first() if key.startswith("ord_") else qs.filter(store=store, pk=key).first()
    if found is not None:
        return found
    if key.startswith("ord_") and Order.objects.filter(store=store, pk=key).exists():
        raise NotACommission(param="id")
    raise CommissionNotFound(param="id")


def _state_check(commission: Commission, allowed: tuple, doing: str) -> None:
    if commission.status not in allowed:
        label = CommissionStatus(commission.status).label.lower()
        raise CommissionStateConflict(f"This commission is {label}: it cannot be {doing}.", param="id")


@transaction.atomic
def commission_message_add(*, commission: Commission, author: str, body: str) -> CommissionMessage:
    body = (body or "").strip()
    if not body:
        raise CommissionInvalid(gettext_noop("Write a message first."), param="body")
    if len(body) > MESSAGE_MAX:
        raise CommissionInvalid(f"Keep a message under {MESSAGE_MAX} characters.", param="body")
    commission = Commission.objects.select_for_update().get(pk=commission.pk)
    if commission.status in (CommissionStatus.RESERVED, CommissionStatus.EXPIRED):
        raise CommissionStateConflict(gettext_noop("This commission is not paid: there is no one to talk to yet."), param="id")
    message = CommissionMessage.objects.create(commission=commission, author=author, body=body)
    commission_id = commission.pk
    to = "buyer" if author == Author.CREATOR else "creator"
    transaction.on_commit(lambda: commission_notice_send(commission_id, f"message_to_{to}"))
    return message


def commission_deliver(*, store: Store, commission_id: str, note: str = "", files=()) -> Commission:
    """The creator hands over the work: a note and files. The buyer is told and has the offer's
    days to accept; after that it is accepted for them."""
    note = (note or "").strip()
    files = list(files or ())
    if not note and not files:
        raise CommissionInvalid("Add a note or files to deliver.", param="note")
    if len(note) > BRIEF_MAX:
        raise CommissionInvalid(f"Keep the note under {BRIEF_MAX} characters.", param="note")
    with transaction.atomic():
        commission = commission_for_store(store=store, commission_id=commission_id, lock=True)
        _state_check(commission, (CommissionStatus.AWAITING_DELIVERY,), "delivered")
        days = ServiceOffer.objects.filter(pk=commission.product_id).values_list("auto_accept_days", flat=True).first() or 7
        now = timezone.now()
        commission.status = CommissionStatus.DELIVERED
        commission.delivery_note = note
        commission.delivered_at, commission.auto_accept_at = now, now + timedelta(days=days)
        commission.save(update_fields=["status", "delivery_note", "delivered_at", "auto_accept_at"])
        _files_add(commission=commission, role=FileRole.DELIVERY, uploads=files)
        event_emit(store_id=store.pk, type="commission.delivered", data={"object": commission_out(commission)})
        transaction.on_commit(lambda: commission_notice_send(commission.pk, "delivered"))
    return commission


@transaction.atomic
def commission_accept(*, commission_id: str, auto: bool = False, now=None) -> Commission:
    """The buyer accepts the delivery (or the offer's days passed): the held money is posted to the
    store's balance. Accepting twice is refused (``commission_state``)."""
    commission = Commission.objects.select_for_update().filter(pk=commission_id).first()
    if commission is None:
        raise CommissionNotFound(param="id")
    _state_check(commission, (CommissionStatus.DELIVERED,), "accepted")
    if commission.order_id and Order.objects.filter(pk=commission.order_id, amount_refunded__gt=0).exists():
        # Refunded from the order's page meanwhile: releasing the hold would pay for money given back.
        raise CommissionStateConflict("This order was refunded: decline the commission instead.", param="id")
    now = now or timezone.now()
    if auto and (commission.auto_accept_at is None or commission.auto_accept_at > now):
        raise CommissionStateConflict("This delivery is not due to be accepted yet.", param="id")
    if commission.hold_transfer_id:
        transfer_post(transfer=Transfer.objects.get(pk=commission.hold_transfer_id))
    commission.status = CommissionStatus.ACCEPTED
    commission.closed_at = now
    commission.auto_accepted = auto
    _slot_release(commission)
    commission.save(update_fields=["status", "closed_at", "auto_accepted", "holds_slot"])
    event_emit(store_id=commission.store_id, type="commission.accepted", data={"object": commission_out(commission)})
    transaction.on_commit(lambda: commission_notice_send(commission.pk, "accepted"))
    return commission


def _close_declined(commission: Commission, *, order, reason: str) -> None:
    """Void the hold, give the escrowed money back to the balance, and close the commission as
    declined. Inside the caller's transaction, the commission locked."""
    if commission.hold_transfer_id:
        transfer_void(transfer=Transfer.objects.get(pk=commission.hold_transfer_id))
        balance, escrow = _hold_accounts(order)
        transfer_create(idempotency_key=f"{order.pk}:commission_release", debit_account=escrow,
                        credit_account=balance, amount=commission.amount_held, code="commission_release",
                        reference=order.pk)
    commission.status = CommissionStatus.DECLINED
    commission.decline_reason = reason
    commission.closed_at = timezone.now()
    _slot_release(commission)
    commission.save(update_fields=["status", "decline_reason", "closed_at", "holds_slot"])
    event_emit(store_id=commission.store_id, type="commission.declined", data={"object": commission_out(commission)})


def commission_order_refunded(*, order, refund, refunded_before: int = 0) -> None:
    """An open commission's order refunded in full from the order's page (registered with orders'
    refunds): the buyer has their money back, so the commission closes as declined and its hold
    is released, as a decline would. A partial refund leaves it open for the creator to decide."""
    if order.status != OrderStatus.REFUNDED:
        return
    commission = (Commission.objects.select_for_update()
                  .filter(order=order, status__in=(CommissionStatus.AWAITING_DELIVERY, CommissionStatus.DELIVERED)).first())
    if commission is None:
        return
    _close_declined(commission, order=order, reason="Refunded from the order's page")
    commission_id = commission.pk
    transaction.on_commit(lambda: commission_notice_send(commission_id, "declined"))


def commission_decline(*, store: Store, commission_id: str, reason: str = "") -> Commission:
    """The creator declines: the hold is voided, the escrowed money goes back to the balance and
    the order is refunded in full through its rail. A delivered commission can still be declined
    (the buyer has not accepted it); an accepted one is refunded from the order's page instead."""
    reason = (reason or "").strip()[:500]
    with transaction.atomic():
        commission = commission_for_store(store=store, commission_id=commission_id, lock=True)
        _state_check(commission, (CommissionStatus.AWAITING_DELIVERY, CommissionStatus.DELIVERED), "declined")
        order = commission.order
        _close_declined(commission, order=order, reason=reason)
    # The refund after the decline is committed: a card processor is called with no transaction open.
    if order is not None:
        order.refresh_from_db(fields=["amount_refunded"])
    if order is not None and order.payment_id is not None and order.amount_refunded < order.amount_total:
        # What is left of it: an order already refunded in part from its page is refunded the rest.
        try:
            refund_create(store=store, order_id=order.pk, reason=reason or "Commission declined")
        except StallError:
            logger.exception("commission %s declined but its refund failed; refund it from the order's page", commission.pk)
            raise
    transaction.on_commit(lambda: commission_notice_send(commission.pk, "declined"))
    return commission


def commissions_auto_accept(*, now=None, limit: int = 500) -> int:
    """Accept every delivery whose buyer's days have passed. Each in its own transaction; one
    accepted meanwhile by its buyer is skipped. Returns how many were accepted."""
    now = now or timezone.now()
    due = list(Commission.objects.filter(status=CommissionStatus.DELIVERED, auto_accept_at__lte=now)
               .order_by("auto_accept_at").values_list("pk", flat=True)[:limit])
    accepted = 0
    for commission_id in due:
        try:
            commission_accept(commission_id=commission_id, auto=True, now=now)
            accepted += 1
        except CommissionStateConflict:
            continue  # accepted by its buyer meanwhile, or refunded from the order's page
    return accepted


def commission_is_open(commission: Commission) -> bool:
    return commission.status in OPEN_STATUSES
