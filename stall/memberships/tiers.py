"""Writes for tiers: create, update, archive, and gating posts (by their products) to tiers.

Each price of a tier is a product of kind ``membership`` (``TierPrice.product``), published while
the tier is active; archiving the tier archives them, so no new checkout can be opened for it,
while its members keep renewing (renewals charge the product through memberships, not a page).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from stall.catalog.models import PriceType, Product, ProductKind, ProductStatus
from stall.catalog.names import membership_product_name
from stall.catalog.services import product_create, product_update
from stall.core.errors import StallError
from stall.core.money import MAX_AMOUNT, format_money

from .errors import TierInvalid
from .models import Interval, Tier, TierGate, TierPrice, TierStatus

_UNSET = object()
MAX_BENEFITS = 20
MAX_TRIAL_DAYS = 365
MAX_POSITION = 10**6


def _text(value, *, param: str, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise TierInvalid(f"{param.capitalize()} must be text.", param=param)
    value = value.strip()
    if required and not value:
        raise TierInvalid(f"Give the tier a {param}.", param=param)
    if len(value) > max_length:
        raise TierInvalid(f"Keep the {param} to {max_length} characters.", param=param)
    if "\x00" in value:
        raise TierInvalid("Text cannot contain NUL characters.", param=param)
    return value


def _benefits(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(b, str) for b in value):
        raise TierInvalid("Benefits must be a list of short texts.", param="benefits")
    if len(value) > MAX_BENEFITS:
        raise TierInvalid(f"List at most {MAX_BENEFITS} benefits.", param="benefits")
    return [_text(b, param="benefits", max_length=200) for b in value if b.strip()]


def _whole(value, *, param: str, low: int, high: int, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TierInvalid(f"{param.replace('_', ' ').capitalize()} must be a whole number from {low} to {high}.", param=param)
    return value


def prices_checked(prices, currency: str) -> dict[str, int]:
    """``[{"interval": "month", "amount": 300}, ...]`` as {interval: amount}; an empty list is a
    free tier. A zero or negative amount is refused: a free tier has no prices."""
    if prices is None:
        return {}
    if not isinstance(prices, list):
        raise TierInvalid("Prices must be a list of {interval, amount}.", param="prices")
    checked: dict[str, int] = {}
    for index, price in enumerate(prices):
        param = f"prices[{index}]"
        interval = price.get("interval") if isinstance(price, dict) else None
        amount = price.get("amount") if isinstance(price, dict) else None
        if interval not in Interval.values:
            raise TierInvalid(
                f"Unknown interval “{interval}”: choose {', '.join(Interval.values)}.", param=f"{param}.interval",
                code="invalid_interval",
            )
        if interval in checked:
            raise TierInvalid(f"A tier has one {interval}ly price.", param="prices")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TierInvalid("The amount must be a whole number of minor units.", param=f"{param}.amount", code="invalid_amount")
        if amount <= 0:
            raise TierInvalid(
                "A price must be more than 0. For a free tier, give it no prices.", param=f"{param}.amount",
                code="invalid_amount",
            )
        if amount > MAX_AMOUNT:
            raise TierInvalid(f"A price can be at most {format_money(MAX_AMOUNT, currency)}.", param=f"{param}.amount", code="invalid_amount")
        checked[interval] = amount
    return checked


def _price_product(*, tier: Tier, interval: str, amount: int) -> Product:
    try:
        product = product_create(
            store=tier.store, name=membership_product_name(tier_name=tier.name, interval=interval), amount=amount,
            price_type=PriceType.FIXED,
            status=ProductStatus.PUBLISHED if tier.status == TierStatus.ACTIVE else ProductStatus.ARCHIVED,
            slug=f"membership-{tier.pk.partition('_')[2]}-{interval}", kind=ProductKind.MEMBERSHIP,
        )
    except StallError as exc:
        raise TierInvalid(exc.message, param="prices") from None
    return product


def _prices_set(*, tier: Tier, prices: dict[str, int]) -> None:
    """Make the tier's prices these: new intervals get a product, changed amounts change it (for
    renewals to come), dropped intervals are archived and their price rows kept for members."""
    existing = {p.interval: p for p in tier.prices.select_related("product")}
    for interval, amount in prices.items():
        price = existing.get(interval)
        if price is None:
            product = _price_product(tier=tier, interval=interval, amount=amount)
            TierPrice.objects.create(tier=tier, interval=interval, amount=amount, currency=tier.store.currency, product=product)
        elif price.amount != amount or price.product.status != ProductStatus.PUBLISHED:
            product_update(product=price.product, amount=amount, status=_product_status(tier))
            TierPrice.objects.filter(pk=price.pk).update(amount=amount)
    for interval, price in existing.items():
        if interval not in prices:
            product_update(product=price.product, status=ProductStatus.ARCHIVED)


def _product_status(tier: Tier) -> str:
    return ProductStatus.PUBLISHED if tier.status == TierStatus.ACTIVE else ProductStatus.ARCHIVED


@transaction.atomic
def tier_create(
    *, store, name: str, description: str = "", benefits=None, prices=None, trial_days: int = 0,
    member_limit: int | None = None, cap_to_subscribe: bool = False, position: int | None = None,
) -> Tier:
    """A tier with its prices (none: a free tier). Cap-to-subscribe needs a monthly price: the cap."""
    name = _text(name, param="name", max_length=120, required=True)
    checked = prices_checked(prices, store.currency)
    if cap_to_subscribe and Interval.MONTH not in checked:
        raise TierInvalid("Cap-to-subscribe needs a monthly price: it is the cap.", param="cap_to_subscribe")
    if position is None:
        position = min(MAX_POSITION, (Tier.objects.filter(store=store).aggregate(m=Max("position"))["m"] or 0) + 1)
    tier = Tier.objects.create(
        store=store, name=name, description=_text(description, param="description", max_length=5000),
        benefits=_benefits(benefits), trial_days=_whole(trial_days, param="trial_days", low=0, high=MAX_TRIAL_DAYS),
        member_limit=_whole(member_limit, param="member_limit", low=1, high=10**9, nullable=True),
        cap_to_subscribe=bool(cap_to_subscribe), position=_whole(position, param="position", low=0, high=MAX_POSITION),
    )
    _prices_set(tier=tier, prices=checked)
    return tier


@transaction.atomic
def tier_update(
    *, tier: Tier, name=_UNSET, description=_UNSET, benefits=_UNSET, prices=_UNSET, trial_days=_UNSET,
    member_limit=_UNSET, cap_to_subscribe=_UNSET, position=_UNSET,
) -> Tier:
    """Change only what is given. A new price applies to joins now and to members at their next
    renewal."""
    tier = Tier.objects.select_for_update().select_related("store").get(pk=tier.pk)
    if name is not _UNSET:
        tier.name = _text(name, param="name", max_length=120, required=True)
    if description is not _UNSET:
        tier.description = _text(description, param="description", max_length=5000)
    if benefits is not _UNSET:
        tier.benefits = _benefits(benefits)
    if trial_days is not _UNSET:
        tier.trial_days = _whole(trial_days, param="trial_days", low=0, high=MAX_TRIAL_DAYS)
    if member_limit is not _UNSET:
        tier.member_limit = _whole(member_limit, param="member_limit", low=1, high=10**9, nullable=True)
    if position is not _UNSET:
        tier.position = _whole(position, param="position", low=0, high=MAX_POSITION)
    if cap_to_subscribe is not _UNSET:
        tier.cap_to_subscribe = bool(cap_to_subscribe)
    if prices is not _UNSET:
        _prices_set(tier=tier, prices=prices_checked(prices, tier.store.currency))
    monthly = tier.prices.filter(interval=Interval.MONTH).exclude(product__status=ProductStatus.ARCHIVED).exists()
    if tier.cap_to_subscribe and not monthly:
        raise TierInvalid("Cap-to-subscribe needs a monthly price: it is the cap.", param="cap_to_subscribe")
    tier.save()
    return tier


@transaction.atomic
def tier_archive(*, tier: Tier) -> Tier:
    """No new members; members keep their membership and renew until they cancel."""
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    tier.status = TierStatus.ARCHIVED
    tier.save(update_fields=["status", "updated_at"])
    for price in tier.prices.select_related("product"):
        product_update(product=price.product, status=ProductStatus.ARCHIVED)
    return tier


@transaction.atomic
def tier_gates_set(*, tier: Tier, product_ids: list[str]) -> list[str]:
    """Gate exactly these products (posts of the tier's store) to the tier; returns their ids."""
    if not isinstance(product_ids, list) or not all(isinstance(p, str) for p in product_ids):
        raise TierInvalid("Give a list of post product ids.", param="posts")
    found = set(
        Product.objects.filter(store_id=tier.store_id, pk__in=product_ids, kind=ProductKind.POST).values_list("pk", flat=True)
    )
    missing = [p for p in product_ids if p not in found]
    if missing:
        raise TierInvalid(f"No such post: {missing[0]}.", param="posts", code="resource_missing")
    TierGate.objects.filter(tier=tier).exclude(product_id__in=found).delete()
    have = set(TierGate.objects.filter(tier=tier).values_list("product_id", flat=True))
    TierGate.objects.bulk_create([TierGate(tier=tier, product_id=p) for p in found - have])
    return sorted(found)


def post_gate_set(*, store, product_id: str, tier_ids: list[str]) -> list[str]:
    """Gate one post (by its product) to exactly these tiers of ``store``: what a post's editor sets."""
    if not isinstance(tier_ids, list) or not all(isinstance(t, str) for t in tier_ids):
        raise TierInvalid("Give a list of tier ids.", param="tiers")
    if not Product.objects.filter(store=store, pk=product_id, kind=ProductKind.POST).exists():
        raise TierInvalid("No such post.", param="post", code="resource_missing")
    tiers = set(Tier.objects.filter(store=store, pk__in=tier_ids).values_list("pk", flat=True))
    missing = [t for t in tier_ids if t not in tiers]
    if missing:
        raise TierInvalid(f"No such tier: {missing[0]}.", param="tiers", code="resource_missing")
    with transaction.atomic():
        TierGate.objects.filter(product_id=product_id).exclude(tier_id__in=tiers).delete()
        have = set(TierGate.objects.filter(product_id=product_id).values_list("tier_id", flat=True))
        TierGate.objects.bulk_create([TierGate(tier_id=t, product_id=product_id) for t in tiers - have])
    return sorted(tiers)
