"""The payment rails interface.

A rail is a way money reaches a store: the built-in sandbox card rail, Stripe (stripe_rail.py,
which registers itself in ``RAILS``); the wallet and the tab later. Checkout code talks only to
this interface and picks a rail by name, so a new rail is a new class and an entry in ``RAILS``,
not a special case elsewhere.

Rails are called outside database transactions (a card network can take seconds); the services
reserve state before the call and finalize it after, each in its own short transaction.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar, Protocol

from stall.core.errors import InvalidRequest
from stall.core.money import currency_exponent


@dataclasses.dataclass(frozen=True)
class RailResult:
    """What a rail says about a payment or a refund after a call."""

    status: str  # "succeeded", "failed", "requires_action" or "processing"
    reference: str = ""
    fee: int = 0
    failure_code: str = ""
    failure_message: str = ""
    # For a rail whose buyer acts in the browser (Stripe.js): the secret that page needs.
    client_secret: str = ""


@dataclasses.dataclass(frozen=True)
class SetupResult:
    """What a rail says after being asked to keep a payment method for later charges."""

    status: str  # "succeeded", "failed" or "requires_action"
    method_ref: str = ""
    customer_ref: str = ""
    label: str = ""
    reference: str = ""  # the setup on the rail (a Stripe SetupIntent), when it needs the buyer
    client_secret: str = ""
    failure_code: str = ""
    failure_message: str = ""


class Rail(Protocol):
    """A way money reaches a store.

    Card rails (sandbox, Stripe) are called outside any transaction and report back. Rails whose
    money is already in the ledger (the wallet and the tab) set ``in_ledger = True`` and implement
    ``ledger_charge``/``ledger_refund``, which move the money inside the caller's transaction, so a
    one-click spend is one short transaction and a refused spend leaves nothing behind. A rail
    may name the account its fees go to with ``fee_account``; card rails use their processor
    fees account.
    """

    name: ClassVar[str]
    in_ledger: ClassVar[bool] = False

    def payment_methods(self) -> list[tuple[str, str]]:
        """The methods a buyer can choose on the hosted page: (code, label)."""

    def minimum_charge(self, currency: str) -> int:
        """The smallest amount this rail will charge in ``currency``, in minor units."""

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        """Ask the rail to charge ``amount``; it may succeed, fail, or need the buyer's action."""

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        """Finish a payment that needed the buyer's action (3-D Secure and the like)."""

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str, refund_id: str = "") -> RailResult:
        """Return ``amount`` of a succeeded payment to the buyer. ``processing``: the rail took the
        refund but has not carried it out yet; it stays pending until the rail says."""

    def payment_method_setup(self, *, email: str, payment_method: str, store=None, customer_ref: str = "") -> SetupResult:
        """Keep ``payment_method`` to charge ``email`` later without them present."""

    def payment_start_off_session(self, *, payment_id: str, amount: int, currency: str, saved) -> RailResult:
        """Charge a saved payment method with the buyer away: a rail that would need the buyer's
        action fails with ``authentication_required`` instead."""

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        """Parse an inbound notification into (payment id, result) pairs."""


class UnknownRail(InvalidRequest):
    code = "unknown_rail"


class UnknownPaymentMethod(InvalidRequest):
    code = "invalid_payment_method"


# Card processors' fixed fee per charge and minimum charge, in minor units of each currency
# (Stripe's published figures for its common currencies); other currencies use ~0.30 / ~0.50 of
# the major unit, scaled by the exponent.
_FIXED_FEE = {"USD": 30, "EUR": 25, "GBP": 20, "CAD": 30, "AUD": 30, "BRL": 39, "JPY": 40, "KRW": 400, "KWD": 100}
_MINIMUM = {"USD": 50, "EUR": 50, "GBP": 30, "CAD": 50, "AUD": 50, "BRL": 50, "JPY": 50, "KRW": 700, "KWD": 200}


def _scaled(table: dict[str, int], currency: str, major_fraction: str) -> int:
    if currency in table:
        return table[currency]
    value = Decimal(major_fraction).scaleb(currency_exponent(currency))
    return max(1, int(value.to_integral_value(ROUND_HALF_UP)))


def card_fee(amount: int, currency: str) -> int:
    """A card processor's fee: 2.9% of the amount, rounded half up, plus a fixed fee."""
    percent = (Decimal(amount) * Decimal("0.029")).to_integral_value(ROUND_HALF_UP)
    return int(percent) + _scaled(_FIXED_FEE, currency, "0.30")


def card_minimum_charge(currency: str) -> int:
    return _scaled(_MINIMUM, currency, "0.50")


class SandboxRail:
    """A card processor's test mode, built in: no network, deterministic test cards.

    ``sandbox_visa`` succeeds, ``sandbox_declined`` and ``sandbox_insufficient_funds`` fail,
    ``sandbox_3ds`` needs the buyer to approve on the hosted page. Fees are simulated at
    2.9% + 30¢ so the books show what a real card would have cost.
    """

    name = "sandbox"
    METHODS = {
        "sandbox_visa": "Visa •••• 4242 (succeeds)",
        "sandbox_3ds": "Visa •••• 3155 (asks for 3-D Secure)",
        "sandbox_declined": "Visa •••• 0002 (declined)",
        "sandbox_insufficient_funds": "Visa •••• 9995 (insufficient funds)",
    }

    def payment_methods(self) -> list[tuple[str, str]]:
        return list(self.METHODS.items())

    def minimum_charge(self, currency: str) -> int:
        return card_minimum_charge(currency)

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        reference = f"sbx_{payment_id.partition('_')[2]}"
        if payment_method == "sandbox_visa":
            return RailResult("succeeded", reference=reference, fee=card_fee(amount, currency))
        if payment_method == "sandbox_3ds":
            return RailResult("requires_action", reference=reference)
        if payment_method == "sandbox_declined":
            return RailResult("failed", reference, failure_code="card_declined", failure_message="Your card was declined.")
        if payment_method == "sandbox_insufficient_funds":
            return RailResult(
                "failed", reference, failure_code="insufficient_funds", failure_message="Your card has insufficient funds."
            )
        raise UnknownPaymentMethod(
            f"Unknown payment method “{payment_method}”. Use one of: {', '.join(self.METHODS)}.",
            param="payment_method",
        )

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        if approve:
            from .models import Payment

            payment = Payment.objects.only("amount", "currency").get(pk=payment_id)
            return RailResult("succeeded", reference=reference, fee=card_fee(payment.amount, payment.currency))
        return RailResult(
            "failed", reference, failure_code="authentication_failed",
            failure_message="The card's 3-D Secure check was not completed.",
        )

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str, refund_id: str = "") -> RailResult:
        return RailResult("succeeded", reference=f"sbxre_{payment_id.partition('_')[2]}")

    def payment_cancel(self, *, payment_id: str) -> RailResult:
        return RailResult("failed", failure_code="canceled", failure_message="The payment was canceled.")

    def payment_method_setup(self, *, email: str, payment_method: str, store=None, customer_ref: str = "") -> SetupResult:
        """A sandbox test card is saved as its code; any of them can be saved."""
        if payment_method not in self.METHODS:
            raise UnknownPaymentMethod(
                f"Unknown payment method “{payment_method}”. Use one of: {', '.join(self.METHODS)}.",
                param="payment_method",
            )
        label = self.METHODS[payment_method].partition(" (")[0]
        return SetupResult("succeeded", method_ref=payment_method, label=label)

    def payment_start_off_session(self, *, payment_id: str, amount: int, currency: str, saved) -> RailResult:
        if saved.method_ref == "sandbox_3ds":
            return RailResult(
                "failed", f"sbx_{payment_id.partition('_')[2]}", failure_code="authentication_required",
                failure_message="The card's bank asks the cardholder to confirm this payment.",
            )
        return self.payment_start(payment_id=payment_id, amount=amount, currency=currency, payment_method=saved.method_ref)

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        return []  # the sandbox answers synchronously; it sends no notifications


RAILS: dict[str, Rail] = {"sandbox": SandboxRail()}


def rail_get(name: str) -> Rail:
    try:
        return RAILS[name]
    except KeyError:
        raise UnknownRail(f"Unknown payment rail “{name}”.", param="rail") from None


def rail_for(*, store, payment_method: object) -> Rail:
    """Pick the rail for a payment method at ``store``.

    ``pm_…`` (a Stripe PaymentMethod) and ``stripe`` (the buyer pays on the Stripe page) go to
    Stripe when the store has Stripe keys, its own or the platform's; ``sandbox_…`` goes to the
    sandbox unless the operator turned it off (STALL_SANDBOX_ENABLED=0).
    """
    from django.conf import settings

    from .errors import StripeNotConfigured
    from .selectors import stripe_config_for_store

    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    if payment_method.startswith(("pm_", "stripe")):
        if stripe_config_for_store(store) is None:
            raise StripeNotConfigured(param="payment_method")
        return rail_get("stripe")
    if payment_method.startswith("sandbox_") and not settings.STALL_SANDBOX_ENABLED:
        raise UnknownPaymentMethod(
            "Test cards are turned off on this Stall.", param="payment_method", code="sandbox_disabled"
        )
    return rail_for_payment_method(payment_method)


def rail_for_payment_method(payment_method: object) -> Rail:
    """Pick the rail that owns a payment method code (``sandbox_visa`` → the sandbox rail)."""
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    for rail in RAILS.values():
        if any(code == payment_method for code, _ in rail.payment_methods()):
            return rail
    raise UnknownPaymentMethod(f"Unknown payment method “{payment_method}”.", param="payment_method")
