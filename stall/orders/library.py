"""What the buyer's library lists beyond the entitlements orders grant itself.

The library lists what an email bought: entitlements (downloads, posts, tips), held here. A
product domain above orders whose purchases are not entitlements (a commission: a brief, a
delivery, a status) registers a source in its ``AppConfig.ready``; the library asks every source
for the email's entries and lists them with the rest, newest first, knowing nothing of what they are.

A source is ``source(*, email) -> list[LibraryEntry]``, ``email`` lower-cased, its words already
in the reader's language (it runs in the library's request).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LibraryEntry:
    """One purchase as the library shows it: what, from whom, its state, and where to go on."""

    name: str
    store_name: str
    order_id: str
    created_at: datetime
    status: str  # a short, translated state ("In progress")
    url: str  # the purchase's own page
    action: str  # the link's words ("Open the commission")
    kind: str = ""  # the product kind, for a page's test ids and styles


_SOURCES: list[Callable[..., list[LibraryEntry]]] = []


def library_register(source: Callable[..., list[LibraryEntry]]) -> None:
    if source not in _SOURCES:
        _SOURCES.append(source)


def library_entries(*, email: str) -> list[LibraryEntry]:
    """Every registered source's entries for ``email``, newest first."""
    entries = [entry for source in _SOURCES for entry in source(email=(email or "").lower())]
    return sorted(entries, key=lambda entry: entry.created_at, reverse=True)
