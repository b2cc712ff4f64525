"""Bundles: a product made of other products at its own price; buying it grants each part."""

import json
import re

import pytest

from stall.catalog.errors import BundleInvalid
from stall.catalog.models import BundleItem, ProductStatus
from stall.catalog.services import product_create, product_update
from stall.checkout.services import CheckoutItem, checkout_create
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Entitlement, Order
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, StoreFactory, product_with_file


@pytest.fixture
def parts(store):
    return [product_with_file(store=store, name="Book", amount=1000, content=b"book\n"),
            product_with_file(store=store, name="Zine", amount=300, content=b"zine\n")]


@pytest.fixture
def bundle(store, parts):
    return product_create(store=store, name="Everything", amount=1100, kind="bundle", status=ProductStatus.PUBLISHED,
                          parts=[p.pk for p in parts])


def test_buying_a_bundle_grants_each_part_at_the_bundles_price(store, bundle, parts, client):
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=bundle.pk)])
    assert checkout.amount_total == 1100
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    order = Order.objects.get()
    assert order.amount_total == 1100 and [ln.product_id for ln in order.lines.all()] == [bundle.pk]
    granted = Entitlement.objects.filter(order=order)
    assert sorted(e.product_id for e in granted) == sorted(p.pk for p in parts)
    assert {e.line_id for e in granted} == {order.lines.get().pk}
    page = client.get(f"/checkout/{checkout.pk}/complete/").content.decode()
    assert "Everything: Book" in page and "Everything: Zine" in page
    links = re.findall(r'href="(/d/[^"]+)"', page)
    assert sorted(b"".join(client.get(link).streaming_content) for link in links) == [b"book\n", b"zine\n"]


def test_a_bundle_cannot_contain_itself(bundle):
    with pytest.raises(BundleInvalid, match="A bundle cannot contain itself.") as exc:
        product_update(product=bundle, parts=[bundle.pk])
    assert (exc.value.code, exc.value.param) == ("invalid_bundle", "parts")
    assert BundleItem.objects.filter(bundle=bundle).count() == 2  # unchanged


def test_a_bundle_cannot_contain_another_bundle(store, bundle, parts):
    with pytest.raises(BundleInvalid, match=r"A bundle cannot contain another bundle \(Everything\).") as exc:
        product_create(store=store, name="Bigger", amount=1500, kind="bundle", parts=[parts[0].pk, bundle.pk])
    assert exc.value.param == "parts"


def test_a_bundle_takes_only_its_stores_downloads_and_needs_parts_to_be_published(store, parts):
    other = ProductFactory(store=StoreFactory())
    with pytest.raises(BundleInvalid, match=f"No such product: {other.pk}."):
        product_create(store=store, name="Mixed", amount=100, kind="bundle", parts=[other.pk])
    with pytest.raises(BundleInvalid, match="Add at least one product to the bundle before publishing it."):
        product_create(store=store, name="Empty", amount=100, kind="bundle", status=ProductStatus.PUBLISHED)
    with pytest.raises(BundleInvalid, match="Only a bundle has parts."):
        product_create(store=store, name="Odd", amount=100, parts=[parts[0].pk])


def test_refunding_a_bundle_line_revokes_every_part(store, bundle):
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=bundle.pk)])
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    order = Order.objects.get()
    refund_create(store=store, order_id=order.pk, line_id=order.lines.get().pk)
    assert Entitlement.objects.filter(order=order, revoked_at__isnull=True).count() == 0


def test_api_creates_a_bundle_and_refuses_bad_parts(api, store, parts):
    response = api.post("/products", {"name": "Pack", "amount": 900, "kind": "bundle", "parts": [p.pk for p in parts],
                                      "status": "published"})
    assert response.status_code == 200, response.content
    created = json.loads(response.content)
    assert (created["kind"], created["parts"]) == ("bundle", [p.pk for p in parts])
    response = api.post(f"/products/{created['id']}", {"parts": [created["id"]]})
    assert response.status_code == 400
    assert json.loads(response.content)["error"] == {
        "code": "invalid_bundle", "message": "A bundle cannot contain itself.", "param": "parts",
    }
    response = api.post("/products", {"name": "Nested", "amount": 900, "kind": "bundle", "parts": [created["id"]]})
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["param"] == "parts"


def test_dashboard_makes_a_bundle_and_refuses_a_bundle_inside(client, creator, store, parts, bundle):
    client.force_login(creator)
    page = client.get(f"/dashboard/{store.slug}/products/new-bundle/").content.decode()
    assert "Book" in page and "Everything" not in page  # bundles are not offered as parts
    response = client.post(f"/dashboard/{store.slug}/products/new-bundle/",
                           {"name": "Pair", "amount": "9.00", "parts": [p.pk for p in parts], "status": "published"})
    assert response.status_code == 302, response.content.decode()
    pair = store.products.get(name="Pair")
    assert (pair.kind, pair.amount, [i.part_id for i in pair.bundle_items.all()]) == ("bundle", 900, [p.pk for p in parts])
    response = client.post(f"/dashboard/{store.slug}/products/{pair.pk}/parts/", {"parts": [bundle.pk]})
    assert response.status_code == 400  # not a choice: the form refuses it
    response = client.post(f"/dashboard/{store.slug}/products/{pair.pk}/parts/", {"parts": [parts[1].pk]})
    assert response.status_code == 302
    assert [i.part_id for i in pair.bundle_items.all()] == [parts[1].pk]


def test_a_bundle_paid_from_the_wallet_grants_each_part(store, bundle, parts):
    """The lean wallet spend leaves bundles to the general path, which grants the parts."""
    from stall.accounts.services import buyer_for_email
    from stall.wallets.services import wallet_top_up

    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=2000, currency="USD", payment_method="sandbox_visa")
    checkout = checkout_create(store=store, email=reader.email, items=[CheckoutItem(product_id=bundle.pk)])
    checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader)
    order = Order.objects.get(checkout=checkout)
    assert order.payment.rail == "wallet" and order.amount_total == 1100
    assert sorted(e.product_id for e in Entitlement.objects.filter(order=order)) == sorted(p.pk for p in parts)
