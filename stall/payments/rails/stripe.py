"""The Stripe card rail: PaymentIntents, Refunds, SetupIntents, through the official library.

Every call resolves the Stripe account from the payment's store (its own keys, else the
platform's), so one process serves stores with different accounts; the client for each account
is built per call from its keys and base address, never from the library's global settings.

No Stripe exception leaves this module: a decline or a refused request becomes a failed
RailResult, and a network failure or a Stripe server error becomes PaymentProcessorUnavailable
(503), leaving whatever was under way for the reconciliation task. Every call that creates
something carries an idempotency key derived from our own id, so a retry — the library's own, the
reconciliation task's, or a second click — cannot create a second charge or refund.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.utils.translation import gettext_noop

from stall.core.lazy import LazyModule
from stall.payments.errors import (
    PaymentMethodNeedsAction,
    PaymentProcessorUnavailable,
    StripeNotConfigured,
)
from stall.payments.models import OffSessionCharge, Payment, SavedPaymentMethod
from stall.payments.selectors import StripeConfig, stripe_config_for_store, stripe_platform_config

from .base import RailResult, SetupResult, card_fee, card_minimum_charge

logger = logging.getLogger(__name__)
# Imported by the first Stripe call: most processes never make one (see core.lazy).
stripe = LazyModule("stripe")


@functools.lru_cache(maxsize=1)
def _http_client() -> stripe.HTTPClient:
    # One client (thread-local sessions inside) with a timeout shorter than the library's 80 s:
    # a buyer is waiting on the other side of most of these calls.
    return stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)


@functools.lru_cache(maxsize=64)
def _client_for(secret_key: str, api_base: str, max_network_retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=_http_client(),
    )


def stripe_client(config: StripeConfig) -> stripe.StripeClient:
    return _client_for(config.secret_key, config.api_base, settings.STRIPE_MAX_NETWORK_RETRIES)


def _error_body(exc: stripe.StripeError) -> dict:
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def _unavailable(exc: stripe.StripeError, what: str) -> PaymentProcessorUnavailable:
    logger.warning("stripe unavailable during %s: %s: %s", what, type(exc).__name__, exc)
    return PaymentProcessorUnavailable()


def _failed_from_error(exc: stripe.StripeError, what: str) -> RailResult:
    """A request Stripe answered and refused: a decline, an unknown payment method, bad keys."""
    error = _error_body(exc)
    intent = error.get("payment_intent") if isinstance(error.get("payment_intent"), dict) else {}
    if isinstance(exc, stripe.CardError):
        code = error.get("decline_code") or exc.code or "card_declined"
        message = error.get("message") or "Your card was declined."
    elif isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        logger.error("stripe refused the store's keys during %s: %s", what, exc)
        code, message = "payment_processor_misconfigured", "This store's card payments are not set up correctly."
    else:
        logger.warning("stripe refused %s: %s", what, exc)
        code = exc.code or "payment_failed"
        message = error.get("message") or "The card processor refused this payment."
        if exc.http_status == 404 and not exc.code:
            code, message = "invalid_payment_method", "This payment method is not known to the card processor."
    return RailResult("failed", reference=intent.get("id", ""), failure_code=code, failure_message=message)


def stripe_call(what: str, function, *args, **kwargs):
    """Call Stripe; network trouble and Stripe's own errors (5xx, 429) raise 503, others pass."""
    try:
        return function(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        # APIError includes Stripe's 409 for a key another request is still working on.
        raise _unavailable(exc, what) from None
    except stripe.IdempotencyError as exc:
        # The same key with other parameters: a bug of ours. Nothing was done twice; what was
        # under way stays open for a person (and the reconciliation task) to look at.
        logger.error("stripe idempotency conflict during %s: %s", what, exc)
        raise PaymentProcessorUnavailable() from None


def _intent_fee(intent: dict) -> int:
    # Stripe's real fee is on the charge's balance transaction, which costs another request and
    # which localstripe reports as 0; the books use the published card price (2.9% + fixed) until
    # payouts reconcile it. See rails.card_fee.
    return card_fee(int(intent["amount"]), str(intent["currency"]).upper())


def _ref(value) -> str:
    """An id from a field Stripe sends as the id or, expanded, as the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def result_from_intent(intent: dict, *, off_session: bool = False) -> RailResult:
    """Map a PaymentIntent (a plain dict) to what the services understand."""
    status = intent.get("status")
    reference = intent.get("id", "")
    error = intent.get("last_payment_error") or {}
    if status == "succeeded":
        method_ref, customer_ref = "", ""
        if (intent.get("metadata") or {}).get("stall_save_card"):
            method_ref, customer_ref = _ref(intent.get("payment_method")), _ref(intent.get("customer"))
        return RailResult("succeeded", reference=reference, fee=_intent_fee(intent), method_ref=method_ref, customer_ref=customer_ref)
    if status == "requires_action":
        if off_session:
            return RailResult(
                "failed", reference, failure_code="authentication_required",
                failure_message="The card's bank asks the cardholder to confirm this payment.",
            )
        return RailResult("requires_action", reference=reference, client_secret=intent.get("client_secret") or "")
    if status in ("requires_payment_method", "requires_confirmation") and error:
        return RailResult(
            "failed", reference,
            failure_code=error.get("decline_code") or error.get("code") or "payment_failed",
            failure_message=error.get("message") or "The payment did not go through.",
        )
    if status in ("requires_payment_method", "requires_confirmation"):
        # Nothing tried yet: the buyer still has to enter a card on the Stripe page.
        return RailResult("requires_action", reference=reference, client_secret=intent.get("client_secret") or "")
    if status == "canceled":
        return RailResult("failed", reference, failure_code="canceled", failure_message="The payment was canceled.")
    # "processing" (the bank has not answered yet) and "requires_capture" (we never ask for manual
    # capture) both mean: no money decision yet.
    return RailResult("processing", reference=reference)


def result_from_refund(refund: dict) -> RailResult:
    status = refund.get("status")
    if status == "succeeded":
        return RailResult("succeeded", reference=refund.get("id", ""))
    if status in ("failed", "canceled"):
        return RailResult(
            "failed", refund.get("id", ""), failure_code=refund.get("failure_reason") or "refund_failed",
            failure_message="The card processor could not carry out the refund.",
        )
    return RailResult("processing", reference=refund.get("id", ""))  # pending, requires_action


def _off_session_charge(payment):
    return OffSessionCharge.objects.select_related("saved").filter(payment_id=payment.pk).first()


def _saved_for_payment(payment):
    """The saved card a payment was charged with while the buyer was away, or None.

    A store's off-session charge records it in OffSessionCharge; a wallet's automatic top-up or an
    overdue tab's settlement charges the buyer's saved card, whose reference is the payment method.
    """
    charge = _off_session_charge(payment)
    if charge is not None:
        return charge.saved
    if payment.purpose == "checkout" or payment.buyer_id is None or not payment.payment_method.startswith("pm_"):
        return None
    return SavedPaymentMethod.objects.filter(
        rail="stripe", method_ref=payment.payment_method, email__iexact=payment.buyer.email
    ).exclude(customer_ref="").order_by("-pk").first()


class StripeRail:
    """Card payments through Stripe PaymentIntents."""

    name = "stripe"
    in_ledger = False

    # --- which account -----------------------------------------------------------------------
    @staticmethod
    def _payment(payment_id: str):
        return Payment.objects.select_related("store").get(pk=payment_id)

    def _config(self, store) -> StripeConfig:
        config = stripe_config_for_store(store)
        if config is None:
            raise StripeNotConfigured()
        return config

    # --- the Rail protocol -------------------------------------------------------------------
    def payment_methods(self) -> list[tuple[str, str]]:
        return []  # the buyer enters a card in Stripe's Payment Element, or the API sends pm_…

    def minimum_charge(self, currency: str) -> int:
        return card_minimum_charge(currency)

    def _intent_params(self, payment, payment_method: str) -> dict:
        params = {
            "amount": payment.amount,
            "currency": payment.currency.lower(),
            # Cards only: the digital goods sold here are delivered at once, which asynchronous
            # methods (bank debits) would delay by days.
            "payment_method_types": ["card"],
            "metadata": {"stall_payment": payment.pk, "stall_checkout": payment.checkout_id, "stall_store": payment.store_id},
        }
        if payment_method.startswith("pm_"):
            # Confirmed on the server: the API client collected the card itself.
            params |= {"payment_method": payment_method, "confirm": True}
        checkout = payment.checkout
        if checkout is not None and checkout.save_card:
            # The card is kept for charges without the buyer (a membership's renewals): the intent
            # is made for a Customer and set up for off-session use, Stripe's way of attaching the
            # card to the Customer once the payment succeeds. (localstripe ignores the card's
            # setup_future_usage and refuses the top-level one, so the card is also attached
            # explicitly afterwards, where it is not attached already: payment_method_attach.)
            params |= {
                "customer": self._customer_for(payment, checkout.email),
                "payment_method_options": {"card": {"setup_future_usage": "off_session"}},
            }
            params["metadata"]["stall_save_card"] = "1"
        return params

    def _customer_for(self, payment, email: str) -> str:
        """The Stripe Customer of ``email`` on the payment's account: the one already holding their
        saved cards, or a new one (made once per checkout: the key is the checkout's)."""
        config = self._config(payment.store)
        known = SavedPaymentMethod.objects.filter(
            email=email, rail="stripe", store_id=config.store_id, detached_at__isnull=True,
        ).exclude(customer_ref="").order_by("-pk").first()
        if known is not None:
            return known.customer_ref
        customer = stripe_call(
            "customer_create", stripe_client(config).v1.customers.create,
            params={"email": email, "metadata": {"stall_email": email}},
            options={"idempotency_key": f"stall-{payment.checkout_id}-customer"},
        )
        return customer.id

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        payment = self._payment(payment_id)
        client = stripe_client(self._config(payment.store))
        params = self._intent_params(payment, payment_method)
        try:
            intent = stripe_call(
                "payment_start", client.v1.payment_intents.create,
                params=params, options={"idempotency_key": f"stall-{payment_id}-start"},
            )
        except stripe.StripeError as exc:
            return _failed_from_error(exc, "payment_start")
        return result_from_intent(intent.to_dict())

    def payment_retrieve(self, *, payment_id: str) -> RailResult:
        """Ask Stripe where a payment stands. With no intent on record (the create call never
        answered), the create is sent again under the same idempotency key: Stripe answers with
        the intent the first call made, or makes it now if the first never arrived."""
        payment = self._payment(payment_id)
        saved = _saved_for_payment(payment)
        if not payment.rail_reference:
            if saved is not None:
                return self.payment_start_off_session(
                    payment_id=payment.pk, amount=payment.amount, currency=payment.currency, saved=saved
                )
            return self.payment_start(
                payment_id=payment.pk, amount=payment.amount, currency=payment.currency,
                payment_method=payment.payment_method,
            )
        client = stripe_client(self._config(payment.store))
        try:
            intent = stripe_call("payment_retrieve", client.v1.payment_intents.retrieve, payment.rail_reference)
        except stripe.StripeError as exc:
            return _failed_from_error(exc, "payment_retrieve")
        return result_from_intent(intent.to_dict(), off_session=saved is not None)

    def payment_cancel(self, *, payment_id: str) -> RailResult:
        """Give up a payment the buyer has not confirmed (they chose the wallet instead). Stripe may
        answer that it already succeeded: the card payment then stands and is reported as such."""
        payment = self._payment(payment_id)
        if not payment.rail_reference:
            return RailResult("failed", failure_code="canceled", failure_message="The payment was canceled.")
        client = stripe_client(self._config(payment.store))
        try:
            intent = stripe_call("payment_cancel", client.v1.payment_intents.cancel, payment.rail_reference)
        except stripe.InvalidRequestError:
            # Not cancelable any more (it succeeded, or is processing): say where it stands.
            return self.payment_retrieve(payment_id=payment_id)
        return result_from_intent(intent.to_dict())

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        """The buyer is back from their bank's check. Only Stripe knows how it went, so ask it;
        a buyer who cancelled on our side has the intent cancelled at Stripe too."""
        if approve:
            return self.payment_retrieve(payment_id=payment_id)
        payment = self._payment(payment_id)
        client = stripe_client(self._config(payment.store))
        try:
            stripe_call("payment_cancel", client.v1.payment_intents.cancel, reference)
        except stripe.StripeError as exc:
            logger.warning("stripe refused to cancel %s: %s", reference, exc)
        return RailResult(
            "failed", reference, failure_code="authentication_failed",
            failure_message="The card's 3-D Secure check was not completed.",
        )

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str, refund_id: str = "") -> RailResult:
        payment = self._payment(payment_id)
        client = stripe_client(self._config(payment.store))
        params = {"payment_intent": reference, "amount": amount, "metadata": {"stall_refund": refund_id, "stall_payment": payment_id}}
        try:
            refund = stripe_call(
                "refund", client.v1.refunds.create,
                params=params, options={"idempotency_key": f"stall-{refund_id or payment_id}-refund"},
            )
        except stripe.StripeError as exc:
            result = _failed_from_error(exc, "refund")
            return RailResult("failed", failure_code=result.failure_code or "refund_failed", failure_message=result.failure_message)
        return result_from_refund(refund.to_dict())

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        return []  # Stripe's webhooks need the account's secret: see stripe_services.stripe_webhook_receive

    # --- saved payment methods ----------------------------------------------------------------
    def _setup_config(self, store) -> StripeConfig:
        config = stripe_config_for_store(store) if store is not None else stripe_platform_config()
        if config is None:
            raise StripeNotConfigured(param="rail")
        return config

    def payment_method_setup(self, *, email: str, payment_method: str, store=None, customer_ref: str = "") -> SetupResult:
        """Attach a card to a Stripe Customer with a SetupIntent so it can be charged off-session.

        ``payment_method`` is a ``pm_…`` to start, ``"stripe"`` for a card the buyer is yet to type
        into Stripe's form on the page (PaymentMethodNeedsAction with the new SetupIntent's client
        secret, at once), or the ``seti_…`` of a setup the buyer finished on the page (typed, and
        passed their bank's check).
        """
        client = stripe_client(self._setup_config(store))
        try:
            if payment_method.startswith("seti_"):
                setup = stripe_call("setup_retrieve", client.v1.setup_intents.retrieve, payment_method).to_dict()
                if (setup.get("metadata") or {}).get("stall_email") != email:
                    # Someone else's setup (an id is no secret): their card is not this buyer's.
                    return SetupResult("failed", failure_code="invalid_payment_method",
                                       failure_message=gettext_noop("This card setup is not known here."))
            else:
                if not customer_ref:
                    customer = stripe_call(
                        "customer_create", client.v1.customers.create,
                        params={"email": email, "metadata": {"stall_email": email}},
                    )
                    customer_ref = customer.id
                setup = stripe_call(
                    "setup_create", client.v1.setup_intents.create,
                    params={"customer": customer_ref, "usage": "off_session", "payment_method_types": ["card"],
                            "metadata": {"stall_email": email}},
                ).to_dict()
                if payment_method == "stripe":
                    raise PaymentMethodNeedsAction(reference=setup["id"], client_secret=setup.get("client_secret") or "",
                                                   card_form=True)
                setup = stripe_call(
                    "setup_confirm", client.v1.setup_intents.confirm, setup["id"], params={"payment_method": payment_method},
                ).to_dict()
        except stripe.StripeError as exc:
            result = _failed_from_error(exc, "payment_method_setup")
            return SetupResult("failed", failure_code=result.failure_code, failure_message=result.failure_message)
        customer_ref = setup.get("customer") or customer_ref
        method_ref = setup.get("payment_method") or ""
        if isinstance(method_ref, dict):
            method_ref = method_ref.get("id", "")
        status = setup.get("status")
        if status in ("requires_action", "requires_payment_method", "requires_confirmation") and not (
            status == "requires_payment_method" and setup.get("last_setup_error")
        ):
            # Not finished on the page yet: no card typed (the form again) or the bank's check to pass.
            raise PaymentMethodNeedsAction(reference=setup["id"], client_secret=setup.get("client_secret") or "",
                                           card_form=status != "requires_action")
        if status != "succeeded":
            error = setup.get("last_setup_error") or {}
            return SetupResult(
                "failed", failure_code=error.get("code") or "setup_failed",
                failure_message=error.get("message") or "The card could not be saved.",
            )
        return SetupResult(
            "succeeded", method_ref=method_ref, customer_ref=customer_ref or "", reference=setup["id"],
            label=self._label(client, method_ref),
        )

    def payment_method_setup_start(self, *, email: str, store=None, customer_ref: str = "") -> SetupResult:
        """A SetupIntent for the buyer to enter a card in Stripe's Payment Element (setup mode);
        once confirmed, ``payment_method_setup`` with its ``seti_…`` keeps the card. Its metadata
        names the buyer's email, which that check asks for."""
        client = stripe_client(self._setup_config(store))
        try:
            if not customer_ref:
                customer_ref = stripe_call(
                    "customer_create", client.v1.customers.create, params={"email": email, "metadata": {"stall_email": email}},
                ).id
            setup = stripe_call(
                "setup_create", client.v1.setup_intents.create,
                params={"customer": customer_ref, "usage": "off_session", "payment_method_types": ["card"],
                        "metadata": {"stall_email": email}},
            ).to_dict()
        except stripe.StripeError as exc:
            result = _failed_from_error(exc, "payment_method_setup_start")
            return SetupResult("failed", failure_code=result.failure_code, failure_message=result.failure_message)
        return SetupResult("requires_action", customer_ref=customer_ref, reference=setup["id"],
                           client_secret=setup.get("client_secret") or "")

    def payment_method_attach(self, *, saved) -> str:
        """Make sure a card kept from a payment (Checkout.save_card) is attached to its Customer,
        so it can be charged off-session; returns its label ("Visa •••• 4242"). Stripe attached
        it already when the payment succeeded (setup_future_usage); localstripe did not."""
        client = stripe_client(self._setup_config(saved.store))
        method = stripe_call("payment_method_retrieve", client.v1.payment_methods.retrieve, saved.method_ref).to_dict()
        if _ref(method.get("customer")) != saved.customer_ref:
            stripe_call(
                "payment_method_attach", client.v1.payment_methods.attach, saved.method_ref,
                params={"customer": saved.customer_ref},
            )
        card = method.get("card") or {}
        brand = str(card.get("brand") or "card").replace("_", " ").title()
        return f"{brand} •••• {card.get('last4', '')}".strip()

    @staticmethod
    def _label(client: stripe.StripeClient, method_ref: str) -> str:
        try:
            card = stripe_call("payment_method_retrieve", client.v1.payment_methods.retrieve, method_ref).to_dict().get("card") or {}
        except (stripe.StripeError, PaymentProcessorUnavailable):
            return "Card"
        brand = str(card.get("brand") or "card").replace("_", " ").title()
        return f"{brand} •••• {card.get('last4', '')}".strip()

    def payment_start_off_session(self, *, payment_id: str, amount: int, currency: str, saved) -> RailResult:
        payment = self._payment(payment_id)
        client = stripe_client(self._config(payment.store))
        charge = _off_session_charge(payment)
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": saved.customer_ref,
            "payment_method": saved.method_ref,
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "metadata": {
                "stall_payment": payment_id, "stall_checkout": payment.checkout_id, "stall_store": payment.store_id,
                "stall_description": charge.description if charge is not None else "",
            },
        }
        try:
            intent = stripe_call(
                "payment_start_off_session", client.v1.payment_intents.create,
                params=params, options={"idempotency_key": f"stall-{payment_id}-off-session"},
            )
        except stripe.StripeError as exc:
            # Stripe answers an off-session charge that needs the cardholder with a card error
            # "authentication_required"; localstripe instead returns the intent in requires_action.
            return _failed_from_error(exc, "payment_start_off_session")
        return result_from_intent(intent.to_dict(), off_session=True)

