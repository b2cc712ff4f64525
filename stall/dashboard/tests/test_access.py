"""Only the store's creator reaches its dashboard; others get 404 and anonymous visitors the login page."""

import pytest
from django.core.files.base import ContentFile

from stall.catalog.models import Product, ProductFile
from stall.catalog.services import product_file_add
from stall.integrations.models import ApiKey
from stall.integrations.services import api_key_create
from stall.payments.models import Refund
from stall.stores.models import Store
from stall.testing import ProductFactory, buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(store):
    product = ProductFactory(store=store)
    file = product_file_add(product=product, upload=ContentFile(b"data", name="a.txt"))
    order = buy(store=store, product=product)
    key, _ = api_key_create(store=store, name="k")
    return {"store": store, "product": product, "file": file, "order": order, "key": key}


def pages(o):
    s = o["store"].slug
    return [
        f"/dashboard/{s}/",
        f"/dashboard/{s}/settings/",
        f"/dashboard/{s}/products/",
        f"/dashboard/{s}/products/new/",
        f"/dashboard/{s}/products/{o['product'].pk}/",
        f"/dashboard/{s}/orders/",
        f"/dashboard/{s}/orders/{o['order'].pk}/",
        f"/dashboard/{s}/api-keys/",
    ]


def posts(o):
    s, p = o["store"].slug, o["product"].pk
    return [
        (f"/dashboard/{s}/settings/", {"name": "Stolen", "slug": "stolen", "bio": "", "currency": "USD", "support_email": ""}),
        (f"/dashboard/{s}/products/new/", {"name": "Planted", "price_type": "fixed", "amount": "1", "status": "draft",
                                          "download_limit": "3"}),
        (f"/dashboard/{s}/products/{p}/", {"name": "Stolen", "price_type": "fixed", "amount": "1", "status": "draft",
                                           "download_limit": "3"}),
        (f"/dashboard/{s}/products/{p}/files/", {"files": [ContentFile(b"x", name="planted.txt")]}),
        (f"/dashboard/{s}/products/{p}/files/{o['file'].pk}/delete/", {}),
        (f"/dashboard/{s}/orders/{o['order'].pk}/", {"amount": "", "reason": ""}),
        (f"/dashboard/{s}/api-keys/", {"name": "planted"}),
        (f"/dashboard/{s}/api-keys/{o['key'].pk}/revoke/", {}),
    ]


def assert_untouched(o):
    store = Store.objects.get(pk=o["store"].pk)
    product = Product.objects.get(pk=o["product"].pk)
    assert (store.name, store.slug) == (o["store"].name, o["store"].slug)
    assert product.name == o["product"].name
    assert Product.objects.count() == 1
    assert list(ProductFile.objects.values_list("pk", flat=True)) == [o["file"].pk]
    assert not Refund.objects.exists()
    assert list(ApiKey.objects.values_list("pk", "revoked_at")) == [(o["key"].pk, None)]


def test_another_creator_gets_404_everywhere(client, objects, other_creator):
    """Every page and every form of the store answers 404 to another creator, and nothing changes."""
    client.force_login(other_creator)

    answers = {url: client.get(url).status_code for url in pages(objects)}
    answers |= {f"POST {url}": client.post(url, data).status_code for url, data in posts(objects)}

    assert answers == {url: 404 for url in answers}
    assert_untouched(objects)


def test_another_creator_gets_404_for_objects_of_this_store_under_their_own(client, objects, other_creator):
    """Ids of this store's product, file, order and key give 404 under the other creator's own store."""
    from stall.testing import StoreFactory

    own = StoreFactory(owner=other_creator)
    client.force_login(other_creator)
    moved = {**objects, "store": own}
    urls = [u for u in pages(moved) if objects["product"].pk in u or objects["order"].pk in u]

    answers = {url: client.get(url).status_code for url in urls}
    answers |= {f"POST {url}": client.post(url, data).status_code for url, data in posts(moved) if "/new/" not in url
                and not url.endswith("/settings/") and not url.endswith("/api-keys/")}

    assert len(answers) == 7
    assert answers == {url: 404 for url in answers}
    assert_untouched(objects)


def test_unknown_ids_are_404(dash, store):
    """Made-up ids in the store's own dashboard are 404, not 500."""
    s = store.slug
    urls = [f"/dashboard/{s}/products/prod_nope/", f"/dashboard/{s}/orders/ord_nope/", "/dashboard/no-such-store/"]

    assert [dash.get(u).status_code for u in urls] == [404, 404, 404]
    assert dash.post(f"/dashboard/{s}/api-keys/key_nope/revoke/").status_code == 404


def test_anonymous_visitor_is_sent_to_login(client, objects):
    """Without a session every dashboard page redirects to the login page, and posts change nothing."""
    urls = ["/dashboard/", "/dashboard/new-store/", *pages(objects)]

    locations = {url: client.get(url)["Location"] for url in urls}
    for url, data in posts(objects):
        assert client.post(url, data).status_code == 302

    assert locations == {url: f"/login/?next={url}" for url in urls}
    assert_untouched(objects)
