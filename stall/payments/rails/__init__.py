"""Payment rails: the ways money reaches a store, behind one interface (``base.Rail``).

Every rail Stall has is listed in ``RAILS`` below — this is the only registry:

- ``sandbox``: the built-in test cards (sandbox.py), a card processor's test mode;
- ``stripe``: cards through Stripe PaymentIntents (stripe.py);
- ``wallet``: the buyer's prepaid wallet, spent inside the ledger (wallet.py);
- ``tab``: buy now, settle later with one card charge, inside the ledger (tab.py).

Checkout code talks only to this interface and picks a rail by name or by payment method, so a new
rail is a new module and an entry here, not a special case elsewhere.
"""

from __future__ import annotations

from django.conf import settings

from stall.payments.errors import StripeNotConfigured
from stall.payments.selectors import stripe_config_for_store

from .base import (
    Rail,
    RailResult,
    SetupResult,
    UnknownPaymentMethod,
    UnknownRail,
    card_fee,
    card_minimum_charge,
)
from .sandbox import SandboxRail
from .stripe import StripeRail
from .tab import TabRail
from .wallet import WalletRail

__all__ = [
    "RAILS", "Rail", "RailResult", "SetupResult", "UnknownPaymentMethod", "UnknownRail", "card_fee",
    "card_minimum_charge", "rail_for", "rail_for_payment_method", "rail_get", "sandbox_check", "SandboxRail",
]

RAILS: dict[str, Rail] = {
    "sandbox": SandboxRail(),
    "stripe": StripeRail(),
    "wallet": WalletRail(),
    "tab": TabRail(),
}


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
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    if payment_method.startswith(("pm_", "stripe")):
        if stripe_config_for_store(store) is None:
            raise StripeNotConfigured(param="payment_method")
        return rail_get("stripe")
    if payment_method.startswith("sandbox_"):
        sandbox_check("sandbox")
    return rail_for_payment_method(payment_method)


def sandbox_check(rail: str) -> None:
    """Refuse the sandbox's test cards when the operator turned them off."""
    if rail == "sandbox" and not settings.STALL_SANDBOX_ENABLED:
        raise UnknownPaymentMethod("Test cards are turned off on this Stall.", param="payment_method", code="sandbox_disabled")


def rail_for_payment_method(payment_method: object) -> Rail:
    """Pick the rail that owns a payment method code (``sandbox_visa`` → the sandbox rail)."""
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    for rail in RAILS.values():
        if any(code == payment_method for code, _ in rail.payment_methods()):
            return rail
    raise UnknownPaymentMethod(f"Unknown payment method “{payment_method}”.", param="payment_method")
