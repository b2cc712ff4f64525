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

``amount_charged`` applies them. A limit of zero or less means the reader has paid all there is
to pay (a cap reached, whether or not it could make them a member: they may be a member of
another tier of the store already, or the creator ended the membership): the product costs them
nothing, and the domain that registered the limit grants them access too (``orders.access``),
so the caller answers as for a member and charges nothing.

A checkout keeps the prices it was made with; ``checkout_prices_check`` asks the limits again
when a card is about to be charged, so that a checkout priced before a cap was reached (by a
wallet unlock in between) is refused rather than charged past the cap.

A wallet or tab payment of such a checkout is not refused but lowered: the limit's owner checks
the order under the buyer's lock, inside the payment's transaction (memberships' order-paid
observer, with the period's total locked), and raises ``PriceLimitPassed`` when it would pay past
the limit; the payment rolls back and ``checkout_reprice`` lowers the checkout's post line to
what is allowed now (nothing, once the cap is reached), which is then paid. The reader gets the
post they clicked for at the price a one-click unlock would charge them now. A card already
charged past a limit cannot be rolled back: the limit's owner refunds the excess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F

from stall.catalog.models import ProductKind
from stall.checkout.models import Checkout, CheckoutLine, CheckoutStatus
from stall.checkout.services import checkout_lock_open

from .errors import PriceChanged


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
    """``amount`` lowered to the smallest limit; 0 when a limit is zero or less (see the module's
    docstring)."""
    lowered = [max(0, int(v)) for v in limits if v is not None]
    return min([amount, *lowered])


# An open checkout's posts, written out: every card confirm asks (stall.core.rows says why).
_POSTS_SQL = (
    "SELECT l.product_id, l.unit_amount, k.email FROM checkout_checkoutline l "
    "JOIN checkout_checkout k ON k.id = l.checkout_id JOIN catalog_product p ON p.id = l.product_id "
    "WHERE l.checkout_id = %s AND k.status = %s AND p.kind = %s"
)


def checkout_prices_check(*, checkout_id: str) -> None:
    """Refuse (PriceChanged) an open checkout with a line priced above what the limits allow its
    buyer now. Limits lower posts' prices only (content asks them): one statement reads an open
    checkout's posts (none for most checkouts), then one per limit and post."""
    if not _LIMITS:
        return
    with connection.cursor() as cursor:
        cursor.execute(_POSTS_SQL, [checkout_id, CheckoutStatus.OPEN, ProductKind.POST])
        posts = cursor.fetchall()
    for product_id, unit_amount, email in posts:
        if unit_amount > amount_charged(amount=unit_amount, limits=price_limits(product_id=product_id, email=email)):
            raise PriceChanged()


def checkout_reprice(*, checkout_id: str) -> bool:
    """Lower an open checkout's post line to what the limits allow its buyer now, under the
    checkout's lock, after paying it passed a limit (``PriceLimitPassed``). True if it was
    lowered; False if the checkout is no longer open (paid meanwhile: the caller finds it so).

    Limits are asked per product and do not add up across lines (two posts under one cap would
    each be allowed what is left), so only a checkout with one limited post line and no discount
    (what a card unlock makes) is lowered; any other, or one with nothing to lower, is refused
    with PriceChanged, nothing changed."""
    with transaction.atomic():
        checkout = checkout_lock_open(checkout_id=checkout_id)
        if checkout.status != CheckoutStatus.OPEN:
            return False
        lines = list(CheckoutLine.objects.filter(checkout=checkout).select_related("product"))
        over, limited = [], 0
        for line in lines:
            if line.product.kind != ProductKind.POST:
                continue
            limits = price_limits(product_id=line.product_id, email=checkout.email)
            limited += any(v is not None for v in limits)
            allowed = amount_charged(amount=line.unit_amount, limits=limits)
            if allowed < line.unit_amount:
                over.append((line, allowed))
        if len(over) != 1 or limited > 1 or checkout.discount_id is not None or over[0][0].quantity != 1:
            raise PriceChanged()
        line, allowed = over[0]
        less = line.unit_amount - allowed
        CheckoutLine.objects.filter(pk=line.pk).update(unit_amount=allowed)
        Checkout.objects.filter(pk=checkout.pk).update(
            amount_subtotal=F("amount_subtotal") - less, amount_total=F("amount_total") - less,
        )
    return True
