"""What a paid order does for each kind of product, beyond the entitlement orders grant itself.

The product domains above orders register a handler per product kind in their
``AppConfig.ready`` (content: a post unlock, a tip). ``order_create_for_checkout`` and the lean
in-ledger spend call ``fulfil`` inside the paid order's transaction, on every rail, so an unlock
paid by card, by webhook or from the wallet does the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

# kind -> handler(order=, lines=), lines being that kind's lines of the order
_HANDLERS: dict[str, Callable[..., None]] = {}


def fulfilment_register(*, kind: str, handler: Callable[..., None]) -> None:
    _HANDLERS[str(kind)] = handler


def fulfilment_handler(kind: str) -> Callable[..., None] | None:
    return _HANDLERS.get(str(kind))


def fulfil(*, order, lines) -> None:
    """Run each product kind's handler for its lines of ``order``. Call inside its transaction."""
    by_kind: dict[str, list] = {}
    for line in lines:
        by_kind.setdefault(str(line.product.kind), []).append(line)
    for kind, kind_lines in by_kind.items():
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(order=order, lines=kind_lines)
