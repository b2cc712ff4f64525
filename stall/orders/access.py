"""Who may read a product beyond the buyers it entitles: the registry the product domains consult.

A post's body is read by whoever unlocked it (an entitlement, held by orders) and, once
memberships exist, by the members of a tier the post is gated to. Content must not import
memberships (sibling domains), so memberships registers an ``AccessHandler`` here in its
``AppConfig.ready`` and content asks this module, which knows nothing of tiers.

Each handler answers three questions:

``granted(store_id=, product_id=, email=)``
    may this reader read this product without buying it (a member of a tier gating it)?
``gated(product_ids=)``
    which of these products are for members only (gated), so that even a free one is not readable
    by all? (A set: a feed asks about thirty posts in one query.)
``granted_sql``
    ``granted`` as a SQL expression for a caller's own SELECT, with two parameters
    (product id, lower-cased email): the one-click unlock reads it in the spend's first statement,
    so a store with no tiers pays no extra statement for it.
``reader_for_token(store_id=, token=)``
    the reader whose private feed token this is (a ``FeedReader``: their email and language),
    while it grants anything.
``offers(store_id=, product_id=, email=)``
    the other ways to read the product, as ``Offer``s for its paywall (join a tier, with the
    reader's cap-to-subscribe progress); ``email`` may be empty (a reader not signed in).

With no handler registered every answer is "no" and ``granted_sql`` is the constant ``FALSE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Offer:
    """A way to read a gated product without buying it, as its paywall shows it: already in words
    and links, so the page that shows it needs to know nothing of where it comes from."""

    name: str
    price: str  # "$3.00 a month"
    url: str  # where the reader takes it (a tier's join page)
    description: str = ""
    progress: str = ""  # "$0.50 of $1.00 paid this month": pay per post until it is a membership
    progress_value: int = 0
    progress_max: int = 0


@dataclass(frozen=True)
class FeedReader:
    """Whose private feed a token opens: the email to read as, and the language they recorded
    ("" for the default), for the feed's own words."""

    email: str
    language: str = ""


@dataclass(frozen=True)
class AccessHandler:
    granted: Callable[..., bool]
    gated: Callable[..., bool]
    granted_sql: str
    reader_for_token: Callable[..., FeedReader | None] | None = None
    offers: Callable[..., list[Offer]] | None = None


_HANDLERS: list[AccessHandler] = []


def access_register(handler: AccessHandler) -> None:
    if handler not in _HANDLERS:
        _HANDLERS.append(handler)


def access_granted(*, store_id: str, product_id: str, email: str) -> bool:
    """Whether ``email`` may read ``product_id`` without an entitlement of their own."""
    if not email:
        return False
    email = email.lower()
    return any(h.granted(store_id=store_id, product_id=product_id, email=email) for h in _HANDLERS)


def access_gated(*, product_id: str) -> bool:
    """Whether the product is for members only: a reader who is not one never gets its body."""
    return bool(access_gated_among(product_ids=[product_id]))


def access_gated_among(*, product_ids: list[str]) -> set[str]:
    """Which of ``product_ids`` are for members only."""
    gated: set[str] = set()
    for handler in _HANDLERS:
        gated |= handler.gated(product_ids=list(product_ids))
    return gated


def access_granted_sql() -> tuple[str, int]:
    """``(expression, pairs)``: a SQL expression true when access is granted, and how many
    (product id, lower-cased email) parameter pairs it takes, in that order."""
    if not _HANDLERS:
        return "(1 = 0)", 0
    return "(" + " OR ".join(h.granted_sql for h in _HANDLERS) + ")", len(_HANDLERS)


def access_reader_for_token(*, store_id: str, token: str) -> FeedReader | None:
    """The reader a private feed token stands for, or None (unknown, rotated or ended)."""
    for handler in _HANDLERS:
        if handler.reader_for_token is not None:
            reader = handler.reader_for_token(store_id=store_id, token=token)
            if reader is not None:
                return reader
    return None


def access_offers(*, store_id: str, product_id: str, email: str = "") -> list[Offer]:
    """What the product's paywall offers besides buying it: every handler's offers, in order."""
    found: list[Offer] = []
    for handler in _HANDLERS:
        if handler.offers is not None:
            found.extend(handler.offers(store_id=store_id, product_id=product_id, email=(email or "").lower()))
    return found
