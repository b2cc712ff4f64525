import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import TestCase

from stall.catalog.models import ProductKind, ProductStatus
from stall.catalog.services import product_create
from stall.checkout.services import CheckoutItem, checkout_create
from stall.commissions.services import commission_reserve, service_offer_set
from stall.orders.checkout_pay import checkout_confirm


def upload(name="ref.txt", content=b"a sketch\n"):
    file = ContentFile(content, name=name)
    file.content_type = "text/plain"
    return file


def after_commit():
    """Run what waits for the commit (the emails' tasks) at the end of the block, as it would run
    after the real commit; the test's own transaction never commits."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def reserve(*, store, product, email="fan@example.com", brief="A fox in the snow, A4.", files=()):
    """The buy page's step: a checkout with the brief, in one transaction."""
    with transaction.atomic():
        checkout = checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])
        commission = commission_reserve(checkout=checkout, brief=brief, files=files)
    return checkout, commission


def order_commission(*, store, product, email="fan@example.com", brief="A fox in the snow, A4.", files=(),
                     payment_method="sandbox_visa"):
    """A commission ordered and paid as a buyer does it; returns it refreshed."""
    checkout, commission = reserve(store=store, product=product, email=email, brief=brief, files=files)
    with after_commit():
        checkout_confirm(checkout_id=checkout.pk, payment_method=payment_method)
    commission.refresh_from_db()
    return commission


@pytest.fixture
def service(store):
    product = product_create(store=store, name="Pet portrait", amount=5000, kind=ProductKind.SERVICE,
                             status=ProductStatus.PUBLISHED)
    service_offer_set(product=product, slots=3, auto_accept_days=7)
    return product
