"""What a reader is charged for a product when a domain above orders lowers its price for them.

A post gated to a tier with cap-to-subscribe costs a reader at most what is left under the tier's
monthly price this month (stall.memberships): the unlock that reaches the cap is charged only
the rest, so nobody pays more than the membership would have cost. Content decides what an
unlock charges but must not import memberships (sibling domains), so memberships registers a
``PriceLimit`` here in its ``AppConfig.ready`` and content asks this module, which knows nothing
of tiers.

Each limit answers, for one reader and one product:

``limit_sql(product_id=, email=) -> (sql, params)``
    a SQL expression for the most this reader may be charged for the product (NULL: no limit),
    with its parameters: the one-click unlock reads it in the spend's first SELECT, so a store
    with no capped tier pays no statement for it.
``limit(product_id=, email=) -> int | None``
    the same, as a query, for the card path (which opens a checkout).

``amount_charged`` applies them. A limit of zero or less — the reader reached the cap but could
not be made a member, being one of another tier of the store already — lowers nothing: the
price is charged as it stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PriceLimit:
    limit_sql: Callable[..., tuple[str, list]]
    limit: Callable[..., int | None]


_LIMITS: list[PriceLimit] = []


def price_limit_register(limit: PriceLimit) -> None:
    if limit not in _LIMITS:
        _LIMITS.append(limit)


def price_limits_sql(*, product_id: str, email: str) -> tuple[list[str], list]:
    """The registered limits as SQL expressions (one column each) and their parameters, in order."""
    columns, params = [], []
    for limit in _LIMITS:
        sql, sql_params = limit.limit_sql(product_id=product_id, email=email.lower())
        columns.append(sql)
        params += sql_params
    return columns, params


def price_limits(*, product_id: str, email: str) -> list[int | None]:
    """The registered limits, each asked with its own query."""
    return [limit.limit(product_id=product_id, email=email.lower()) for limit in _LIMITS]


def amount_charged(*, amount: int, limits) -> int:
    """``amount`` lowered to the smallest positive limit (see the module's docstring)."""
    lowered = [int(v) for v in limits if v is not None and int(v) > 0]
    return min([amount, *lowered])
