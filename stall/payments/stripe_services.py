"""Stripe-specific services: a store's keys, the buyer's Stripe page, Stripe's webhooks, and the
reconciliation of payments whose outcome we missed.

Whatever path brings the news — the buyer's browser coming back, a webhook, the periodic task —
it ends in the same idempotent services (payment_succeed, payment_fail, refund_succeed), so the
news arriving twice, or in the wrong order, changes the books once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from huey.contrib.djhuey import db_task

from stall.checkout.errors import CheckoutInvalid
from stall.checkout.models import Checkout, CheckoutStatus
from stall.core.errors import NotFound, StallError
from stall.core.lazy import LazyModule
from stall.stores.models import Store

from .disputes import DisputeNews, dispute_record
from .errors import (
    PaymentNotFound,
    PaymentProcessorUnavailable,
    StripeKeyInvalid,
    WebhookSignatureInvalid,
)
from .models import (
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    SavedPaymentMethod,
    StripeAccount,
    StripeEvent,
)
from .rails import RailResult, rail_get
from .rails.stripe import result_from_intent, result_from_refund, stripe_call, stripe_client
from .selectors import StripeConfig, stripe_config_for_store
from .services import checkout_payment_start, payment_apply_result, payment_fail, refund_succeed

logger = logging.getLogger(__name__)
stripe = LazyModule("stripe")  # imported by the first use (see core.lazy)

WEBHOOK_TOLERANCE_SECONDS = 300
_OPEN = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION)


# --- a store's own keys -------------------------------------------------------------------------
def stripe_account_set(
    *, store: Store, secret_key: str, publishable_key: str, webhook_secret: str = "", api_base: str = ""
) -> StripeAccount:
    """Give ``store`` its own Stripe account. The secret key is tried against Stripe first: a key
    Stripe refuses is refused here, with nothing saved."""
    secret_key, publishable_key = (secret_key or "").strip(), (publishable_key or "").strip()
    webhook_secret, api_base = (webhook_secret or "").strip(), (api_base or "").strip().rstrip("/")
    if not secret_key.startswith(("sk_", "rk_")):
        raise StripeKeyInvalid("A Stripe secret key starts with sk_ (or rk_ for a restricted key).", param="secret_key")
    if not publishable_key.startswith("pk_"):
        raise StripeKeyInvalid("A Stripe publishable key starts with pk_.", param="publishable_key")
    secret_mode = secret_key.split("_")[1] if secret_key.count("_") >= 2 else ""
    publishable_mode = publishable_key.split("_")[1] if publishable_key.count("_") >= 2 else ""
    if {secret_mode, publishable_mode} == {"test", "live"}:
        raise StripeKeyInvalid("One key is a test key and the other a live key; use a matching pair.", param="publishable_key")
    if webhook_secret and not webhook_secret.startswith("whsec_"):
        raise StripeKeyInvalid("A Stripe webhook signing secret starts with whsec_.", param="webhook_secret")
    if api_base:
        if not settings.STRIPE_ALLOW_CUSTOM_API_BASE:
            # Otherwise any creator could make this server send requests to any address.
            raise StripeKeyInvalid("A custom Stripe API address is not allowed on this Stall.", param="api_base")
        try:
            URLValidator(schemes=["http", "https"])(api_base)
        except ValidationError:
            raise StripeKeyInvalid("Enter the API address as a URL, such as http://127.0.0.1:8420.", param="api_base") from None

    config = StripeConfig(secret_key=secret_key, publishable_key=publishable_key, webhook_secret=webhook_secret, api_base=api_base)
    try:
        stripe_client(config).v1.balance.retrieve()
    except (stripe.AuthenticationError, stripe.PermissionError):
        raise StripeKeyInvalid("Stripe did not accept this secret key.", param="secret_key") from None
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError):
        raise PaymentProcessorUnavailable("Stripe could not be reached to check the key. Try again in a few minutes.") from None
    except stripe.StripeError as exc:
        raise StripeKeyInvalid(f"Stripe refused this key: {exc.user_message or exc}", param="secret_key") from None

    with transaction.atomic():
        account, _ = StripeAccount.objects.update_or_create(
            store=store,
            defaults={"secret_key": secret_key, "publishable_key": publishable_key, "webhook_secret": webhook_secret, "api_base": api_base},
        )
    return account


@transaction.atomic
def stripe_account_remove(*, store: Store) -> None:
    """The store goes back to the platform's Stripe account (or to no card payments)."""
    StripeAccount.objects.filter(store=store).delete()


# --- finalizing what Stripe says ----------------------------------------------------------------
def _stripe_result_apply(*, payment: Payment, result: RailResult) -> Payment:
    """payment_apply_result, plus two cases only a processor with its own retries has:

    - A payment we had marked failed can still succeed at Stripe (the buyer retried the same
      intent in the Payment Element). Its success wins; a newer attempt of the same checkout that
      was never paid is withdrawn so the checkout keeps one live payment.
    - A success on a checkout another payment already completed is a double charge: it is
      refunded in full by a task, never kept.
    """
    if payment.failure_code == "duplicate_refunded":
        return payment  # already given back; a later copy of the news must not refund it twice
    if result.status == "succeeded" and payment.status not in (*_OPEN, PaymentStatus.SUCCEEDED) and payment.checkout_id:
        # Only attempts of the same checkout are siblings; a top-up or a tab settlement has none
        # (matching on an empty checkout would withdraw every other buyer's pending card payment).
        Payment.objects.filter(
            checkout_id=payment.checkout_id, rail=payment.rail, status=PaymentStatus.REQUIRES_ACTION
        ).exclude(pk=payment.pk).update(status=PaymentStatus.CANCELED, failure_code="superseded", updated_at=timezone.now())
    if result.status == "succeeded" and result.method_ref and result.customer_ref:
        _card_keep(payment=payment, result=result)
    try:
        return payment_apply_result(payment_id=payment.pk, result=result)
    except CheckoutInvalid as exc:
        if exc.code != "checkout_complete":
            raise
        Payment.objects.filter(pk=payment.pk).update(
            status=PaymentStatus.CANCELED, rail_reference=result.reference or payment.rail_reference,
            failure_code="duplicate_refunded", updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: stripe_duplicate_refund(payment.pk))
        return Payment.objects.get(pk=payment.pk)


def _card_keep(*, payment: Payment, result: RailResult) -> None:
    """Keep the card a checkout asked to keep (Checkout.save_card) before the payment's success is
    recorded, so that what the paid order fulfils finds it (a membership renews on it): a
    SavedPaymentMethod of the checkout's email on the store's Stripe account, and the payment
    names the card it was paid with. Database rows only; the check that the card is attached to
    the Customer (localstripe does not attach it by itself) is a task after commit."""
    checkout = Checkout.objects.filter(pk=payment.checkout_id, save_card=True).first()
    config = stripe_config_for_store(payment.store)
    if checkout is None or config is None:
        return
    with transaction.atomic():
        saved = SavedPaymentMethod.objects.filter(
            email=checkout.email, rail="stripe", store_id=config.store_id, method_ref=result.method_ref, detached_at__isnull=True,
        ).first()
        if saved is None:
            saved = SavedPaymentMethod.objects.create(
                email=checkout.email, rail="stripe", store_id=config.store_id, customer_ref=result.customer_ref,
                method_ref=result.method_ref, label="Card",
            )
        Payment.objects.filter(pk=payment.pk).update(payment_method=result.method_ref)
        saved_id = saved.pk
        transaction.on_commit(lambda: stripe_card_attach(saved_id))


def stripe_card_attach_run(*, saved_id: str) -> None:
    """The task's work: the kept card attached to its Customer, and labelled with its brand."""
    saved = SavedPaymentMethod.objects.select_related("store").filter(pk=saved_id, rail="stripe", detached_at__isnull=True).first()
    if saved is None:
        return
    label = rail_get("stripe").payment_method_attach(saved=saved)
    SavedPaymentMethod.objects.filter(pk=saved.pk).update(label=label[:80])


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def stripe_card_attach(saved_id: str) -> None:
    """A card kept from a payment is attached to its Stripe Customer (``_card_keep``)."""
    stripe_card_attach_run(saved_id=saved_id)


def stripe_payment_refresh(*, payment_id: str) -> Payment:
    """Ask Stripe how a payment went and record it (the buyer's browser came back, or the
    reconciliation task asks). A payment already succeeded is left alone."""
    payment = Payment.objects.filter(pk=payment_id, rail="stripe").first()
    if payment is None:
        raise PaymentNotFound()
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment
    result = rail_get("stripe").payment_retrieve(payment_id=payment.pk)
    if result.status == "failed" and payment.status not in _OPEN:
        return payment
    return _stripe_result_apply(payment=payment, result=result)


def stripe_checkout_return(*, checkout_id: str, payment_intent: str) -> Checkout:
    """The buyer's browser came back from Stripe (``return_url``) with the intent's id."""
    payment = Payment.objects.filter(checkout_id=checkout_id, rail="stripe", rail_reference=payment_intent).first()
    if payment is None or not payment_intent:
        raise PaymentNotFound("No payment of this checkout matches the one Stripe returned.")
    stripe_payment_refresh(payment_id=payment.pk)
    return Checkout.objects.get(pk=checkout_id)


@dataclasses.dataclass(frozen=True)
class StripePage:
    """What the buyer's Stripe page needs."""

    checkout: Checkout
    payment: Payment | None
    client_secret: str = ""
    # True when the intent was confirmed on the server and waits for the bank's check, so the
    # page hands it to Stripe.js's handleNextAction instead of showing the Payment Element.
    next_action: bool = False


def stripe_checkout_page(*, checkout_id: str) -> StripePage:
    """Ready a checkout's Stripe page: its Payment and PaymentIntent are made on the first visit
    and reused on the next ones, so reloading the page never makes a second charge."""
    for _ in range(2):  # a second round when Stripe says the intent on record has failed
        checkout = checkout_payment_start(checkout_id=checkout_id, payment_method="stripe")
        if checkout.status == CheckoutStatus.COMPLETE:
            return StripePage(checkout=checkout, payment=None)
        payment = checkout.payments.filter(status__in=_OPEN).order_by("-pk").first()
        if payment is None or payment.rail != "stripe":
            return StripePage(checkout=checkout, payment=payment)
        result = rail_get("stripe").payment_retrieve(payment_id=payment.pk)
        payment = _stripe_result_apply(payment=payment, result=result)
        checkout = Checkout.objects.get(pk=checkout_id)
        if result.status == "requires_action" and payment.status == PaymentStatus.REQUIRES_ACTION:
            return StripePage(
                checkout=checkout, payment=payment, client_secret=result.client_secret,
                next_action=payment.payment_method.startswith("pm_"),
            )
        if result.status != "failed":
            return StripePage(checkout=checkout, payment=payment)
    return StripePage(checkout=checkout, payment=None)


# --- webhooks -----------------------------------------------------------------------------------
def _webhook_secret(store_id: str | None) -> str:
    if store_id is None:
        return settings.STRIPE_WEBHOOK_SECRET
    account = StripeAccount.objects.filter(store_id=store_id).first()
    return account.webhook_secret if account is not None else ""


def stripe_webhook_receive(*, payload: bytes, signature: str, store_id: str | None = None) -> tuple[StripeEvent, bool]:
    """Verify and act on one webhook delivery. Returns the event and whether it was new.

    The event row is inserted first, in the same transaction as its effects: a second delivery
    of the same event (Stripe retries, or a replay) hits the primary key and changes nothing.
    """
    secret = _webhook_secret(store_id)
    if not secret:
        raise NotFound("No Stripe webhook is set up here.")
    try:
        stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
        data = json.loads(payload)
        event_id, event_type = str(data["id"]), str(data["type"])
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError) as exc:
        logger.warning("stripe webhook refused (store %s): %s", store_id or "platform", exc)
        raise WebhookSignatureInvalid() from None

    with transaction.atomic():
        try:
            with transaction.atomic():
                event = StripeEvent.objects.create(id=event_id, store_id=store_id, type=event_type, payload=data)
        except IntegrityError:
            logger.info("stripe event %s already received; ignored", event_id)
            return StripeEvent.objects.get(pk=event_id), False
        handler = _HANDLERS.get(event_type)
        if handler is not None:
            obj = (data.get("data") or {}).get("object") or {}
            handler(obj, store_id)
        event.processed_at = timezone.now()
        event.save(update_fields=["processed_at"])
    return event, True


def _payment_for_intent(intent: dict, store_id: str | None) -> Payment | None:
    """Our payment named in the intent's metadata, if the event may speak for it."""
    payment_id = (intent.get("metadata") or {}).get("stall_payment", "")
    payment = Payment.objects.select_related("store").filter(pk=payment_id, rail="stripe").first() if payment_id else None
    if payment is None:
        logger.info("stripe intent %s names no payment of ours", intent.get("id"))
        return None
    config = stripe_config_for_store(payment.store)
    if config is None or config.store_id != store_id:
        logger.warning("stripe event for %s came from another account than its store's; ignored", payment.pk)
        return None
    if payment.rail_reference not in ("", intent.get("id")):
        logger.warning("stripe intent %s does not match %s's intent %s; ignored", intent.get("id"), payment.pk, payment.rail_reference)
        return None
    if intent.get("amount") != payment.amount or str(intent.get("currency", "")).upper() != payment.currency:
        logger.error("stripe intent %s amount does not match payment %s; ignored", intent.get("id"), payment.pk)
        return None
    return payment


def _on_intent_succeeded(intent: dict, store_id: str | None) -> None:
    payment = _payment_for_intent(intent, store_id)
    if payment is not None and payment.status != PaymentStatus.SUCCEEDED:
        _stripe_result_apply(payment=payment, result=result_from_intent({**intent, "status": "succeeded"}))


def _on_intent_failed(intent: dict, store_id: str | None) -> None:
    payment = _payment_for_intent(intent, store_id)
    if payment is None:
        return
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or ("canceled" if intent.get("status") == "canceled" else "payment_failed")
    # payment_fail acts only on a payment still open: a failure arriving after a success (events
    # come in any order) changes nothing.
    payment_fail(
        payment_id=payment.pk, code=code, message=error.get("message") or "The payment did not go through.",
        reference=intent.get("id", ""),
    )


def _on_refund(refund_object: dict, store_id: str | None) -> None:
    refund_id = (refund_object.get("metadata") or {}).get("stall_refund", "")
    refund = Refund.objects.select_related("payment__store").filter(pk=refund_id, payment__rail="stripe").first() if refund_id else None
    if refund is None:
        return
    config = stripe_config_for_store(refund.payment.store)
    if config is None or config.store_id != store_id:
        logger.warning("stripe refund event for %s came from another account; ignored", refund.pk)
        return
    _refund_apply(refund=refund, result=result_from_refund(refund_object))


def _on_charge_refunded(charge: dict, store_id: str | None) -> None:
    for refund_object in (charge.get("refunds") or {}).get("data") or []:
        _on_refund(refund_object, store_id)


def stripe_payment_for_intent(intent_id: str) -> Payment | None:
    """Our payment of a Stripe PaymentIntent, through the payments_stripe_by_reference index."""
    return Payment.objects.select_related("store").filter(rail="stripe", rail_reference=intent_id).first()


def _on_dispute(dispute: dict, store_id: str | None, *, funds: str = "") -> None:
    """A chargeback of one of our payments (localstripe has no disputes; the tests deliver these
    events signed, as Stripe does). A dispute of a payment we do not know, or sent by another
    account than its store's, is acknowledged and ignored, like any such event."""
    intent_id = dispute.get("payment_intent") or ""
    if isinstance(intent_id, dict):
        intent_id = intent_id.get("id") or ""
    payment = stripe_payment_for_intent(intent_id) if intent_id else None
    if payment is None:
        logger.warning("stripe dispute %s is of charge %s, no payment of ours; ignored", dispute.get("id"), dispute.get("charge"))
        return
    config = stripe_config_for_store(payment.store)
    if config is None or config.store_id != store_id:
        logger.warning("stripe dispute for %s came from another account than its store's; ignored", payment.pk)
        return
    try:
        amount, currency = int(dispute["amount"]), str(dispute["currency"]).upper()
        reference = str(dispute["id"])
    except (KeyError, TypeError, ValueError):
        logger.error("stripe dispute event without id, amount or currency; ignored: %s", dispute)
        return
    if currency != payment.currency or not 0 < amount <= payment.amount:
        logger.error("stripe dispute %s of %s %s does not fit payment %s; ignored", reference, amount, currency, payment.pk)
        return
    due = (dispute.get("evidence_details") or {}).get("due_by")
    news = DisputeNews(
        reference=reference, amount=amount, currency=currency, status=str(dispute.get("status") or ""),
        reason=str(dispute.get("reason") or ""), funds=funds,
        evidence_due_by=datetime.fromtimestamp(int(due), tz=UTC) if isinstance(due, int) else None,
        fee=settings.STALL_STRIPE_DISPUTE_FEE, fee_returned_when_won=settings.STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON,
    )
    dispute_record(payment=payment, news=news)


_HANDLERS = {
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
    "charge.dispute.funds_withdrawn": partial(_on_dispute, funds="withdrawn"),
    "charge.dispute.funds_reinstated": partial(_on_dispute, funds="reinstated"),
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.canceled": _on_intent_failed,
    "charge.refunded": _on_charge_refunded,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.refund.updated": _on_refund,
}


def _refund_apply(*, refund: Refund, result: RailResult) -> None:
    if result.status == "succeeded":
        refund_succeed(refund_id=refund.pk)
    elif result.status == "failed":
        changed = Refund.objects.filter(pk=refund.pk, status=RefundStatus.PENDING).update(
            status=RefundStatus.FAILED, failure_message=(result.failure_message or "The refund failed.")[:255]
        )
        if not changed and refund.status == RefundStatus.SUCCEEDED:
            # Rare (the buyer's card account was closed): the money came back to the store at
            # Stripe, but our books already gave it to the buyer. Needs a person.
            logger.error("stripe reports refund %s failed after it succeeded", refund.pk)


# --- reconciliation -----------------------------------------------------------------------------
def stripe_payments_reconcile(*, older_than_minutes: int | None = None, now=None) -> int:
    """Ask Stripe about payments and refunds left open longer than ``older_than_minutes`` and
    record what it says. Returns how many were settled (succeeded, failed or refunded)."""
    now = now or timezone.now()
    minutes = settings.STRIPE_RECONCILE_AFTER_MINUTES if older_than_minutes is None else older_than_minutes
    cutoff = now - timedelta(minutes=minutes)
    settled = 0
    due = Payment.objects.filter(rail="stripe", status__in=_OPEN, updated_at__lte=cutoff).order_by("updated_at")
    for payment_id, status in list(due.values_list("pk", "status")[:200]):
        try:
            payment = stripe_payment_refresh(payment_id=payment_id)
        except StallError as exc:
            logger.warning("stripe reconcile of %s: %s", payment_id, exc.message)
            continue
        if payment.status not in _OPEN:
            settled += 1
        else:
            # Asked again in another ``minutes``, not at every run.
            Payment.objects.filter(pk=payment_id, status=payment.status).update(updated_at=now)

    pending = Refund.objects.select_related("payment").filter(
        status=RefundStatus.PENDING, payment__rail="stripe", created_at__lte=cutoff
    ).order_by("created_at")
    for refund in list(pending[:200]):
        payment = refund.payment
        try:
            # The same idempotency key as the first call: Stripe answers with the refund it
            # made then, or makes it now if that call never reached it.
            result = rail_get("stripe").refund(
                payment_id=payment.pk, reference=payment.rail_reference, amount=refund.amount,
                currency=refund.currency, refund_id=refund.pk,
            )
        except StallError as exc:
            logger.warning("stripe reconcile of %s: %s", refund.pk, exc.message)
            continue
        _refund_apply(refund=refund, result=result)
        if result.status in ("succeeded", "failed"):
            settled += 1
    return settled


def stripe_duplicate_refund_send(*, payment_id: str) -> None:
    """Give back a Stripe payment that succeeded on a checkout another payment had already paid."""
    payment = Payment.objects.select_related("store").get(pk=payment_id)
    client = stripe_client(stripe_config_for_store(payment.store))
    try:
        stripe_call(
            "duplicate_refund", client.v1.refunds.create,
            params={"payment_intent": payment.rail_reference, "metadata": {"stall_payment": payment.pk, "stall_duplicate": "true"}},
            options={"idempotency_key": f"stall-{payment.pk}-duplicate-refund"},
        )
    except stripe.StripeError as exc:
        logger.error("stripe refused the refund of duplicate payment %s: %s", payment.pk, exc)
        return
    logger.warning("refunded duplicate stripe payment %s (%s)", payment.pk, payment.rail_reference)


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def stripe_duplicate_refund(payment_id: str) -> None:
    """A second payment of a checkout already paid is refunded (``stripe_duplicate_refund_send``)."""
    stripe_duplicate_refund_send(payment_id=payment_id)
