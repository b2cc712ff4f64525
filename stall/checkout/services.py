"""Checkouts: what a buyer is about to pay, priced on the server and frozen at creation."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from stall.catalog.models import PriceType, Product, ProductStatus
from stall.core.money import MAX_AMOUNT, amount_validate, format_money
from stall.core.rows import PrefetchedRows, model_columns, model_from_row, model_insert
from stall.core.sql import in_list
from stall.stores.models import Store

from .discounts import discount_price
from .errors import AmountTooSmall, CheckoutExpired, CheckoutInvalid, CheckoutNotFound
from .models import Checkout, CheckoutLine, CheckoutStatus


@dataclass(frozen=True)
class CheckoutItem:
    product_id: str
    amount: int | None = None  # only for pay-what-you-want: what the buyer chose to pay
    quantity: int = 1
    # A fixed price lowered by the server for this buyer (orders.pricing: what is left under a
    # membership's cap); never set from what a buyer sends.
    price_limit: int | None = None


def email_normalize(email: object) -> str:
    if not isinstance(email, str) or not email.strip():
        raise CheckoutInvalid(gettext_noop("Enter your email address."), param="email")
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise CheckoutInvalid(gettext_noop("Enter a valid email address."), param="email") from None
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def unit_amount_checked(product: Product, chosen: int | None, index: int = 0) -> int:
    """What one of ``product`` costs: its fixed price, or what the buyer chose of a pay-what-you-want
    one (its suggested amount, else its minimum, when they chose nothing), the minimum enforced."""
    param = f"items[{index}].amount" if index else "amount"
    if product.price_type == PriceType.FIXED:
        if chosen is not None and chosen != product.amount:
            raise CheckoutInvalid(
                gettext("%(product)s has a fixed price of %(amount)s.") % {"product": product.name, "amount": format_money(product.amount, product.currency)}, param=param
            )
        return product.amount
    if chosen is None:
        if product.suggested_amount is not None:
            return product.suggested_amount
        return product.amount
    amount_validate(chosen, param=param)
    if chosen < product.amount:
        raise AmountTooSmall(
            gettext("The minimum for %(product)s is %(amount)s.") % {"product": product.name, "amount": format_money(product.amount, product.currency)}, param=param
        )
    return chosen


def _receipt_language() -> str:
    language = translation.get_language() or ""
    return "" if language == settings.LANGUAGE_CODE else language


@transaction.atomic
def checkout_create(
    *, store: Store, email: str, items: list[CheckoutItem], discount_code: str = "", buyer=None, email_consent: bool = False,
    save_card: bool = False,
) -> Checkout:
    """Open a checkout for published products of ``store``, pricing each on the server, less
    ``discount_code`` when given (refused with DiscountRefused when it does not apply; its use is
    claimed at payment). ``buyer``: the signed-in buyer, for once-per-customer codes.
    ``email_consent``: the buyer ticked "email me news from this store". ``save_card``: the card
    paid with is kept for later charges without the buyer (a membership's renewals).

    It keeps the active language (the buyer's on a store page, English in the API) so the receipt
    is written in the language the buyer bought in."""
    email = email_normalize(email)
    if not items:
        raise CheckoutInvalid("A checkout needs at least one product.", param="items")
    if len(items) > 50:
        raise CheckoutInvalid("A checkout holds at most 50 products.", param="items")
    products = _published_products(store_id=store.pk, product_ids=[i.product_id for i in items])
    lines, total = [], 0
    for index, item in enumerate(items):
        product = products.get(item.product_id)
        if product is None:
            raise CheckoutInvalid("No such product, or it is not for sale.", param=f"items[{index}].product" if index else "product", code="resource_missing")
        if not isinstance(item.quantity, int) or isinstance(item.quantity, bool) or not 1 <= item.quantity <= 100:
            raise CheckoutInvalid("Quantity must be between 1 and 100.", param=f"items[{index}].quantity")
        unit = unit_amount_checked(product, item.amount, index)
        if item.price_limit is not None and product.price_type == PriceType.FIXED:
            unit = min(unit, item.price_limit)
        lines.append(CheckoutLine(product=product, name=product.name, unit_amount=unit, quantity=item.quantity))
        total += unit * item.quantity
    if total > MAX_AMOUNT:
        raise CheckoutInvalid("The total is too large.", param="items")
    discount, amount_discount = None, 0
    if discount_code:
        price = discount_price(
            store=store, code=discount_code, lines=[(ln.product_id, ln.amount) for ln in lines], email=email,
            buyer_id=buyer.pk if buyer is not None else None,
        )
        discount, amount_discount = price.discount, price.amount
        for line, share in zip(lines, price.shares, strict=True):
            line.amount_discount = share
    now = timezone.now()
    (checkout,) = model_insert(Checkout, [{
        "store_id": store.pk,
        "email": email,
        "currency": store.currency,
        "amount_subtotal": total,
        "amount_total": total - amount_discount,
        "discount_id": discount.pk if discount else None,
        "discount_code": discount.code if discount else "",
        "amount_discount": amount_discount,
        "buyer_id": buyer.pk if buyer is not None else None,
        "expires_at": now + timedelta(seconds=settings.STALL_CHECKOUT_TTL_SECONDS),
        "completed_at": None,
        "last_error_code": "",
        "last_error_message": "",
        "language": _receipt_language(),
        "email_consent": bool(email_consent),
        "save_card": bool(save_card),
    }], now=now)
    Checkout.store.field.set_cached_value(checkout, store)
    if discount is not None:
        Checkout.discount.field.set_cached_value(checkout, discount)
    if buyer is not None:
        Checkout.buyer.field.set_cached_value(checkout, buyer)
    lines = model_insert(CheckoutLine, [
        {"checkout_id": checkout.pk, "product_id": ln.product_id, "name": ln.name, "unit_amount": ln.unit_amount,
         "quantity": ln.quantity, "amount_discount": ln.amount_discount}
        for ln in lines
    ])
    for line in lines:
        CheckoutLine.checkout.field.set_cached_value(line, checkout)
        CheckoutLine.product.field.set_cached_value(line, products[line.product_id])
    _known_new(checkout, lines)
    return checkout


# A store's published products by id, written out: every checkout reads them (stall.core.rows says why).
_PRODUCTS_SQL = f"SELECT {model_columns(Product, 'p')} FROM catalog_product p WHERE p.store_id = %s AND p.status = %s AND "


def _published_products(*, store_id: str, product_ids: list[str]) -> dict[str, Product]:
    where, params = in_list("p.id", list(dict.fromkeys(product_ids)))
    with connection.cursor() as cursor:
        cursor.execute(_PRODUCTS_SQL + where, [store_id, ProductStatus.PUBLISHED, *params])
        rows = cursor.fetchall()
    return {product.pk: product for product in (model_from_row(Product, row) for row in rows)}


def _known_new(checkout: Checkout, lines: list[CheckoutLine]) -> None:
    """What a new checkout holds, set on it so nobody reads it back (the API shows it at once):
    these lines, no payment, no order. Filters on its relations still query."""
    checkout._prefetched_objects_cache = PrefetchedRows(checkout, {"lines": lines, "payments": []})
    checkout._state.fields_cache["order"] = None


def checkout_lock_open(*, checkout_id: str) -> Checkout:
    """Lock an open checkout for update; raise if it expired. Call inside a transaction."""
    checkout = Checkout.objects.select_for_update().select_related("store").filter(pk=checkout_id).first()
    if checkout is None:
        raise CheckoutNotFound()
    if checkout.status == CheckoutStatus.EXPIRED:
        raise CheckoutExpired()
    if checkout.status == CheckoutStatus.OPEN and checkout.expires_at <= timezone.now():
        raise CheckoutExpired()
    return checkout
