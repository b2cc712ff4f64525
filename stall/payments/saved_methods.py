"""Saved payment methods: a buyer's card kept on a rail, charged later without the buyer present.

One mechanism for every rail (the sandbox keeps the test card's code, Stripe a Customer and a
PaymentMethod set up for off-session use), so the wallet's automatic top-up and the tab's
settlement charge a ``SavedPaymentMethod`` without knowing which rail holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from stall.checkout.models import Checkout, CheckoutLine
from stall.checkout.services import email_normalize
from stall.core.errors import Conflict, InvalidRequest
from stall.core.money import amount_validate, currency_normalize, format_money
from stall.stores.models import Store

from .errors import PaymentDeclined, StripeNotConfigured
from .models import OffSessionCharge, Payment, SavedPaymentMethod
from .rails import UnknownPaymentMethod, rail_get, rail_livemode, sandbox_check
from .selectors import stripe_config_for_store, stripe_csp
from .services import payment_apply_result


def _account_store_id(*, rail: str, store: Store | None) -> str | None:
    """Which account holds the rail's customer: a store's own Stripe account, or the platform's."""
    if rail != "stripe":
        return None
    config = stripe_config_for_store(store)
    if config is None:
        raise StripeNotConfigured(param="rail")
    return config.store_id


def payment_method_save(*, email: str, rail: str, payment_method: str, store: Store | None = None) -> SavedPaymentMethod:
    """Keep ``payment_method`` on ``rail`` for charges to ``email`` made later without them.

    On Stripe, a card whose bank wants the cardholder to confirm raises PaymentMethodNeedsAction
    with the SetupIntent's client secret; once the buyer has confirmed with Stripe.js, call this
    again with the SetupIntent's id (``seti_…``) as ``payment_method``. Saving the same card
    twice returns the first.
    """
    email = email_normalize(email)
    rail_impl = rail_get(rail)
    sandbox_check(rail, store_id=store.pk if store is not None else None)
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    account_store_id = _account_store_id(rail=rail, store=store)
    known = SavedPaymentMethod.objects.filter(
        email=email, rail=rail, store_id=account_store_id, detached_at__isnull=True
    ).exclude(customer_ref="").first()
    result = rail_impl.payment_method_setup(
        email=email, payment_method=payment_method.strip(), store=store, customer_ref=known.customer_ref if known else ""
    )
    if result.status != "succeeded":
        raise PaymentDeclined(result.failure_message or None, code=result.failure_code or "payment_failed")
    with transaction.atomic():
        saved = SavedPaymentMethod.objects.filter(
            email=email, rail=rail, store_id=account_store_id, method_ref=result.method_ref, detached_at__isnull=True
        ).first()
        if saved is None:
            saved = SavedPaymentMethod.objects.create(
                email=email, rail=rail, store_id=account_store_id, customer_ref=result.customer_ref,
                method_ref=result.method_ref, label=result.label[:80],
            )
    return saved


@dataclass(frozen=True)
class CardSetup:
    """What a page needs to let the buyer enter a card in Stripe's Payment Element (setup mode)."""

    client_secret: str
    publishable_key: str
    csp: dict


def payment_method_setup_start(*, email: str, store: Store) -> CardSetup:
    """Start keeping a Stripe card for ``email`` at ``store``'s account: the buyer enters it on a
    page, Stripe sends them back with the SetupIntent's ``seti_…``, and ``payment_method_save``
    with it keeps the card. Refused when the store takes no Stripe cards (StripeNotConfigured)."""
    email = email_normalize(email)
    config = stripe_config_for_store(store)
    if config is None:
        raise StripeNotConfigured(param="payment_method")
    known = SavedPaymentMethod.objects.filter(
        email=email, rail="stripe", store_id=config.store_id, detached_at__isnull=True
    ).exclude(customer_ref="").first()
    result = rail_get("stripe").payment_method_setup_start(email=email, store=store, customer_ref=known.customer_ref if known else "")
    if result.status == "failed":
        raise PaymentDeclined(result.failure_message or None, code=result.failure_code or "payment_failed")
    return CardSetup(client_secret=result.client_secret, publishable_key=config.publishable_key, csp=stripe_csp(config))


def payment_charge_saved(
    *, store: Store, saved: SavedPaymentMethod, amount: int, currency: str, description: str = "", idempotency_key: str,
    product=None, before_start=None,
) -> Payment:
    """Charge a saved payment method for ``store``, the buyer away. Returns the Payment: succeeded,
    or failed with the rail's code (``authentication_required`` when the bank wants the buyer).

    The same ``idempotency_key`` returns the first charge's payment and charges nothing; reusing
    it for another amount, currency or card is a conflict. Until the wallet and the tab book these
    charges their own way, a successful one is booked as a sale of ``store`` (an order with no
    lines, and its receipt), through the same payment_succeed as a checkout.

    With ``product`` (of ``store``) the order has one line of it at ``amount``, so that product
    kind's fulfilment runs (a membership's renewal). ``before_start(payment)`` runs in the
    transaction that makes the payment, before the rail is called (link it to what it pays for).
    """
    amount = amount_validate(amount, allow_zero=False)
    currency = currency_normalize(currency)
    description = (description or "").strip()[:255]
    if not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > 255:
        raise InvalidRequest("An idempotency key of 1 to 255 characters is required.", param="idempotency_key")

    def replay(charge: OffSessionCharge) -> Payment:
        if (charge.saved_id, charge.amount, charge.currency) != (saved.pk, amount, currency):
            raise Conflict("This idempotency key was used for another charge.", code="idempotency_key_reused", param="idempotency_key")
        return charge.payment

    existing = OffSessionCharge.objects.select_related("payment").filter(store=store, idempotency_key=idempotency_key).first()
    if existing is not None:
        return replay(existing)
    if saved.detached_at is not None:
        raise InvalidRequest("This saved payment method was removed.", param="saved")
    if product is not None and product.store_id != store.pk:
        raise InvalidRequest("No such product.", param="product", code="resource_missing")
    rail = rail_get(saved.rail)
    sandbox_check(saved.rail, store_id=store.pk)
    if saved.rail == "stripe" and _account_store_id(rail="stripe", store=store) != saved.store_id:
        raise InvalidRequest("This saved card belongs to another Stripe account than this store's.", param="saved")
    minimum = rail.minimum_charge(currency)
    if amount < minimum:
        raise InvalidRequest(f"Card charges must be at least {format_money(minimum, currency)}.", param="amount", code="amount_too_small")

    try:
        with transaction.atomic():
            checkout = Checkout.objects.create(
                store=store, email=saved.email, currency=currency, amount_subtotal=amount, amount_total=amount,
                expires_at=timezone.now() + timedelta(seconds=settings.STALL_CHECKOUT_TTL_SECONDS),
            )
            if product is not None:
                CheckoutLine.objects.create(checkout=checkout, product=product, name=product.name, unit_amount=amount)
            payment = Payment.objects.create(
                store=store, checkout=checkout, rail=saved.rail, payment_method=saved.method_ref,
                amount=amount, currency=currency, livemode=rail_livemode(saved.rail),
            )
            OffSessionCharge.objects.create(
                store=store, idempotency_key=idempotency_key, saved=saved, payment=payment,
                amount=amount, currency=currency, description=description,
            )
            if before_start is not None:
                before_start(payment)
    except IntegrityError:
        # Another call with the same key won the race; its payment is the answer.
        return replay(OffSessionCharge.objects.select_related("payment").get(store=store, idempotency_key=idempotency_key))

    # Outside any transaction (the rail may take seconds). A network failure raises
    # PaymentProcessorUnavailable and leaves the payment processing for the reconciliation task.
    result = rail.payment_start_off_session(payment_id=payment.pk, amount=amount, currency=currency, saved=saved)
    return payment_apply_result(payment_id=payment.pk, result=result)
