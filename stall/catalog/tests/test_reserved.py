import pytest

from stall.catalog.errors import ProductInvalid
from stall.catalog.models import ProductKind
from stall.catalog.services import product_create
from stall.testing import ProductFactory


def test_a_product_cannot_take_the_address_of_the_posts_page(store):
    """“posts” under a store is the posts page, so no product may use it as its address."""
    with pytest.raises(ProductInvalid, match="“posts” is reserved"):
        product_create(store=store, name="Posts", amount=100)


@pytest.mark.django_db
def test_only_listed_products_have_a_payment_link(client, store):
    """A tip jar's or a post's product answers 404 on /buy/: they are paid on their own pages."""
    tip = ProductFactory(store=store, kind=ProductKind.TIP, price_type="pay_what_you_want", amount=100)
    post = ProductFactory(store=store, kind=ProductKind.POST, amount=25)
    download = ProductFactory(store=store)
    assert client.get(f"/buy/{tip.pk}/").status_code == 404
    assert client.get(f"/buy/{post.pk}/").status_code == 404
    assert client.get(f"/buy/{download.pk}/").status_code == 200
