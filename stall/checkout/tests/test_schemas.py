"""The API shape of a checkout: its pages' addresses, reversed once and filled with its id."""

import pytest
from django.conf import settings
from django.urls import reverse, set_script_prefix

from stall.checkout.schemas import checkout_out
from stall.checkout.services import CheckoutItem, checkout_create

pytestmark = pytest.mark.django_db


def test_each_checkout_gets_its_own_pay_page_under_the_script_prefix_in_force(store, product):
    """Two checkouts, each its own address; a Stall served under /shop/ (SCRIPT_NAME) says so."""
    first, second = (checkout_create(store=store, email=f"b{i}@example.com", items=[CheckoutItem(product_id=product.pk)])
                     for i in range(2))
    assert checkout_out(first)["url"] == f"{settings.BASE_URL}/checkout/{first.pk}/"
    assert checkout_out(second)["url"] == settings.BASE_URL + reverse("checkout:pay", args=[second.pk])
    set_script_prefix("/shop/")
    try:
        assert checkout_out(first)["url"] == f"{settings.BASE_URL}/shop/checkout/{first.pk}/"
    finally:
        set_script_prefix("/")
