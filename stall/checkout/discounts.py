"""Discount codes: what a creator sets up, what a checkout takes off, and the use a payment claims.

A code is priced into a checkout when it is created (``discount_price``: the server computes the
discount, each line's share of it, and the checkout snapshots them). The use is *claimed* when the
checkout is paid, before any money moves (``discount_claim``): the code is checked again — it may
have expired, been switched off or used up since the page was shown — and one guarded UPDATE takes
a use (``times_used < max_uses``), so buyers racing for the last use cannot both get it. A
once-per-customer code writes the buyer's email (and account) on the redemption row, where a unique
constraint refuses a second use. A checkout that expires unpaid gives its use back
(``discount_release``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext

from stall.accounts.services import buyer_for_email
from stall.catalog.models import Product
from stall.core.money import MAX_AMOUNT, amount_validate, format_money
from stall.stores.models import Store

from .errors import DiscountInUse, DiscountInvalid, DiscountNotFound, DiscountRefused
from .models import Checkout, Discount, DiscountKind, DiscountRedemption

_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,39}")
_UNSET = object()


def code_normalize(code: object) -> str:
    return code.strip().upper() if isinstance(code, str) else ""


# --- The creator's side ---------------------------------------------------------------------------


def _products_of_store(*, store: Store, product_ids) -> list[Product]:
    ids = list(dict.fromkeys(product_ids or []))
    found = list(Product.objects.filter(store=store, pk__in=ids))
    if len(found) != len(ids):
        missing = next(pid for pid in ids if pid not in {p.pk for p in found})
        raise DiscountInvalid(f"No such product: {missing}.", param="products", code="resource_missing")
    return found


def _validated(discount: Discount) -> Discount:
    discount.code = code_normalize(discount.code)
    if not _CODE.fullmatch(discount.code):
        raise DiscountInvalid(
            "A code is 2 to 40 letters, digits, dashes or underscores, starting with a letter or digit.", param="code"
        )
    if discount.kind not in DiscountKind.values:
        raise DiscountInvalid("Kind must be percent or fixed.", param="kind")
    if discount.kind == DiscountKind.PERCENT:
        discount.amount_off = None
        value = discount.percent_off
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise DiscountInvalid("A percent off is a whole number from 1 to 100.", param="percent_off")
    else:
        discount.percent_off = None
        amount_validate(discount.amount_off, param="amount_off", allow_zero=False)
    amount_validate(discount.minimum_subtotal, param="minimum_subtotal")
    if discount.max_uses is not None:
        if isinstance(discount.max_uses, bool) or not isinstance(discount.max_uses, int) or discount.max_uses < 1:
            raise DiscountInvalid("A use limit is at least 1 (or none).", param="max_uses")
        if discount.max_uses < discount.times_used:
            raise DiscountInvalid(
                f"This code has been used {discount.times_used} times already; the limit cannot be lower.", param="max_uses"
            )
    if discount.starts_at and discount.ends_at and discount.ends_at <= discount.starts_at:
        raise DiscountInvalid("The end must come after the start.", param="ends_at")
    return discount


def _save(discount: Discount) -> None:
    try:
        with transaction.atomic():
            discount.save()
    except IntegrityError:
        raise DiscountInvalid("This store has another discount with that code.", param="code", code="code_taken") from None


@transaction.atomic
def discount_create(
    *, store: Store, code: str, kind: str, percent_off: int | None = None, amount_off: int | None = None,
    products=(), starts_at: datetime | None = None, ends_at: datetime | None = None, max_uses: int | None = None,
    once_per_customer: bool = False, minimum_subtotal: int = 0, active: bool = True,
) -> Discount:
    """A discount code of ``store``: ``percent_off`` (1–100) or ``amount_off`` (minor units of the
    store's currency), on every product or only ``products`` (ids of the store's products)."""
    discount = Discount(
        store=store, code=code, kind=kind, percent_off=percent_off, amount_off=amount_off, currency=store.currency,
        starts_at=starts_at, ends_at=ends_at, max_uses=max_uses, once_per_customer=bool(once_per_customer),
        minimum_subtotal=minimum_subtotal, active=bool(active),
    )
    chosen = _products_of_store(store=store, product_ids=products)
    _save(_validated(discount))
    discount.products.set(chosen)
    return discount


@transaction.atomic
def discount_update(*, discount: Discount, products=_UNSET, **changes) -> Discount:
    """Change only what is given (the same names as ``discount_create``)."""
    allowed = {"code", "kind", "percent_off", "amount_off", "starts_at", "ends_at", "max_uses", "once_per_customer",
               "minimum_subtotal", "active"}
    discount = Discount.objects.select_for_update().get(pk=discount.pk)
    for name, value in changes.items():
        if name not in allowed:
            raise TypeError(name)
        setattr(discount, name, value)
    if "kind" in changes and changes["kind"] == DiscountKind.PERCENT and "amount_off" not in changes:
        discount.amount_off = None
    chosen = _products_of_store(store=discount.store, product_ids=products) if products is not _UNSET else None
    _save(_validated(discount))
    if chosen is not None:
        discount.products.set(chosen)
    return discount


def discount_deactivate(*, discount: Discount) -> Discount:
    return discount_update(discount=discount, active=False)


def discount_get(*, store: Store, discount_id: str) -> Discount:
    """A discount of ``store``; another store's is "not found"."""
    discount = Discount.objects.filter(store=store, pk=discount_id).prefetch_related("products").first()
    if discount is None:
        raise DiscountNotFound()
    return discount


def discounts_for_store(*, store: Store):
    return Discount.objects.filter(store=store).prefetch_related("products").order_by("-pk")


def discount_label(discount: Discount, locale: str | None = None) -> str:
    """"20% off" or "$5.00 off", for pages."""
    if discount.kind == DiscountKind.PERCENT:
        return gettext("%(percent)s%% off") % {"percent": discount.percent_off}
    return gettext("%(amount)s off") % {"amount": format_money(discount.amount_off, discount.currency, locale)}


# --- Pricing a checkout --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscountPrice:
    discount: Discount
    amount: int  # what comes off the subtotal
    shares: list[int]  # each line's part of it, in the lines' order


def _usable(discount: Discount, *, now, subtotal: int, email: str, buyer_id: str | None, uses: bool = True) -> None:
    """Raise DiscountRefused if ``discount`` cannot be used now by this buyer on this subtotal.
    ``uses``: whether to check the use limit on the row as read (the claim leaves that to its
    guarded UPDATE, the one statement that decides who gets the last use)."""
    if not discount.active:
        raise DiscountRefused(gettext("The code %(code)s is no longer active.") % {"code": discount.code},
                              code="discount_inactive")
    if discount.starts_at and now < discount.starts_at:
        raise DiscountRefused(gettext("The code %(code)s is not valid yet.") % {"code": discount.code},
                              code="discount_not_started")
    if discount.ends_at and now >= discount.ends_at:
        raise DiscountRefused(gettext("The code %(code)s has expired.") % {"code": discount.code},
                              code="discount_expired")
    if uses and discount.max_uses is not None and discount.times_used >= discount.max_uses:
        raise DiscountRefused(gettext("The code %(code)s has been used up.") % {"code": discount.code},
                              code="discount_used_up")
    if subtotal < discount.minimum_subtotal:
        raise DiscountRefused(
            gettext("The code %(code)s needs a subtotal of at least %(amount)s.")
            % {"code": discount.code, "amount": format_money(discount.minimum_subtotal, discount.currency)},
            code="discount_minimum_not_met",
        )
    if discount.once_per_customer:
        used = DiscountRedemption.objects.filter(discount=discount).filter(
            Q(email_once=email.lower()) | (Q(buyer_once_id=buyer_id) if buyer_id else Q(pk__in=[]))
        )
        if used.exists():
            raise DiscountRefused(gettext("You have already used the code %(code)s.") % {"code": discount.code},
                                  code="discount_already_used")


def _shares(amount: int, bases: list[int]) -> list[int]:
    """``amount`` split over ``bases`` in proportion, whole minor units that add up exactly
    (largest remainder; ties to the earlier line)."""
    whole = sum(bases)
    if not whole:
        return [0] * len(bases)
    floors = [amount * b // whole for b in bases]
    rest = amount - sum(floors)
    order = sorted(range(len(bases)), key=lambda i: (-(amount * bases[i] % whole), i))
    for i in order[:rest]:
        floors[i] += 1
    return floors


def discount_price(
    *, store: Store, code: str, lines: list[tuple[str, int]], email: str, buyer_id: str | None = None,
) -> DiscountPrice:
    """What ``code`` takes off a checkout of ``lines`` ((product id, line amount) pairs). Raises
    DiscountRefused with a code saying why it does not apply. A code of another store is unknown."""
    code = code_normalize(code)
    discount = Discount.objects.filter(store=store, code=code).first() if code else None
    if discount is None:
        raise DiscountRefused(gettext("There is no discount code %(code)s in this store.") % {"code": code or "“”"},
                              code="discount_unknown")
    subtotal = sum(amount for _, amount in lines)
    _usable(discount, now=timezone.now(), subtotal=subtotal, email=email, buyer_id=buyer_id)
    chosen = set(discount.products.values_list("pk", flat=True))
    bases = [amount if not chosen or product_id in chosen else 0 for product_id, amount in lines]
    eligible = sum(bases)
    if not eligible:
        raise DiscountRefused(gettext("The code %(code)s does not apply to these products.") % {"code": discount.code},
                              code="discount_not_applicable")
    if discount.kind == DiscountKind.PERCENT:
        amount = (eligible * discount.percent_off + 50) // 100  # rounded half up, once, on the total
    else:
        amount = min(discount.amount_off, eligible)
    amount = min(amount, MAX_AMOUNT)
    return DiscountPrice(discount=discount, amount=amount, shares=_shares(amount, bases))


# --- Claiming a use at payment -------------------------------------------------------------------


def discount_claim(*, checkout: Checkout, buyer=None) -> None:
    """Take one use of the checkout's code before it is paid; nothing for a checkout with no code
    or one that claimed already (a retried payment). Raises DiscountRefused, writing nothing, when
    the code became unusable since the checkout was priced. Call inside a transaction that has the
    checkout locked."""
    if checkout.discount_id is None or DiscountRedemption.objects.filter(checkout=checkout).exists():
        return
    discount = Discount.objects.get(pk=checkout.discount_id)
    buyer_id = buyer.pk if buyer is not None else checkout.buyer_id
    if buyer_id is None and discount.once_per_customer:
        # The account of the email it is bought with (made at a first purchase in any case), so the
        # same account is known when it comes back under another email.
        buyer_id = buyer_for_email(email=checkout.email).pk
    _usable(discount, now=timezone.now(), subtotal=checkout.amount_subtotal, email=checkout.email, buyer_id=buyer_id,
            uses=False)
    with transaction.atomic():  # a savepoint: a refusal below leaves the caller's transaction whole
        taken = Discount.objects.filter(pk=discount.pk, active=True).filter(
            Q(max_uses__isnull=True) | Q(times_used__lt=F("max_uses"))
        ).update(times_used=F("times_used") + 1)
        if not taken:
            raise DiscountRefused(gettext("The code %(code)s has been used up.") % {"code": discount.code},
                                  code="discount_used_up")
        once = discount.once_per_customer
        try:
            with transaction.atomic():
                DiscountRedemption.objects.create(
                    discount=discount, checkout=checkout, email=checkout.email.lower(),
                    email_once=checkout.email.lower() if once else "", buyer_once_id=buyer_id if once else None,
                )
        except IntegrityError:
            raise DiscountRefused(
                gettext("You have already used the code %(code)s.") % {"code": discount.code},
                code="discount_already_used",
            ) from None


def discount_release(*, checkout_id: str) -> bool:
    """Give back the use an unpaid checkout claimed (it expired). Call inside a transaction."""
    redemption = DiscountRedemption.objects.filter(checkout_id=checkout_id).first()
    if redemption is None:
        return False
    redemption.delete()
    Discount.objects.filter(pk=redemption.discount_id, times_used__gt=0).update(times_used=F("times_used") - 1)
    return True



@transaction.atomic
def discount_delete(*, discount: Discount) -> None:
    """Delete a code no checkout has taken; one in use stays (for its orders' history): deactivate it."""
    discount = Discount.objects.select_for_update().get(pk=discount.pk)
    if discount.times_used or Checkout.objects.filter(discount=discount).exists():
        raise DiscountInUse()
    discount.delete()
