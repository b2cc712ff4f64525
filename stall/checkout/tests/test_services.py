"""Checkouts: priced on the server from the catalog, frozen at creation, expired when abandoned."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from stall.catalog.models import PriceType, ProductStatus
from stall.checkout.errors import AmountTooSmall, CheckoutExpired, CheckoutInvalid
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import (
    CheckoutItem,
    checkout_create,
    checkout_lock_open,
    email_normalize,
)
from stall.core.money import MAX_AMOUNT, InvalidAmount
from stall.payments.services import checkouts_expire_due
from stall.testing import ProductFactory, StoreFactory

pytestmark = pytest.mark.django_db


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def pwyw(store):
    return ProductFactory(store=store, name="Tip jar", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=200, suggested_amount=500)


def test_checkout_prices_a_fixed_price_product_from_the_catalog(store, product):
    """A checkout for a fixed-price product charges the catalog price, in the store's currency."""
    checkout = checkout_create(store=store, email="Buyer@Example.COM", items=[CheckoutItem(product_id=product.pk)])
    assert (checkout.status, checkout.currency, checkout.amount_subtotal, checkout.amount_total) == ("open", "USD", 300, 300)
    assert checkout.email == "Buyer@example.com"
    assert [(ln.product_id, ln.name, ln.unit_amount, ln.quantity) for ln in checkout.lines.all()] == [(product.pk, product.name, 300, 1)]


def test_checkout_accepts_the_fixed_price_when_the_client_sends_it(store, product):
    """A client that sends the right fixed price is not refused for sending it."""
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk, amount=300)])
    assert checkout.amount_total == 300


@pytest.mark.parametrize("amount", [1, 299, 301, 0])
def test_checkout_refuses_another_amount_for_a_fixed_price(store, product, amount):
    """The client cannot set the price of a fixed-price product: any other amount is refused."""
    with pytest.raises(CheckoutInvalid, match=exactly(f"{product.name} has a fixed price of $3.00.")) as caught:
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk, amount=amount)])
    assert (caught.value.code, caught.value.param) == ("invalid_checkout", "amount")
    assert Checkout.objects.count() == 0


def test_pay_what_you_want_takes_the_buyers_amount(store, pwyw):
    """A pay-what-you-want checkout charges what the buyer chose, at or above the minimum."""
    assert checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=pwyw.pk, amount=200)]).amount_total == 200
    assert checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=pwyw.pk, amount=1234)]).amount_total == 1234


def test_pay_what_you_want_below_the_minimum_is_refused(store, pwyw):
    """An amount under the minimum is refused with the minimum in the message; no checkout is made."""
    with pytest.raises(AmountTooSmall, match=exactly("The minimum for Tip jar is $2.00.")) as caught:
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=pwyw.pk, amount=199)])
    assert (caught.value.code, caught.value.param, caught.value.status) == ("amount_too_small", "amount", 400)
    assert Checkout.objects.count() == 0


def test_pay_what_you_want_refuses_a_negative_amount(store, pwyw):
    """A negative amount from an API client is an amount error, not a discount."""
    with pytest.raises(InvalidAmount, match=exactly("Amount cannot be negative.")):
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=pwyw.pk, amount=-500)])


def test_pay_what_you_want_without_an_amount_uses_the_suggestion(store, pwyw):
    """With no amount given, the suggested amount is charged; with no suggestion, the minimum."""
    assert checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=pwyw.pk)]).amount_total == 500
    plain = ProductFactory(store=store, price_type=PriceType.PAY_WHAT_YOU_WANT, amount=150)
    assert checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=plain.pk)]).amount_total == 150


@pytest.mark.parametrize("status", [ProductStatus.DRAFT, ProductStatus.ARCHIVED])
def test_unpublished_products_are_not_for_sale(store, status):
    """A draft or archived product cannot be bought."""
    hidden = ProductFactory(store=store, status=status)
    with pytest.raises(CheckoutInvalid, match=exactly("No such product, or it is not for sale.")) as caught:
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=hidden.pk)])
    assert (caught.value.code, caught.value.param) == ("resource_missing", "product")
    assert Checkout.objects.count() == 0


def test_another_stores_product_cannot_be_bought_through_this_store(store):
    """A product of store B is "not for sale" in store A's checkout."""
    elsewhere = ProductFactory(store=StoreFactory())
    with pytest.raises(CheckoutInvalid, match=exactly("No such product, or it is not for sale.")):
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=elsewhere.pk)])
    with pytest.raises(CheckoutInvalid, match=exactly("No such product, or it is not for sale.")):
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id="prod_nothing")])


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter your email address."),
        ("   ", "Enter your email address."),
        (None, "Enter your email address."),
        ("not-an-email", "Enter a valid email address."),
        ("a@b", "Enter a valid email address."),
        ("a b@example.com", "Enter a valid email address."),
    ],
)
def test_checkout_needs_a_valid_email(store, product, email, message):
    """The receipt and the library need an email address that can receive mail."""
    with pytest.raises(CheckoutInvalid, match=exactly(message)) as caught:
        checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])
    assert caught.value.param == "email"
    assert Checkout.objects.count() == 0


def test_email_normalize_lowercases_the_domain_only():
    """The domain is case-insensitive and lower-cased; the local part is kept as typed."""
    assert email_normalize("  Ana.Silva@Example.COM ") == "Ana.Silva@example.com"


def test_checkout_needs_between_one_and_fifty_products(store, product):
    """An empty checkout and one with more than 50 lines are refused."""
    with pytest.raises(CheckoutInvalid, match=exactly("A checkout needs at least one product.")):
        checkout_create(store=store, email="b@example.com", items=[])
    with pytest.raises(CheckoutInvalid, match=exactly("A checkout holds at most 50 products.")):
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)] * 51)


@pytest.mark.parametrize("quantity", [0, 101, -1, True])
def test_quantity_must_be_between_1_and_100(store, product, quantity):
    """A line's quantity is a whole number from 1 to 100."""
    with pytest.raises(CheckoutInvalid, match=exactly("Quantity must be between 1 and 100.")) as caught:
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk, quantity=quantity)])
    assert caught.value.param == "items[0].quantity"


def test_several_lines_add_up_and_errors_name_the_line(store, product, pwyw):
    """Lines multiply by quantity and add up; an error in the second line names items[1]."""
    checkout = checkout_create(
        store=store, email="b@example.com",
        items=[CheckoutItem(product_id=product.pk, quantity=3), CheckoutItem(product_id=pwyw.pk, amount=250)],
    )
    assert checkout.amount_total == 3 * 300 + 250
    with pytest.raises(AmountTooSmall) as caught:
        checkout_create(
            store=store, email="b@example.com",
            items=[CheckoutItem(product_id=product.pk), CheckoutItem(product_id=pwyw.pk, amount=1)],
        )
    assert caught.value.param == "items[1].amount"


def test_total_above_the_maximum_is_refused(store):
    """A total beyond the largest amount Stall handles is refused, not overflowed."""
    dear = ProductFactory(store=store, amount=MAX_AMOUNT)
    with pytest.raises(CheckoutInvalid, match=exactly("The total is too large.")):
        checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=dear.pk, quantity=2)])


def test_prices_are_frozen_when_the_checkout_opens(store, product):
    """A price change after the checkout opened does not change what the buyer pays."""
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    product.amount = 900
    product.save()
    checkout.refresh_from_db()
    assert checkout.amount_total == 300
    assert checkout.lines.get().unit_amount == 300


def test_checkout_uses_the_store_currency(creator):
    """A KRW store's checkout is in KRW, in whole won."""
    store = StoreFactory(owner=creator, currency="KRW")
    product = ProductFactory(store=store, amount=3000)
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    assert (checkout.currency, checkout.amount_total) == ("KRW", 3000)


def test_checkout_expires_after_the_configured_time(store, product, settings):
    """A checkout expires STALL_CHECKOUT_TTL_SECONDS after it opens."""
    settings.STALL_CHECKOUT_TTL_SECONDS = 600
    before = timezone.now()
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    assert before + timedelta(seconds=600) <= checkout.expires_at <= timezone.now() + timedelta(seconds=600)


def test_checkout_lock_open_refuses_an_expired_checkout(store, product):
    """Locking a checkout past its expiry raises CheckoutExpired, whether or not it was marked yet."""
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(CheckoutExpired, match=exactly("This checkout has expired; start again from the product page.")) as caught:
        checkout_lock_open(checkout_id=checkout.pk)
    assert (caught.value.code, caught.value.status) == ("checkout_expired", 409)
    Checkout.objects.filter(pk=checkout.pk).update(status=CheckoutStatus.EXPIRED, expires_at=timezone.now() + timedelta(days=1))
    with pytest.raises(CheckoutExpired):
        checkout_lock_open(checkout_id=checkout.pk)


def test_checkouts_expire_due_marks_only_open_checkouts_past_their_time(store, product):
    """The periodic sweep expires open checkouts past expiry and leaves the rest alone."""
    past = timezone.now() - timedelta(minutes=1)
    due = checkout_create(store=store, email="a@example.com", items=[CheckoutItem(product_id=product.pk)])
    fresh = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    done = checkout_create(store=store, email="c@example.com", items=[CheckoutItem(product_id=product.pk)])
    Checkout.objects.filter(pk=due.pk).update(expires_at=past)
    Checkout.objects.filter(pk=done.pk).update(expires_at=past, status=CheckoutStatus.COMPLETE)

    assert checkouts_expire_due() == 1
    assert checkouts_expire_due() == 0
    statuses = dict(Checkout.objects.values_list("pk", "status"))
    assert statuses == {due.pk: "expired", fresh.pk: "open", done.pk: "complete"}
