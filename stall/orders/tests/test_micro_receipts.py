import pytest
from django.core import mail

from stall.accounts.services import buyer_for_email
from stall.catalog.models import Product, ProductKind
from stall.orders.models import Entitlement
from stall.testing import buy
from stall.wallets.allowances import allowance_grant, charge_create
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def test_wallet_purchases_send_no_receipt_but_card_purchases_do(store, product, django_capture_on_commit_callbacks):
    """A card purchase is emailed a receipt; a one-click wallet purchase is not (the wallet history is its record)."""
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.orders.checkout_pay import checkout_confirm

    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=product, email="reader@example.com")
        checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk)])
        checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=buyer)
    assert [m.subject for m in mail.outbox] == [f"Your receipt from {store.name}"]


def test_an_api_charge_leaves_nothing_in_the_library(store, client):
    """A pay-per-call charge is an order but not something to keep: no entitlement, no library entry."""
    buyer = buyer_for_email(email="player@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    from stall.accounts.models import Customer

    customer = Customer.objects.get(store=store, email=buyer.email)
    charge_create(store=store, customer_id=customer.pk, amount=10, currency="USD", description="100 API calls")
    assert not Entitlement.objects.filter(product__kind=ProductKind.CHARGE).exists()
    charge_product = Product.objects.get(store=store, kind=ProductKind.CHARGE)
    assert client.get(f"/s/{store.slug}/{charge_product.slug}/").status_code == 404
