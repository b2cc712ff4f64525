"""The cart: several products of one store, kept in the session, paid in one checkout and one order."""

import re

import pytest

from stall.catalog.models import PriceType
from stall.checkout.cart import cart_add, cart_lines, cart_set_quantity
from stall.checkout.discounts import discount_create
from stall.checkout.errors import AmountTooSmall, CheckoutInvalid
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.money import InvalidAmount
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


@pytest.fixture
def sokal(store):
    """Pay what you want: at least $1.00, $4.00 suggested."""
    return product_with_file(store=store, name="Sokal", amount=100, price_type=PriceType.PAY_WHAT_YOU_WANT,
                             suggested_amount=400, content=b"sokal\n")


def test_cart_add_keeps_a_chosen_amount_at_or_over_the_minimum(store, sokal, zine):
    """A pay-what-you-want product goes in at the amount chosen (a new choice replaces the last,
    a quantity change keeps it); under the minimum or not an amount, it is refused."""
    cart = cart_add(cart={}, store=store, product_id=sokal.pk, amount=250)
    cart = cart_add(cart=cart, store=store, product_id=zine.pk)
    assert cart == {sokal.pk: [1, 250], zine.pk: 1}
    cart = cart_add(cart=cart, store=store, product_id=sokal.pk, quantity=2, amount=300)
    assert cart[sokal.pk] == [3, 300]
    assert cart_set_quantity(cart=cart, product_id=sokal.pk, quantity=1)[sokal.pk] == [1, 300]
    assert cart_add(cart={}, store=store, product_id=sokal.pk) == {sokal.pk: 1}  # the suggested amount, at checkout
    lines = cart_lines(cart={sokal.pk: [2, 250], zine.pk: 1}, store=store)
    assert [(line.unit_amount, line.amount) for line in lines] == [(250, 500), (300, 300)]
    assert cart_lines(cart={sokal.pk: 1}, store=store)[0].amount == 400
    for bad, error in ((99, "The minimum for Sokal is \\$1.00."), (-5, "Amount cannot be negative"), ("5", "Amount must be a whole number of minor units.")):
        with pytest.raises((AmountTooSmall, CheckoutInvalid, InvalidAmount), match=error):
            cart_add(cart={}, store=store, product_id=sokal.pk, amount=bad)
    with pytest.raises(CheckoutInvalid, match="Zine has a fixed price of \\$3.00."):
        cart_add(cart={}, store=store, product_id=zine.pk, amount=1)


def test_the_cart_charges_the_amount_the_buyer_chose(client, store, sokal, zine):
    """From the product page: the amount field starts at the suggested amount; the buyer types
    $2.50, the cart shows it, and the checkout and the order charge it."""
    page = client.get(f"/s/{store.slug}/{sokal.slug}/").content.decode()
    assert re.search(r'<input id="cart-amount" name="amount"[^>]* value="4.00"', page)
    assert "Minimum $1.00." in page
    assert 'id="cart-amount"' not in client.get(f"/s/{store.slug}/{zine.slug}/").content.decode()
    assert client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": "2.50", "quantity": "2"}).status_code == 302
    client.post(f"/s/{store.slug}/cart/add/", {"product": zine.pk})
    cart = client.get(f"/s/{store.slug}/cart/").content.decode()
    assert "Cart (3)" in client.get(f"/s/{store.slug}/").content.decode()
    assert "Cart (3)" in client.get(f"/s/{store.slug}/{zine.slug}/").content.decode()
    assert "Your price: $2.50 each" in cart and 'data-testid="cart-subtotal">$8.00<' in cart  # 2 × $2.50 + $3
    client.post(f"/s/{store.slug}/cart/", {"email": "b@example.com"})
    checkout = Checkout.objects.get()
    assert checkout.amount_total == 800
    assert sorted((line.name, line.unit_amount, line.quantity) for line in checkout.lines.all()) == [("Sokal", 250, 2), ("Zine", 300, 1)]
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    order = Order.objects.get()
    assert order.amount_total == 800 and order.payment.amount == 800


@pytest.mark.parametrize(("amount", "error"), [
    ("0.99", "The minimum for Sokal is $1.00."), ("", "Enter an amount."), ("abc", "“abc” is not an amount."),
    ("-3", "Amount cannot be negative."), ("99999999999999", "Amount is too large."),
])
def test_a_bad_amount_is_refused_and_adds_nothing(client, store, sokal, amount, error):
    client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": "3"})
    response = client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": amount})
    page = response.content.decode()
    assert response.status_code == 400 and error in page, page
    assert client.session["carts"][store.pk] == {sokal.pk: [1, 300]}  # as it was


def test_the_checkout_enforces_the_minimum_again(client, store, sokal):
    """The creator raised the minimum after the buyer filled the cart: the checkout refuses the
    old amount, with the same words, and opens nothing."""
    client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": "1.50"})
    type(sokal).objects.filter(pk=sokal.pk).update(amount=200)
    response = client.post(f"/s/{store.slug}/cart/", {"email": "b@example.com"})
    assert response.status_code == 400 and "The minimum for Sokal is $2.00." in response.content.decode()
    assert Checkout.objects.count() == 0


def test_the_amount_is_read_the_buyers_way_and_refused_in_their_words(client, store, sokal):
    """A Portuguese buyer types "2,50"; under the minimum, the refusal is Portuguese."""
    headers = {"accept-language": "pt-br"}
    page = client.get(f"/s/{store.slug}/{sokal.slug}/", headers=headers).content.decode()
    assert 'value="4,00"' in page and "Pague quanto quiser (USD)" in page
    client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": "2,50"}, headers=headers)
    assert client.session["carts"][store.pk] == {sokal.pk: [1, 250]}
    cart = client.get(f"/s/{store.slug}/cart/", headers=headers).content.decode()
    assert "Seu preço: US$\xa02,50 cada" in cart
    refused = client.post(f"/s/{store.slug}/cart/add/", {"product": sokal.pk, "amount": "0,50"}, headers=headers)
    assert refused.status_code == 400 and "O mínimo para Sokal é US$\xa01,00." in refused.content.decode()
