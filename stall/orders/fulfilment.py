"""What a paid order does for each kind of product, beyond the entitlement orders grant itself.

The product domains above orders register a handler per product kind in their
``AppConfig.ready`` (content: a post unlock, a tip). ``order_create_for_checkout`` and the lean
spend (``orders.spend``) call it inside the paid order's transaction, on every rail, so an unlock
paid by card, by webhook or from the wallet does the same thing.

A handler is ``handler(*, order, lines, context) -> list[EventRow]``: it writes what its kind needs
and returns the events to tell the store about. ``context`` is what the caller already holds (the
post, what the tipper wrote), so the lean spend's handlers need no query; it is None on the card
path, where the handler looks things up.
"""

from __future__ import annotations

from collections.abc import Callable

# kind -> handler(order=, lines=, context=) -> events, lines being that kind's lines of the order
_HANDLERS: dict[str, Callable[..., None]] = {}


def fulfilment_register(*, kind: str, handler: Callable[..., None]) -> None:
    _HANDLERS[str(kind)] = handler


def fulfilment_handler(kind: str) -> Callable[..., None] | None:
    return _HANDLERS.get(str(kind))


def fulfil(*, order, lines, context: dict | None = None) -> list:
    """Run each product kind's handler for its lines of ``order`` (checkout lines with their
    products). Call inside its transaction. Returns the events the handlers asked for."""
    by_kind: dict[str, list] = {}
    for line in lines:
        by_kind.setdefault(str(line.product.kind), []).append(line)
    events = []
    for kind, kind_lines in by_kind.items():
        handler = _HANDLERS.get(kind)
        if handler is not None:
            events += handler(order=order, lines=kind_lines, context=context) or []
    return events
