"""Paying for a checkout and refunding an order.

The pattern for every rail call (after Saleor's ``complete_checkout``): lock and reserve in one
short transaction, call the rail with no transaction open — a card network can take seconds and
must not hold row locks (or, on SQLite, the single write lock) — then finalize in another short
transaction. Finalizing is idempotent, so a rail that reports the same success twice, by a
redirect and by a webhook, makes one order.

A crash between the reserving transaction and the finalizing one leaves a payment ``processing``
that nobody is waiting for. Such a payment is finished by asking its rail where it stands
(``payment_refresh``): by the buyer's next confirm (``checkout_payment_start``) and, for payments
nobody confirms again, by the periodic ``payments_reconcile``.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from stall.checkout.discounts import discount_claim, discount_release
from stall.checkout.errors import AmountTooSmall, CheckoutExpired, CheckoutInvalid, CheckoutNotFound
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.schemas import checkout_out
from stall.core.errors import InvalidRequest, StallError
from stall.core.money import amount_validate, format_money
from stall.core.rows import model_columns, model_from_row, model_insert
from stall.integrations.webhooks import event_emit
from stall.ledger.models import AccountKind
from stall.ledger.services import account_id_for, account_open
from stall.stores.models import Store

from .errors import PaymentDeclined, PaymentNotAwaitingAction, PaymentNotFound
from .models import ONE_PAYMENT_UNDER_WAY, Payment, PaymentStatus, Refund, RefundStatus
from .rails import (
    RAILS,
    RailResult,
    rail_for,
    rail_for_payment_method,
    rail_get,
    rail_livemode,
    sandbox_admit,
    sandbox_check,
    stripe_keys_sql,
)
from .schemas import payment_out

logger = logging.getLogger(__name__)

_OPEN = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION)


def checkout_payment_start(*, checkout_id: str, payment_method: str) -> Checkout:
    """Pay for a checkout on a card rail (the sandbox, Stripe). Returns the checkout, complete or
    awaiting the buyer's action. Free checkouts and the wallet and tab are paid by
    ``stall.orders.checkout_pay.checkout_confirm``, which calls this for cards.

    A checkout already complete, or with a payment already under way, is returned as it is: a
    double click or a replayed request charges once. A declined payment raises PaymentDeclined and
    leaves the checkout open for another try.

    A payment still processing after STALL_PAYMENT_RESUME_AFTER_SECONDS is taken to be stalled
    (the server died before recording the rail's answer) and is resumed: its rail is asked where
    it stands and the answer recorded. A success completes the checkout, a bank check waits for
    the buyer, and a failure lets this confirm try again with ``payment_method``.
    """
    payment = None
    for _ in range(3):  # again when the stalled payment turns out to have failed, or when raced
        try:
            with transaction.atomic():
                checkout = _checkout_lock_for_card(checkout_id=checkout_id)
                if checkout.status == CheckoutStatus.COMPLETE:
                    return checkout
                under_way = checkout.payments.filter(status__in=_OPEN).first() if checkout.under_way else None
                if under_way is None:
                    payment = _checkout_payment_reserve(
                        checkout=checkout, payment_method=payment_method
                    )
                    break
        except IntegrityError as exc:
            # PostgreSQL: the statement that locks the checkout reads "a payment under way" as it
            # stood when it began, so a confirm that waited there for another's lock misses the
            # payment that one made; the one-payment-under-way index refuses the second, nothing
            # is kept, and the next round's lock reads it.
            if ONE_PAYMENT_UNDER_WAY not in str(exc):
                raise
            continue
        if not payment_stalled(under_way):
            return checkout
        # Outside any transaction: asking the rail may take as long as charging.
        stalled = payment_refresh(payment_id=under_way.pk)
        if stalled.status not in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
            return Checkout.objects.get(pk=checkout.pk)
    if payment is None:
        return Checkout.objects.get(pk=checkout_id)

    rail = rail_get(payment.rail)
    result = rail.payment_start(
        payment_id=payment.pk, amount=payment.amount, currency=payment.currency, payment_method=payment_method
    )
    if result.status == "succeeded":
        # Recorded with the checkout locked in the same statement as the payment; the checkout
        # comes back as that transaction left it, holding its lines, this payment and its order,
        # so whoever shows it next (the API's answer) reads nothing again.
        paid = payment_succeed(
            payment_id=payment.pk, reference=result.reference, fee=result.fee, checkout_id=checkout.pk
        )
        return _checkout_paid(paid)
    payment_apply_result(payment_id=payment.pk, result=result)
    if result.status == "failed":
        raise PaymentDeclined(result.failure_message, code=result.failure_code or "payment_failed")
    return Checkout.objects.get(pk=checkout.pk)


# Written out: every card confirm runs it, and the ORM's building of it (a join, three EXISTS)
# cost more than the rest of the reservation (stall.core.rows says why).
_CHECKOUT_LOCK_SQL = (
    f"SELECT {model_columns(Checkout, 'k')}, {model_columns(Store, 's')}, "
    "EXISTS (SELECT 1 FROM payments_payment p WHERE p.checkout_id = k.id AND p.status IN (%s, %s)), "
    f"{stripe_keys_sql('k.store_id')} "
    "FROM checkout_checkout k JOIN stores_store s ON s.id = k.store_id WHERE k.id = %s"
)


def _for_update(*aliases: str) -> str:
    """Lock these tables' rows of the SELECT, where the database locks rows (SQLite's write
    transaction holds the whole database already)."""
    if not connection.features.has_select_for_update:
        return ""
    return " FOR UPDATE OF " + ", ".join(aliases)


def _checkout_lock_for_card(*, checkout_id: str) -> Checkout:
    """``checkout_lock_open`` for a card payment, in one statement: with it are read whether a
    payment of it is under way (``under_way``) and the Stripe row ``sandbox_admit`` asks about
    (``stripe_mine``, ``stripe_anyone``). Only the checkout's row is locked, not its store's (which every checkout
    of the store shares)."""
    with connection.cursor() as cursor:
        cursor.execute(_CHECKOUT_LOCK_SQL + _for_update("k"), [*_OPEN, checkout_id])
        row = cursor.fetchone()
    if row is None:
        raise CheckoutNotFound()
    width = len(Checkout._meta.concrete_fields)
    checkout = model_from_row(Checkout, row[:width])
    Checkout.store.field.set_cached_value(checkout, model_from_row(Store, row[width:-3]))
    checkout.under_way, checkout.stripe_mine, checkout.stripe_anyone = (bool(v) for v in row[-3:])
    if checkout.status == CheckoutStatus.EXPIRED:
        raise CheckoutExpired()
    if checkout.status == CheckoutStatus.OPEN and checkout.expires_at <= timezone.now():
        raise CheckoutExpired()
    return checkout


def _checkout_paid(order) -> Checkout:
    """The checkout of ``order`` (what the checkout purpose's handler returns) as its payment's
    transaction left it, with its lines, payment and order cached for ``checkout_out``."""
    checkout = getattr(order, "checkout", None)
    if not isinstance(checkout, Checkout) or checkout.status != CheckoutStatus.COMPLETE:
        return Checkout.objects.get(pk=order.checkout_id)
    return checkout


def _checkout_payment_reserve(*, checkout: Checkout, payment_method: str) -> Payment:
    """The card payment of a locked, open checkout with none under way. Call inside a
    transaction. A checkout with a discount code claims its use here, before the rail is called:
    a code that became unusable since the checkout was priced is refused (DiscountRefused)."""
    discount_claim(checkout=checkout)
    if isinstance(payment_method, str) and payment_method.startswith("sandbox_"):
        # A test card: refused where test cards are off, else real or test money (read with the lock).
        known = (checkout.stripe_mine, checkout.stripe_anyone) if hasattr(checkout, "stripe_mine") else None
        livemode = sandbox_admit(store_id=checkout.store_id, stripe_keys=known)
        rail = rail_for_payment_method(payment_method)
    else:
        rail = rail_for(store=checkout.store, payment_method=payment_method)
        livemode = rail_livemode(rail.name)
    if rail.in_ledger:
        raise InvalidRequest(
            "Pay from the wallet or the tab through checkout_confirm.", param="payment_method"
        )
    minimum = rail.minimum_charge(checkout.currency)
    if checkout.amount_total < minimum:
        raise AmountTooSmall(
            gettext("Card payments must be at least %(amount)s.") % {"amount": format_money(minimum, checkout.currency)},
            param="amount",
        )
    (payment,) = model_insert(Payment, [{
        "store_id": checkout.store_id, "checkout_id": checkout.pk, "buyer_id": None, "rail": rail.name,
        "payment_method": payment_method, "amount": checkout.amount_total, "currency": checkout.currency,
        "rail_reference": "", "failure_code": "", "failure_message": "", "livemode": livemode,
    }])
    Payment.checkout.field.set_cached_value(payment, checkout)
    return payment


def payment_stalled(payment: Payment, *, now=None) -> bool:
    """Whether a payment has been processing longer than STALL_PAYMENT_RESUME_AFTER_SECONDS, so
    that it is most likely not a live call's (a double click's first request). Asking about one
    that still is does no harm: the rail charges nothing twice (Stripe may answer that the first
    request is still at work, a 503 for the second)."""
    resume_after = timedelta(seconds=settings.STALL_PAYMENT_RESUME_AFTER_SECONDS)
    cutoff = (now or timezone.now()) - resume_after
    return payment.status == PaymentStatus.PROCESSING and payment.updated_at <= cutoff


def payment_refresh(*, payment_id: str) -> Payment:
    """Ask a card rail where a payment left processing stands (``payment_retrieve``) and record
    the answer with ``payment_apply_result``. Idempotent: the rail charges nothing when asked, and
    recording the same answer twice changes nothing, so asking while the first call is still
    under way is safe too. A payment no longer processing is returned as it is."""
    payment = Payment.objects.get(pk=payment_id)
    if payment.status != PaymentStatus.PROCESSING:
        return payment
    result = rail_get(payment.rail).payment_retrieve(payment_id=payment.pk)
    return payment_apply_result(payment_id=payment.pk, result=result)


# Rails whose payments another task reconciles, by its own rules and on its own clock: Stripe's
# (stripe_services.stripe_payments_reconcile) also looks at refunds and late successes; Lightning's
# (lightning_services.lightning_payments_reconcile) at invoices waiting for the buyer.
_RECONCILED_ELSEWHERE = frozenset({"stripe", "lightning"})


def payments_reconcile_due(*, cutoff) -> QuerySet[Payment]:
    """Card payments processing since before ``cutoff``, oldest first, on the rails reconciled
    here. Served by the partial index payments_processing_by_updated."""
    rails = [n for n, rail in RAILS.items() if not rail.in_ledger and n not in _RECONCILED_ELSEWHERE]
    return Payment.objects.filter(
        status=PaymentStatus.PROCESSING, rail__in=rails, updated_at__lte=cutoff
    ).order_by("updated_at")


def payments_reconcile(*, older_than_seconds: int | None = None, now=None) -> int:
    """Finish card payments left processing longer than ``older_than_seconds`` (default
    STALL_PAYMENT_RECONCILE_AFTER_SECONDS): a crash between reserving a payment and recording
    the rail's answer leaves one, and nobody may ever confirm its checkout again. Each is asked
    about with ``payment_refresh``. The wallet and the tab never leave a payment processing.
    Returns how many were settled (succeeded, failed, or now waiting for the buyer)."""
    now = now or timezone.now()
    if older_than_seconds is None:
        older_than_seconds = settings.STALL_PAYMENT_RECONCILE_AFTER_SECONDS
    due = payments_reconcile_due(cutoff=now - timedelta(seconds=older_than_seconds))
    settled = 0
    for payment_id in list(due.values_list("pk", flat=True)[:200]):
        try:
            payment = payment_refresh(payment_id=payment_id)
        except StallError as exc:
            logger.warning("reconcile of %s: %s", payment_id, exc.message)
            continue
        if payment.status == PaymentStatus.PROCESSING:
            # The rail has not decided yet: asked again in another interval, not at every run.
            Payment.objects.filter(pk=payment_id, status=PaymentStatus.PROCESSING).update(
                updated_at=now
            )
        else:
            settled += 1
    return settled


def checkout_card_payments_abandon(*, checkout_id: str) -> None:
    """The buyer chose the wallet or the tab: give up card payments of this checkout that they have
    not confirmed (the Stripe page opens one as it loads; a sandbox 3-D Secure check may be waiting).
    The rail is asked first, outside any transaction; if it says the card payment went through
    after all, that payment is recorded and completes the checkout instead."""
    open_payments = Payment.objects.filter(
        checkout_id=checkout_id, status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]
    )
    for payment in open_payments:
        rail = rail_get(payment.rail)
        if rail.in_ledger or not hasattr(rail, "payment_cancel"):
            continue
        result = rail.payment_cancel(payment_id=payment.pk)
        if result.status == "succeeded":
            payment_apply_result(payment_id=payment.pk, result=result)
        elif result.status == "failed":
            Payment.objects.filter(
                pk=payment.pk, status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]
            ).update(status=PaymentStatus.CANCELED, failure_code="canceled", updated_at=timezone.now())


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
        if saved.detached_at is not None:
            raise InvalidRequest(gettext_noop("This saved payment method was removed."), param="payment_method")
        sandbox_check(saved.rail, store_id=store.pk if store is not None else None)
        rail, payment_method = rail_get(saved.rail), saved.method_ref
    else:
        rail = rail_for(store=store, payment_method=payment_method)
    if rail.in_ledger:
        raise InvalidRequest(gettext_noop("Pay this with a card."), param="payment_method", code="card_required")
    minimum = rail.minimum_charge(currency)
    if amount < minimum:
        raise AmountTooSmall(gettext("Card payments must be at least %(amount)s.") % {"amount": format_money(minimum, currency)}, param="amount")
    with transaction.atomic():
        payment = Payment.objects.create(
            purpose=purpose, store=store, buyer=buyer, rail=rail.name, payment_method=payment_method,
            amount=amount, currency=currency, livemode=rail_livemode(rail.name),
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


@dataclass(frozen=True)
class PurposeHandlers:
    """What the app that owns a purpose does when its payments succeed, fail or are refunded.

    ``succeeded(payment=)`` moves the money (and for a checkout makes the order); it runs in
    ``payment_succeed``'s transaction and what it returns is returned from there. ``replayed`` gives
    that same answer for a payment that had already succeeded. ``failed(payment=)`` runs in
    ``payment_fail``'s transaction. ``refunded(refund=, payment=)`` records a refund the rail carried
    out, in ``refund_succeed``'s transaction. ``disputed(dispute=, payment=, change=)`` moves a
    chargeback's money and tells the owner, in ``dispute_record``'s transaction (payments.disputes).
    """

    succeeded: Callable
    replayed: Callable | None = None
    failed: Callable | None = None
    refunded: Callable | None = None
    disputed: Callable | None = None


# Registered in AppConfig.ready by the app that owns the purpose: orders (checkout), wallets
# (top_up, tab_settlement). Payments knows nothing else of them.
PURPOSE_HANDLERS: dict[str, PurposeHandlers] = {}


def payment_purpose_register(purpose: str, handlers: PurposeHandlers) -> None:
    PURPOSE_HANDLERS[purpose] = handlers


def purpose_handlers(purpose: str) -> PurposeHandlers:
    return _handlers(purpose)


def _handlers(purpose: str) -> PurposeHandlers:
    try:
        return PURPOSE_HANDLERS[purpose]
    except KeyError:
        raise RuntimeError(f"no handler registered for payments of purpose {purpose}") from None


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
    on_failure = _handlers(payment.purpose).failed
    if on_failure is not None:
        on_failure(payment=payment)
    if payment.store_id:
        event_emit(store_id=payment.store_id, type="payment.failed", data={"object": payment_out(payment)})


def platform_fee_for(amount: int) -> int:
    """The operator's share of a sale (STALL_PLATFORM_FEE_BPS), rounded half up."""
    bps = settings.STALL_PLATFORM_FEE_BPS
    return int((Decimal(amount) * bps / 10_000).to_integral_value(ROUND_HALF_UP)) if bps else 0


@transaction.atomic
def payment_succeed(*, payment_id: str, reference: str = "", fee: int = 0, checkout_id: str | None = None):
    """Record a rail's success: mark the payment and let its purpose's handler move the money (for
    a checkout: make the order). Idempotent: a second report changes nothing and returns what the
    first did. Returns what the handler returns (a checkout's Order). ``checkout_id``: the
    payment's checkout, when the caller knows it: both rows are then locked by one statement."""
    payment = None
    if checkout_id is not None:
        payment = _payment_lock_with_checkout(payment_id=payment_id, checkout_id=checkout_id)
    checkout_locked = payment is not None
    if payment is None:
        payment = Payment.objects.select_for_update().get(pk=payment_id)
    handlers = _handlers(payment.purpose)
    if payment.status == PaymentStatus.SUCCEEDED:
        return handlers.replayed(payment=payment) if handlers.replayed else payment
    if payment.checkout_id is not None:
        if not checkout_locked:
            payment.checkout = Checkout.objects.select_for_update().get(pk=payment.checkout_id)
        checkout = payment.checkout  # locked: the purpose's handler uses it as it is
        if checkout.status == CheckoutStatus.COMPLETE:
            # The checkout was paid by another payment; this one must be given back, not kept.
            logger.error("payment %s succeeded on a completed checkout %s", payment.pk, checkout.pk)
            raise CheckoutInvalid("This checkout was already paid.", code="checkout_complete")
    amount_validate(fee, param="fee")
    payment.status = PaymentStatus.SUCCEEDED
    payment.rail_reference = reference or payment.rail_reference
    payment.fee = fee
    payment.updated_at = timezone.now()
    with connection.cursor() as cursor:
        # Written out, as the lock above: save(update_fields=…) built the same UPDATE for a millisecond.
        cursor.execute(
            "UPDATE payments_payment SET status = %s, rail_reference = %s, fee = %s, updated_at = %s WHERE id = %s",
            [payment.status, payment.rail_reference, fee, connection.ops.adapt_datetimefield_value(payment.updated_at),
             payment.pk],
        )
    result = handlers.succeeded(payment=payment)
    if payment.checkout_id is not None:
        payment.checkout.latest_payment = payment  # what checkout_out shows, without a query
    return payment if result is None else result


# A payment and its checkout, locked by one statement: the card confirm's finalizing read.
_PAYMENT_LOCK_SQL = (
    f"SELECT {model_columns(Payment, 'p')}, {model_columns(Checkout, 'k')} FROM payments_payment p "
    "JOIN checkout_checkout k ON k.id = p.checkout_id WHERE p.id = %s AND p.checkout_id = %s"
)


def _payment_lock_with_checkout(*, payment_id: str, checkout_id: str) -> Payment | None:
    """The payment with its checkout (cached on it), both rows locked; None when the payment is not
    that checkout's."""
    with connection.cursor() as cursor:
        cursor.execute(_PAYMENT_LOCK_SQL + _for_update("p", "k"), [payment_id, checkout_id])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(Payment._meta.concrete_fields)
    payment = model_from_row(Payment, row[:width])
    Payment.checkout.field.set_cached_value(payment, model_from_row(Checkout, row[width:]))
    return payment


def rail_fee_account(*, payment: Payment):
    """Where a payment's fee goes: the rail's own choice (the wallet's fee pool), else its processor fees."""
    rail = rail_get(payment.rail)
    if hasattr(rail, "fee_account"):
        return rail.fee_account(payment=payment)
    return account_open(kind=AccountKind.PROCESSOR_FEES, owner=payment.rail, currency=payment.currency)


def rail_fee_account_id(*, payment: Payment) -> str:
    """``rail_fee_account``'s id; a card rail's processor fees account id comes from memory."""
    rail = rail_get(payment.rail)
    if hasattr(rail, "fee_account"):
        return rail.fee_account(payment=payment).pk
    return account_id_for(kind=AccountKind.PROCESSOR_FEES, owner=payment.rail, currency=payment.currency)


@transaction.atomic
def refund_succeed(*, refund_id: str) -> Refund:
    """Record a refund the rail carried out: the payment's refunded amount grows and the owner of
    the payment's purpose moves the money back (for a checkout: the order is updated). Idempotent."""
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return refund
    payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
    payment.amount_refunded += refund.amount
    payment.save(update_fields=["amount_refunded", "updated_at"])
    refund.status = RefundStatus.SUCCEEDED
    refund.save(update_fields=["status"])
    refunded = _handlers(payment.purpose).refunded
    if refunded is None:
        raise RuntimeError(f"payments of purpose {payment.purpose} cannot be refunded")
    refunded(refund=refund, payment=payment)
    return refund


def checkouts_expire_due(*, now=None) -> int:
    """Mark open checkouts past their expiry as expired, cancelling any payment awaiting action."""
    now = now or timezone.now()
    expired = 0
    due = list(Checkout.objects.filter(status=CheckoutStatus.OPEN, expires_at__lte=now).values_list("pk", flat=True)[:500])
    for checkout_id in due:
        with transaction.atomic():
            changed = Checkout.objects.filter(pk=checkout_id, status=CheckoutStatus.OPEN).update(status=CheckoutStatus.EXPIRED)
            if changed:
                Payment.objects.filter(checkout_id=checkout_id, status=PaymentStatus.REQUIRES_ACTION).update(
                    status=PaymentStatus.CANCELED, failure_code="checkout_expired"
                )
                discount_release(checkout_id=checkout_id)  # its code's use goes back to the pool
                checkout = Checkout.objects.select_related("store").prefetch_related("lines", "payments").get(pk=checkout_id)
                event_emit(store_id=checkout.store_id, type="checkout.expired", data={"object": checkout_out(checkout)})
                expired += 1
    return expired
