"""The cart: several products of one store, kept in the session, paid in one checkout and one order."""

import re

import pytest

from stall.checkout.cart import cart_add, cart_set_quantity
from stall.checkout.discounts import discount_create
from stall.checkout.errors import CheckoutInvalid
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.orders.models import Entitlement, Order
from stall.testing import ProductFactory, StoreFactory, product_with_file


@pytest.fixture
def book(store):
    return product_with_file(store=store, name="Book", amount=1000, content=b"the book\n")


@pytest.fixture
def zine(store):
    return product_with_file(store=store, name="Zine", amount=300, content=b"the zine\n")


def test_cart_add_refuses_another_stores_product(store):
    other = ProductFactory(store=StoreFactory())
    with pytest.raises(CheckoutInvalid, match="This product is not sold by this store.") as exc:
        cart_add(cart={}, store=store, product_id=other.pk)
    assert exc.value.code == "resource_missing"


def test_cart_add_and_quantities(store, book, zine):
    cart = cart_add(cart={}, store=store, product_id=book.pk)
    cart = cart_add(cart=cart, store=store, product_id=book.pk, quantity="2")
    cart = cart_add(cart=cart, store=store, product_id=zine.pk)
    assert cart == {book.pk: 3, zine.pk: 1}
    assert cart_set_quantity(cart=cart, product_id=book.pk, quantity=0) == {zine.pk: 1}
    for bad in ("-1", "101", "many"):
        with pytest.raises(CheckoutInvalid, match="Quantity must be between 1 and 100."):
            cart_set_quantity(cart=cart, product_id=book.pk, quantity=bad)


def test_a_checkout_with_another_stores_product_is_refused(store, book):
    other = ProductFactory(store=StoreFactory())
    with pytest.raises(CheckoutInvalid, match="No such product") as exc:
        checkout_create(store=store, email="b@example.com",
                        items=[CheckoutItem(product_id=book.pk), CheckoutItem(product_id=other.pk)])
    assert exc.value.param == "items[1].product"
    assert Checkout.objects.count() == 0


def test_cart_pages_without_javascript_make_one_order_with_a_line_per_product(client, store, book, zine):
    """Add two products with plain forms, change a quantity, remove and re-add, apply a code, pay
    once: one checkout, one order with two lines, each line's file downloadable."""
    discount_create(store=store, code="SPRING", kind="percent", percent_off=10)
    assert client.post(f"/s/{store.slug}/cart/add/", {"product": book.pk}).status_code == 302
    client.post(f"/s/{store.slug}/cart/add/", {"product": zine.pk})
    client.post(f"/s/{store.slug}/cart/update/", {"product": zine.pk, "quantity": "2"})
    client.post(f"/s/{store.slug}/cart/update/", {"product": book.pk, "remove": "1"})
    client.post(f"/s/{store.slug}/cart/add/", {"product": book.pk})
    page = client.get(f"/s/{store.slug}/cart/").content.decode()
    assert "Book" in page and "Zine" in page and "$16.00" in page  # 2 × $3 + $10
    assert "Cart (3)" in client.get(f"/s/{store.slug}/").content.decode()

    response = client.post(f"/s/{store.slug}/cart/", {"email": "b@example.com", "discount_code": "spring"})
    checkout = Checkout.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/checkout/{checkout.pk}/"
    assert (checkout.amount_subtotal, checkout.amount_discount, checkout.amount_total) == (1600, 160, 1440)
    pay = client.get(f"/checkout/{checkout.pk}/").content.decode()
    assert "Discount (SPRING)" in pay and "$14.40" in pay and "Zine × 2" in pay

    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert response.status_code == 302
    order = Order.objects.get()
    assert order.amount_total == 1440 and order.lines.count() == 2
    assert Entitlement.objects.filter(order=order).count() == 2
    done = client.get(f"/checkout/{checkout.pk}/complete/").content.decode()
    links = re.findall(r'href="(/d/[^"]+)"', done)
    assert len(links) == 2
    assert sorted(b"".join(client.get(link).streaming_content) for link in links) == [b"the book\n", b"the zine\n"]
    # The cart is empty once checked out.
    assert "Your cart is empty." in client.get(f"/s/{store.slug}/cart/").content.decode()


def test_cart_page_refuses_another_stores_product_and_bad_codes(client, store, book):
    other = ProductFactory(store=StoreFactory())
    response = client.post(f"/s/{store.slug}/cart/add/", {"product": other.pk})
    assert response.status_code == 400
    assert "This product is not sold by this store." in response.content.decode()
    client.post(f"/s/{store.slug}/cart/add/", {"product": book.pk})
    response = client.post(f"/s/{store.slug}/cart/", {"email": "b@example.com", "discount_code": "NOPE"})
    assert response.status_code == 400
    assert "There is no discount code NOPE in this store." in response.content.decode()
    assert Checkout.objects.count() == 0
    empty = client.post(f"/s/{store.slug}/cart/update/", {"product": book.pk, "remove": "1"})
    assert empty.status_code == 302
    response = client.post(f"/s/{store.slug}/cart/", {"email": "b@example.com"})
    assert response.status_code == 400 and "Your cart is empty." in response.content.decode()
