"""A store's no-click charge of a customer's wallet, for product domains that bill on their own.

The wallets app owns allowances (a buyer's standing permission for a store to charge their
wallet) and the charge that respects them (``wallets.allowances.charge_create``: the allowance
locked and checked, a lean spend, a ``charge.succeeded`` event). A sibling domain that bills
usage (metering) may not import wallets, so wallets registers that charge here in its
``AppConfig.ready`` and the sibling calls ``store_charge``. A refusal (no allowance, the period's
room used up, an empty wallet) raises the wallets app's error, a ``StallError`` with its code.
"""

from __future__ import annotations

from collections.abc import Callable

_charge: Callable[..., object] | None = None


def store_charge_register(charge: Callable[..., object]) -> None:
    """``charge(*, store, customer_id, amount, currency, description, idempotency_key)`` returns
    the charge made (an object with ``pk``), or the earlier one for the same idempotency key."""
    global _charge
    _charge = charge


def store_charge(*, store, customer_id: str, amount: int, currency: str, description: str, idempotency_key: str):
    if _charge is None:
        raise RuntimeError("no store charge is registered (the wallets app is not installed)")
    return _charge(
        store=store, customer_id=customer_id, amount=amount, currency=currency, description=description,
        idempotency_key=idempotency_key,
    )
