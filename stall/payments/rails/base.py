"""The rail interface, what rails report, and what card processors charge.

Rails are called outside database transactions (a card network can take seconds); the services
reserve state before the call and finalize it after, each in its own short transaction. The
in-ledger rails (wallet, tab) are the exception: they move money inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar, Protocol

from stall.core.errors import InvalidRequest
from stall.core.money import money_setting_major, money_to_minor


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
    # A payment asked to keep its card (Checkout.save_card) that succeeded: the card and the
    # customer holding it on the rail, for a SavedPaymentMethod.
    method_ref: str = ""
    customer_ref: str = ""


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

    def payment_retrieve(self, *, payment_id: str) -> RailResult:
        """Say where a payment stands, without charging it a second time. This is how a payment
        left ``processing`` is finished — by a crash between reserving it and hearing the rail's
        answer, or by a processor that did not answer: the reconciliation task and the buyer's
        next confirm ask, and record the answer with ``payment_apply_result``. The in-ledger rails
        never leave a payment processing (it is made and paid in one transaction) and raise."""

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


def _scaled(table: dict[str, int], currency: str, dollars: str) -> int:
    """The processor's figure for ``currency``, or else ``dollars`` worth of it, as a round figure
    (``stall.core.money.money_setting_major``): a 50¢ minimum is ₹50, not ₹0.50."""
    if currency in table:
        return table[currency]
    return money_to_minor(money_setting_major(dollars, currency), currency)


def card_fee(amount: int, currency: str) -> int:
    """A card processor's fee: 2.9% of the amount, rounded half up, plus a fixed fee."""
    percent = (Decimal(amount) * Decimal("0.029")).to_integral_value(ROUND_HALF_UP)
    return int(percent) + _scaled(_FIXED_FEE, currency, "0.30")


def card_minimum_charge(currency: str) -> int:
    return _scaled(_MINIMUM, currency, "0.50")
