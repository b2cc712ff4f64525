"""The storefront: the front page, a store's page and a product's page."""

import re

import pytest

from stall.catalog.models import PriceType, ProductStatus
from stall.testing import ProductFactory, StoreFactory, product_with_file

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def price_shown(page: str) -> str:
    """The text of the product page's price line."""
    return re.search(r'<p class="price">\s*(.*?)\s*</p>', page, re.S).group(1)


def test_front_page_goes_straight_to_the_only_store(client, store):
    """With one store, the front page is that store."""
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, f"/s/{store.slug}/")


def test_front_page_lists_several_stores(client):
    """With several stores, the front page links to each."""
    first, second = StoreFactory(name="Alpha"), StoreFactory(name="Beta")
    response = client.get("/")
    assert response.status_code == 200
    assert f'<a href="/s/{first.slug}/">Alpha</a>' in text(response)
    assert f'<a href="/s/{second.slug}/">Beta</a>' in text(response)
    assert '<a class="btn" href="/signup/">Start selling</a>' in text(response)


def test_front_page_with_no_store_is_the_landing_page(client, db):
    """A fresh Stall says what it is and leads to sign-up and log-in."""
    page = text(client.get("/"))

    assert "<h1>Sell your work directly to the people who want it.</h1>" in page
    assert '<a class="btn" href="/signup/">Start selling</a>' in page
    assert '<a class="btn btn-secondary" href="/login/">Log in</a>' in page
    assert "Stores</h2>" not in page


def test_front_page_for_a_signed_in_creator_leads_to_the_dashboard(client, store):
    """The lone store's creator, signed in, gets the landing page with their dashboard, not a
    redirect to their own store."""
    client.force_login(store.owner)

    response = client.get("/")

    assert response.status_code == 200
    assert '<a class="btn" href="/dashboard/">Go to your dashboard</a>' in text(response)
    assert "Start selling" not in text(response)


def test_store_page_leads_newcomers_to_sign_up(client, store):
    """Where the lone store is the front page, its footer is the way to sign-up."""
    page = text(client.get(f"/s/{store.slug}/"))

    assert 'Powered by Stall · <a href="/signup/">Open your own store</a>' in page


def test_store_page_lists_published_products_only(client, store):
    """The store page shows published products with their prices and hides drafts and archived ones."""
    ProductFactory(store=store, name="Field notes", amount=300)
    ProductFactory(store=store, name="Tip jar", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=0)
    ProductFactory(store=store, name="Poster", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=200)
    ProductFactory(store=store, name="Secret draft", status=ProductStatus.DRAFT)
    ProductFactory(store=store, name="Old thing", status=ProductStatus.ARCHIVED)
    response = client.get(f"/s/{store.slug}/")
    assert response.status_code == 200
    page = text(response)
    assert f"<h1 style=\"margin:0\">{store.name}</h1>" in page
    assert "Field notes" in page and "$3.00" in page
    assert "Free or pay what you want" in page
    assert "$2.00+" in page
    assert "Secret draft" not in page
    assert "Old thing" not in page


def test_store_bio_is_rendered_markdown_without_scripts(client, store):
    """The creator's bio is Markdown; a script in it is shown as text."""
    store.bio = "## About\n\n<script>alert(1)</script>"
    store.save()
    page = text(client.get(f"/s/{store.slug}/"))
    assert "<h2>About</h2>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_unknown_store_is_the_404_page(client):
    """An address that is no store answers the site's 404 page."""
    response = client.get("/s/nobody-here/")
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in text(response)


def test_product_page_shows_price_description_files_and_buy_link(client, store):
    """A published product's page shows its price, its Markdown description, its files and a Buy link."""
    product = product_with_file(store=store, name="Zine", amount=300, description="**Issue 1** of the zine.")
    response = client.get(f"/s/{store.slug}/{product.slug}/")
    assert response.status_code == 200
    page = text(response)
    assert '<h1 style="margin:0">Zine</h1>' in page
    assert price_shown(page) == "$3.00"
    assert "<strong>Issue 1</strong> of the zine." in page
    assert "<li>zine.txt (14 B)</li>" in page
    assert f'href="/buy/{product.pk}/">Buy</a>' in page


def test_free_product_offers_to_get_it_free(client, store):
    """A free product's button says so."""
    product = ProductFactory(store=store, amount=0)
    page = text(client.get(f"/s/{store.slug}/{product.slug}/"))
    assert price_shown(page) == "Free"
    assert f'href="/buy/{product.pk}/">Get it free</a>' in page


def test_pay_what_you_want_product_shows_minimum_and_suggestion(client, store):
    """A pay-what-you-want product shows its minimum and the suggested amount."""
    product = ProductFactory(store=store, price_type=PriceType.PAY_WHAT_YOU_WANT, amount=200, suggested_amount=500)
    page = text(client.get(f"/s/{store.slug}/{product.slug}/"))
    assert price_shown(page) == "$2.00+"
    assert "Suggested: $5.00" in page


@pytest.mark.parametrize(
    ("language", "price"), [("en", "$3.00"), ("pt-br", "US$\xa03,00"), ("ko", "US$3.00")]
)
def test_prices_follow_the_buyers_language(client, store, language, price):
    """Prices are formatted for the language the browser asks for."""
    product = ProductFactory(store=store, amount=300)
    page = text(client.get(f"/s/{store.slug}/{product.slug}/", headers={"accept-language": language}))
    assert price_shown(page) == price


@pytest.mark.parametrize("status", [ProductStatus.DRAFT, ProductStatus.ARCHIVED])
def test_unpublished_product_is_the_404_page(client, store, status):
    """A draft or archived product has no public page."""
    product = ProductFactory(store=store, status=status)
    response = client.get(f"/s/{store.slug}/{product.slug}/")
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in text(response)


def test_product_is_only_found_under_its_own_store(client, store):
    """Another store's product cannot be reached under this store's address."""
    elsewhere = ProductFactory(store=StoreFactory())
    assert client.get(f"/s/{store.slug}/{elsewhere.slug}/").status_code == 404
    assert client.get(f"/s/{elsewhere.store.slug}/{elsewhere.slug}/").status_code == 200
