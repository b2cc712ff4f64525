"""A buyer's cart: products of one store, with quantities, before a checkout is opened for them.

The cart itself is a plain dict the pages keep in the buyer's session (``{product id: quantity}``
per store), so an anonymous buyer has one without an account and nothing is written to the
database until they check out. These functions check what goes in and turn it into checkout items;
prices are not kept here: ``checkout_create`` prices every line on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_noop

from stall.catalog.models import LISTED_KINDS, Product, ProductStatus
from stall.stores.models import Store

from .errors import CheckoutInvalid
from .services import CheckoutItem

MAX_LINES = 50
MAX_QUANTITY = 100


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def amount(self) -> int:
        """The product's price (a pay-what-you-want product's suggested amount, else its minimum)."""
        unit = self.product.suggested_amount if self.product.suggested_amount is not None else self.product.amount
        return unit * self.quantity


def _quantity(value) -> int:
    try:
        quantity = int(value)
    except (TypeError, ValueError):
        raise CheckoutInvalid(gettext_noop("Quantity must be between 1 and 100."), param="quantity") from None
    if not 0 <= quantity <= MAX_QUANTITY:
        raise CheckoutInvalid(gettext_noop("Quantity must be between 1 and 100."), param="quantity")
    return quantity


def cart_add(*, cart: dict, store: Store, product_id: str, quantity=1) -> dict:
    """``cart`` with ``quantity`` more of the product. A product of another store, or one not for
    sale, is refused (CheckoutInvalid): a cart holds one store's products, paid in one checkout."""
    quantity = _quantity(quantity)
    if not isinstance(product_id, str) or not Product.objects.filter(
        pk=product_id, store=store, status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).exists():
        raise CheckoutInvalid(gettext_noop("This product is not sold by this store."), param="product", code="resource_missing")
    cart = dict(cart)
    if product_id not in cart and len(cart) >= MAX_LINES:
        raise CheckoutInvalid(gettext_noop("A cart holds at most 50 products."), param="product")
    cart[product_id] = min(MAX_QUANTITY, cart.get(product_id, 0) + max(quantity, 1))
    return cart


def cart_set_quantity(*, cart: dict, product_id: str, quantity) -> dict:
    """``cart`` with the product's quantity set; 0 removes it."""
    quantity = _quantity(quantity)
    cart = dict(cart)
    if product_id in cart:
        if quantity:
            cart[product_id] = quantity
        else:
            del cart[product_id]
    return cart


def cart_lines(*, cart: dict, store: Store) -> list[CartLine]:
    """The cart's lines with their products, in the order added; products no longer for sale drop out."""
    products = Product.objects.filter(
        store=store, pk__in=list(cart), status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).in_bulk()
    return [CartLine(product=products[pid], quantity=q) for pid, q in cart.items() if pid in products]


def cart_items(*, cart: dict, store: Store) -> list[CheckoutItem]:
    lines = cart_lines(cart=cart, store=store)
    if not lines:
        raise CheckoutInvalid(gettext_noop("Your cart is empty."), param="items")
    return [CheckoutItem(product_id=line.product.pk, quantity=line.quantity) for line in lines]
