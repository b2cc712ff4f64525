"""A buyer's cart: products of one store, with quantities, before a checkout is opened for them.

The cart itself is a plain dict the pages keep in the buyer's session (``{product id: quantity}``
per store, or ``{product id: [quantity, amount]}`` for a pay-what-you-want product whose buyer
chose an amount), so an anonymous buyer has one without an account and nothing is written to the
database until they check out. These functions check what goes in and turn it into checkout items;
fixed prices are not kept here, and ``checkout_create`` prices every line on the server again
(a chosen amount is checked against the minimum when added and again at checkout).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_noop

from stall.catalog.models import LISTED_KINDS, PriceType, Product, ProductStatus
from stall.stores.models import Store

from .errors import CheckoutInvalid
from .services import CheckoutItem, unit_amount_checked

MAX_LINES = 50
MAX_QUANTITY = 100


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int
    chosen: int | None = None  # what the buyer chose to pay for one, for a pay-what-you-want product

    @property
    def unit_amount(self) -> int:
        """One's price: the fixed price, or the chosen amount (else the suggested one, else the minimum)."""
        if self.product.price_type == PriceType.PAY_WHAT_YOU_WANT and self.chosen is not None:
            return self.chosen
        return self.product.suggested_amount if self.product.suggested_amount is not None else self.product.amount

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


def _entry(value) -> tuple[int, int | None]:
    """A cart value as (quantity, chosen amount or None); a value the session mangled counts as one."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value[0], value[1]
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    return 1, None


def _value(quantity: int, chosen: int | None):
    return quantity if chosen is None else [quantity, chosen]


def _quantity(value) -> int:
    try:
        quantity = int(value)
    except (TypeError, ValueError):
        raise CheckoutInvalid(gettext_noop("Quantity must be between 1 and 100."), param="quantity") from None
    if not 0 <= quantity <= MAX_QUANTITY:
        raise CheckoutInvalid(gettext_noop("Quantity must be between 1 and 100."), param="quantity")
    return quantity


def cart_product(*, store: Store, product_id) -> Product:
    """A product this store sells through the cart; CheckoutInvalid for anything else."""
    product = Product.objects.filter(
        pk=product_id, store=store, status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).first() if isinstance(product_id, str) else None
    if product is None:
        raise CheckoutInvalid(gettext_noop("This product is not sold by this store."), param="product", code="resource_missing")
    return product


def cart_add(*, cart: dict, store: Store, product_id: str, quantity=1, amount: int | None = None) -> dict:
    """``cart`` with ``quantity`` more of the product. A product of another store, or one not for
    sale, is refused (CheckoutInvalid): a cart holds one store's products, paid in one checkout.

    ``amount``: what the buyer chose to pay for one of a pay-what-you-want product, in minor units,
    refused under its minimum (AmountTooSmall) and kept for the line (a new choice replaces an
    earlier one); None keeps their earlier choice, or the suggested amount. A fixed-price product
    takes no amount but its price. When refused, nothing is added: the caller's cart is left as it was."""
    quantity = _quantity(quantity)
    product = cart_product(store=store, product_id=product_id)
    if amount is not None:
        unit_amount_checked(product, amount, 0)
        if product.price_type != PriceType.PAY_WHAT_YOU_WANT:
            amount = None
    cart = dict(cart)
    if product_id not in cart and len(cart) >= MAX_LINES:
        raise CheckoutInvalid(gettext_noop("A cart holds at most 50 products."), param="product")
    held, chosen = _entry(cart.get(product_id, 0))
    cart[product_id] = _value(min(MAX_QUANTITY, held + max(quantity, 1)), amount if amount is not None else chosen)
    return cart


def cart_count(*, cart: dict) -> int:
    """How many things the cart holds (a line of three counts three)."""
    return sum(_entry(value)[0] for value in cart.values())


def cart_set_quantity(*, cart: dict, product_id: str, quantity) -> dict:
    """``cart`` with the product's quantity set; 0 removes it. A chosen amount stays."""
    quantity = _quantity(quantity)
    cart = dict(cart)
    if product_id in cart:
        if quantity:
            cart[product_id] = _value(quantity, _entry(cart[product_id])[1])
        else:
            del cart[product_id]
    return cart


def cart_lines(*, cart: dict, store: Store) -> list[CartLine]:
    """The cart's lines with their products, in the order added; products no longer for sale drop out."""
    products = Product.objects.filter(
        store=store, pk__in=list(cart), status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).in_bulk()
    return [CartLine(product=products[pid], quantity=_entry(value)[0], chosen=_entry(value)[1])
            for pid, value in cart.items() if pid in products]


def cart_items(*, cart: dict, store: Store) -> list[CheckoutItem]:
    lines = cart_lines(cart=cart, store=store)
    if not lines:
        raise CheckoutInvalid(gettext_noop("Your cart is empty."), param="items")
    # A chosen amount goes to the checkout, which checks it against the minimum again (the creator
    # may have raised it since) and charges it.
    return [CheckoutItem(product_id=line.product.pk, quantity=line.quantity,
                         amount=line.chosen if line.product.price_type == PriceType.PAY_WHAT_YOU_WANT else None)
            for line in lines]
