"""Membership tiers as the other product domains see them: which tiers a store has, and when a
reader's membership of one starts, changes or ends.

A metering plan can be carried by a tier (its members are billed for usage while they are
members), but metering and memberships are sibling domains and never import each other. So
memberships registers a ``TierDirectory`` here in its ``AppConfig.ready`` and reports each
membership's change with ``membership_changed``, in the transaction that records it; metering
registers a listener with ``membership_listen``. This module knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TierDirectory:
    """``tiers(*, store_id) -> list[tuple[tier_id, name]]``: a store's tiers, archived ones too.
    ``members(*, tier_id) -> list[MembershipChange]``: the tier's memberships that are not over,
    each as it is now (``live`` False for a paused one)."""

    tiers: Callable[..., list[tuple[str, str]]]
    members: Callable[..., list[MembershipChange]]


@dataclass(frozen=True)
class MembershipChange:
    """A membership as it is after a change. ``live`` is False once it has ended. ``pay_with``
    is how the member pays the tier (``wallet``, ``card`` or ``none``), and ``saved_method_id``
    their saved card (``spm_…``) if they gave one."""

    membership_id: str
    store_id: str
    tier_id: str
    customer_id: str
    live: bool
    pay_with: str
    saved_method_id: str | None


_directory: TierDirectory | None = None
_listeners: list[Callable[..., None]] = []


def tier_directory_register(directory: TierDirectory) -> None:
    global _directory
    _directory = directory


def tiers_for_store(*, store_id: str) -> list[tuple[str, str]]:
    """A store's tiers as (id, name); none when memberships is not installed."""
    return _directory.tiers(store_id=store_id) if _directory is not None else []


def tier_members(*, tier_id: str) -> list[MembershipChange]:
    """A tier's memberships as they are now, for a domain that starts following the tier (a plan
    attached to it); none when memberships is not installed."""
    return _directory.members(tier_id=tier_id) if _directory is not None else []


def membership_listen(listener: Callable[..., None]) -> None:
    """``listener(*, change: MembershipChange)``, run inside the change's transaction."""
    if listener not in _listeners:
        _listeners.append(listener)


def membership_changed(*, change: MembershipChange) -> None:
    for listener in _listeners:
        listener(change=change)
