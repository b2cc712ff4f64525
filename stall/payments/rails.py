"""The payment rails interface.

A rail is a way money reaches a store: the built-in sandbox card rail now; Stripe, the wallet and
the tab later. Checkout code talks only to this interface and picks a rail by name, so a new rail
is a new class here and an entry in ``RAILS``, not a special case elsewhere.

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


class Rail(Protocol):
    name: ClassVar[str]

    def payment_methods(self) -> list[tuple[str, str]]:
        """The methods a buyer can choose on the hosted page: (code, label)."""

    def minimum_charge(self, currency: str) -> int:
        """The smallest amount this rail will charge in ``currency``, in minor units."""

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        """Ask the rail to charge ``amount``; it may succeed, fail, or need the buyer's action."""

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        """Finish a payment that needed the buyer's action (3-D Secure and the like)."""

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str) -> RailResult:
        """Return ``amount`` of a succeeded payment to the buyer."""

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

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str) -> RailResult:
        return RailResult("succeeded", reference=f"sbxre_{payment_id.partition('_')[2]}")

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        return []  # the sandbox answers synchronously; it sends no notifications


RAILS: dict[str, Rail] = {"sandbox": SandboxRail()}


def rail_get(name: str) -> Rail:
    try:
        return RAILS[name]
    except KeyError:
        raise UnknownRail(f"Unknown payment rail “{name}”.", param="rail") from None


def rail_for_payment_method(payment_method: object) -> Rail:
    """Pick the rail that owns a payment method code (``sandbox_visa`` → the sandbox rail)."""
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    for rail in RAILS.values():
        if any(code == payment_method for code, _ in rail.payment_methods()):
            return rail
    raise UnknownPaymentMethod(f"Unknown payment method “{payment_method}”.", param="payment_method")
