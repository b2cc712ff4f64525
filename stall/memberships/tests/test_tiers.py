"""Tiers: create, update, archive, gate posts; bad input is refused clearly and makes nothing."""

import pytest

from stall.catalog.models import Product, ProductKind, ProductStatus
from stall.catalog.selectors import products_public
from stall.memberships.errors import TierInvalid
from stall.memberships.models import Tier, TierGate, TierStatus
from stall.memberships.tiers import tier_archive, tier_create, tier_gates_set, tier_update
from stall.testing import StoreFactory

from .conftest import make_post

pytestmark = pytest.mark.django_db


def test_a_tier_has_a_membership_product_per_price_kept_off_the_store_page(store):
    """Monthly and yearly prices each get a published product of kind membership, not listed."""
    tier = tier_create(store=store, name="Gold", prices=[{"interval": "month", "amount": 500}, {"interval": "year", "amount": 5000}])
    prices = {p.interval: p for p in tier.prices.select_related("product")}
    assert {i: (p.amount, p.product.kind, p.product.status) for i, p in prices.items()} == {
        "month": (500, ProductKind.MEMBERSHIP, ProductStatus.PUBLISHED),
        "year": (5000, ProductKind.MEMBERSHIP, ProductStatus.PUBLISHED),
    }
    assert list(products_public(store=store)) == []


def test_a_tier_with_no_prices_is_free(store):
    tier = tier_create(store=store, name="Newsletter")
    assert tier.is_free and not Product.objects.filter(store=store).exists()


@pytest.mark.parametrize(
    ("prices", "message", "code"),
    [
        ([{"interval": "month", "amount": 0}], "A price must be more than 0. For a free tier, give it no prices.", "invalid_amount"),
        ([{"interval": "month", "amount": -100}], "A price must be more than 0", "invalid_amount"),
        ([{"interval": "fortnight", "amount": 100}], "Unknown interval “fortnight”: choose week, month, year.", "invalid_interval"),
        ([{"interval": "month", "amount": 100}, {"interval": "month", "amount": 200}], "A tier has one monthly price.", "invalid_tier"),
    ],
)
def test_bad_prices_are_refused_and_make_nothing(store, prices, message, code):
    with pytest.raises(TierInvalid, match=message) as caught:
        tier_create(store=store, name="Bad", prices=prices)
    assert caught.value.code == code
    assert not Tier.objects.exists() and not Product.objects.exists()


def test_cap_to_subscribe_needs_a_monthly_price(store):
    with pytest.raises(TierInvalid, match="Cap-to-subscribe needs a monthly price"):
        tier_create(store=store, name="Yearly", prices=[{"interval": "year", "amount": 1000}], cap_to_subscribe=True)


def test_update_changes_the_price_of_the_product(store, tier):
    tier_update(tier=tier, prices=[{"interval": "month", "amount": 400}], name="Patron")
    price = tier.prices.select_related("product").get()
    assert (price.amount, price.product.amount, Tier.objects.get(pk=tier.pk).name) == (400, 400, "Patron")


def test_archiving_a_tier_archives_its_products(store, tier):
    tier_archive(tier=tier)
    assert Tier.objects.get(pk=tier.pk).status == TierStatus.ARCHIVED
    assert tier.prices.get().product.status == ProductStatus.ARCHIVED


def test_gates_take_only_posts_of_the_tiers_store(store, tier):
    post = make_post(store)
    assert tier_gates_set(tier=tier, product_ids=[post.product_id]) == [post.product_id]
    other = make_post(StoreFactory(), title="Elsewhere")
    with pytest.raises(TierInvalid, match=f"No such post: {other.product_id}."):
        tier_gates_set(tier=tier, product_ids=[other.product_id])
    assert list(TierGate.objects.values_list("product_id", flat=True)) == [post.product_id]
