"""Payment rails: the ways money reaches a store, behind one interface (``base.Rail``).

Every rail Stall has is listed in ``RAILS`` below — this is the only registry:

- ``sandbox``: the built-in test cards (sandbox.py), a card processor's test mode;
- ``stripe``: cards through Stripe PaymentIntents (stripe.py);
- ``lightning``: Lightning invoices from the store's own LNbits wallet (lightning.py);
- ``wallet``: the buyer's prepaid wallet, spent inside the ledger (wallet.py);
- ``tab``: buy now, settle later with one card charge, inside the ledger (tab.py).

Checkout code talks only to this interface and picks a rail by name or by payment method, so a new
rail is a new module and an entry here, not a special case elsewhere.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Case, When

from stall.payments.errors import LightningNotConfigured, StripeNotConfigured, TestMoneyRefused
from stall.payments.models import StripeAccount
from stall.payments.selectors import (
    lightning_config_for_store,
    stripe_config_for_store,
    stripe_platform_config,
)

from .base import (
    Rail,
    RailResult,
    SetupResult,
    UnknownPaymentMethod,
    UnknownRail,
    card_fee,
    card_minimum_charge,
)
from .lightning import LightningRail
from .sandbox import SandboxRail
from .stripe import StripeRail
from .tab import TabRail
from .wallet import WalletRail

__all__ = [
    "RAILS", "Rail", "RailResult", "SetupResult", "UnknownPaymentMethod", "UnknownRail", "card_fee",
    "card_minimum_charge", "rail_for", "rail_for_payment_method", "rail_get", "rail_livemode",
    "real_setup", "sandbox_admit", "sandbox_check", "sandbox_enabled", "sandbox_test_mode", "SandboxRail",
    "test_money_check",
]

RAILS: dict[str, Rail] = {
    "sandbox": SandboxRail(),
    "stripe": StripeRail(),
    "lightning": LightningRail(),
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
    Stripe when the store has Stripe keys, its own or the platform's; ``lightning`` to Lightning
    when the store has an LNbits wallet; ``sandbox_…`` goes to the sandbox where it is on for the
    store (``sandbox_enabled``).
    """
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    if payment_method.startswith(("pm_", "stripe")):
        if stripe_config_for_store(store) is None:
            raise StripeNotConfigured(param="payment_method")
        return rail_get("stripe")
    if payment_method == "lightning":
        if lightning_config_for_store(store) is None:
            raise LightningNotConfigured(param="payment_method")
        return rail_get("lightning")
    if payment_method.startswith("sandbox_"):
        sandbox_admit(store_id=store.pk if store is not None else None)
    return rail_for_payment_method(payment_method)


# --- The sandbox is a test mode -------------------------------------------------------------
#
# Like a card processor's test mode, the sandbox's test cards must never buy real goods. Left to
# Stall (STALL_SANDBOX_ENABLED unset) they are offered only where nothing real is set up: no Stripe
# keys for the store (its own or the platform's) and a base URL that is not https — the demo, a
# developer's machine. There a sandbox payment is the store's only card money and counts like any.
# Wherever the Stall is real (https, Stripe keys for the platform or any store), a sandbox payment
# is a test payment: its Payment and Order have livemode false, its money moves through test
# accounts (``stall.ledger.models.ledger_owner``), and wallet credit it buys is test money.


def _real_here() -> bool:
    """An https base URL or the platform's Stripe keys: real money can be taken (no query)."""
    return settings.BASE_URL.startswith("https://") or stripe_platform_config() is not None


def _stripe_keys(store_id: str | None) -> tuple[bool, bool]:
    """(``store_id`` has its own Stripe keys, any store has): one query, the store's row first."""
    first = (
        StripeAccount.objects.order_by(Case(When(store_id=store_id, then=0), default=1))
        .values_list("store_id", flat=True).first()
    )
    return first is not None and first == store_id, first is not None


def real_setup(*, store_id: str | None = None) -> bool:
    """Whether real money can be taken here: an https base URL, the platform's Stripe keys, or
    (with ``store_id``) that store's own. What turns the sandbox off when it is left to Stall."""
    return _real_here() or (store_id is not None and _stripe_keys(store_id)[0])


def sandbox_enabled(*, store_id: str | None = None) -> bool:
    """Whether the test cards are offered and taken at ``store_id`` (or on pages of no store).

    STALL_SANDBOX_ENABLED=1 or 0 decides everywhere. Unset, they are on only where ``real_setup``
    finds nothing real: a store with its own Stripe keys takes real money, so its buyers are not
    offered test cards even on a developer's machine (its creator tests with Stripe's test keys).
    """
    if settings.STALL_SANDBOX_ENABLED is not None:
        return bool(settings.STALL_SANDBOX_ENABLED)
    return not real_setup(store_id=store_id)


def rail_livemode(rail: str) -> bool:
    """Whether a payment on ``rail`` is real money. A sandbox payment is a test payment (False) on a
    Stall that is real anywhere: an https base URL, the platform's Stripe keys or any store's."""
    if rail != "sandbox":
        return True
    return not _real_here() and not _stripe_keys(None)[1]


def sandbox_test_mode(*, store_id: str | None = None) -> bool:
    """Whether pages at ``store_id`` offer test cards next to real money: they say "test mode"."""
    return sandbox_enabled(store_id=store_id) and not rail_livemode("sandbox")


def stripe_keys_sql(store_column: str) -> str:
    """``_stripe_keys``' answer as two columns of a caller's own SELECT: the store in ``store_column``
    has its own Stripe keys, any store has. ``sandbox_admit(stripe_keys=(mine, anyone))`` takes
    their values; the card checkout reads them with the checkout it locks."""
    table = StripeAccount._meta.db_table
    return (f"EXISTS (SELECT 1 FROM {table} sa WHERE sa.store_id = {store_column}), "
            f"EXISTS (SELECT 1 FROM {table} sa)")


def sandbox_admit(*, store_id: str | None, stripe_keys: tuple[bool, bool] | None = None) -> bool:
    """Refuse the test cards where they are off at ``store_id`` (``sandbox_enabled``), else say
    whether a payment with them is real money (``rail_livemode``): both in one query at most, as a
    sandbox card checkout asks both. ``stripe_keys``: the values of ``stripe_keys_sql`` for
    ``store_id``, when the caller read them (then no query)."""
    explicit, real_here = settings.STALL_SANDBOX_ENABLED, _real_here()
    if explicit is False or (explicit is None and real_here):
        raise _sandbox_off("Test cards are turned off on this Stall.")
    mine, anyone = _stripe_keys(store_id) if stripe_keys is None else stripe_keys
    if explicit is None and mine:
        raise _sandbox_off("Test cards are turned off for this store: it takes real card payments.")
    return not (real_here or anyone)


def _sandbox_off(message: str) -> UnknownPaymentMethod:
    return UnknownPaymentMethod(message, param="payment_method", code="sandbox_disabled")


def sandbox_check(rail: str, *, store_id: str | None = None) -> None:
    """Refuse the sandbox's test cards where they are off (see ``sandbox_enabled``)."""
    if rail == "sandbox":
        sandbox_admit(store_id=store_id)


def test_money_check(*, store_id: str) -> None:
    """Refuse to spend test money (a wallet topped up with a test card) at a store whose pages do
    not take test cards: it would buy real goods there."""
    if not sandbox_enabled(store_id=store_id):
        raise TestMoneyRefused()


def rail_for_payment_method(payment_method: object) -> Rail:
    """Pick the rail that owns a payment method code (``sandbox_visa`` → the sandbox rail)."""
    if not isinstance(payment_method, str) or not payment_method:
        raise UnknownPaymentMethod("Choose a payment method.", param="payment_method")
    for rail in RAILS.values():
        if any(code == payment_method for code, _ in rail.payment_methods()):
            return rail
    raise UnknownPaymentMethod(f"Unknown payment method “{payment_method}”.", param="payment_method")
