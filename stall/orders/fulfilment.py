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
from dataclasses import dataclass

# kind -> handler(order=, lines=, context=) -> events, lines being that kind's lines of the order
_HANDLERS: dict[str, Callable[..., None]] = {}


def fulfilment_register(*, kind: str, handler: Callable[..., None]) -> None:
    _HANDLERS[str(kind)] = handler


def fulfilment_handler(kind: str) -> Callable[..., None] | None:
    return _HANDLERS.get(str(kind))


def fulfil(*, order, lines, context: dict | None = None) -> list:
    """Run each product kind's handler for its lines of ``order`` (checkout lines with their
    products), then the order-paid observers. Call inside its transaction. Returns the events the
    handlers asked for."""
    by_kind: dict[str, list] = {}
    for line in lines:
        by_kind.setdefault(str(line.product.kind), []).append(line)
    events = []
    for kind, kind_lines in by_kind.items():
        handler = _HANDLERS.get(kind)
        if handler is not None:
            events += handler(order=order, lines=kind_lines, context=context) or []
    paid = [PaidLine(ln.product_id, str(ln.product.kind), ln.unit_amount * ln.quantity) for ln in lines]
    return events + order_paid_notify(order=order, paid=paid, context=context, read=None)


# --- What follows any paid order --------------------------------------------------------------
#
# Beyond its own kind's fulfilment, a paid order may matter to another domain: an unlock counts
# towards a capped membership (stall.memberships' cap-to-subscribe). Such a domain registers an
# observer. On the lean spend an observer's ``read_sql`` (a column with the store's id as its
# one parameter) is read in the spend's first SELECT, and its value handed to the observer as
# ``read``, so an observer with nothing to do (a store with no capped tier) costs no statement; on
# the card path ``read`` is None and the observer looks up what it needs.


@dataclass(frozen=True)
class PaidLine:
    product_id: str
    kind: str
    amount: int


@dataclass(frozen=True)
class OrderPaidObserver:
    """``handler(*, order, paid, context, read) -> list[EventRow]``, run inside the paid order's
    transaction, with ``paid`` the order's lines as ``PaidLine``s."""

    handler: Callable[..., list]
    read_sql: str = "NULL"
    # ``postings(*, order, read) -> list[ledger.services.Posting]``: transfers the observer wants
    # with the order's own (stall.books sets a share of the sale's net aside). They go into the
    # same INSERT and UPDATE as the sale's transfers, so they cost the spend no statement.
    postings: Callable[..., list] | None = None


_OBSERVERS: list[OrderPaidObserver] = []


def order_paid_register(observer: OrderPaidObserver) -> None:
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)


def order_paid_observers() -> list[OrderPaidObserver]:
    return list(_OBSERVERS)


def order_paid_notify(*, order, paid: list[PaidLine], context: dict | None, read: list | None) -> list:
    """Run every observer; ``read`` is their columns' values from the lean spend, in order."""
    events = []
    for index, observer in enumerate(_OBSERVERS):
        value = read[index] if read is not None else None
        events += observer.handler(order=order, paid=paid, context=context, read=value) or []
    return events


def order_paid_postings(*, order, read: list | None) -> list:
    """The observers' ledger transfers for ``order``, to post with its own (``read`` as in
    ``order_paid_notify``). Call after the order's fees are known."""
    postings = []
    for index, observer in enumerate(_OBSERVERS):
        if observer.postings is not None:
            value = read[index] if read is not None else None
            postings += observer.postings(order=order, read=value) or []
    return postings
