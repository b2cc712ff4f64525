"""The buy button on other sites: who may frame the checkout, the script, and link previews."""

import json
import re

import pytest

from stall.content.services import post_create, tip_jar_update
from stall.storefront.views import embed_js_bytes
from stall.stores.services import embed_origins_clean, store_update
from stall.testing import ProductFactory, buy

pytestmark = pytest.mark.django_db

DENY_ALL = "frame-ancestors 'none'"


def frame_policy(response) -> str:
    return re.search(r"frame-ancestors [^;]*", response["Content-Security-Policy"]).group(0)


@pytest.fixture
def product(store):
    return ProductFactory(store=store, name="Field notes", amount=300)


@pytest.fixture
def embedding(store):
    return store_update(store=store, embed_origins="https://creator.example\nhttp://localhost:8001")


def test_checkout_pages_are_framed_only_by_the_stores_listed_sites(client, embedding, product):
    """The buy page, the payment page and the paid order's page name the store's sites in
    frame-ancestors and drop X-Frame-Options; other pages stay unframeable."""
    allowed = "frame-ancestors https://creator.example http://localhost:8001"
    buy_page = client.get(f"/buy/{product.pk}/")
    assert (frame_policy(buy_page), buy_page.has_header("X-Frame-Options")) == (allowed, False)

    checkout = client.post(f"/buy/{product.pk}/", {"email": "fan@example.com"})
    pay_page = client.get(checkout["Location"])
    assert (pay_page.status_code, frame_policy(pay_page), pay_page.has_header("X-Frame-Options")) == (200, allowed, False)

    paid = client.post(checkout["Location"], {"payment_method": "sandbox_visa"})
    complete = client.get(paid["Location"])
    assert (complete.status_code, frame_policy(complete), complete.has_header("X-Frame-Options")) == (200, allowed, False)

    for other in (f"/s/{embedding.slug}/", f"/s/{embedding.slug}/{product.slug}/", "/login/", "/embed.js"):
        response = client.get(other)
        assert (frame_policy(response), response["X-Frame-Options"]) == (DENY_ALL, "DENY"), other


def test_a_store_without_sites_keeps_its_checkout_unframeable(client, store, product):
    response = client.get(f"/buy/{product.pk}/")
    assert (frame_policy(response), response["X-Frame-Options"]) == (DENY_ALL, "DENY")


def test_one_stores_sites_never_open_another_stores_checkout(client, embedding, creator):
    """Framing follows the store the page belongs to, not the visitor or another store's list."""
    from stall.testing import StoreFactory

    other = ProductFactory(store=StoreFactory(), amount=300)
    response = client.get(f"/buy/{other.pk}/")
    assert (frame_policy(response), response["X-Frame-Options"]) == (DENY_ALL, "DENY")


def test_post_and_tip_pages_are_framed_by_the_stores_sites(client, embedding):
    post = post_create(store=embedding, title="Diary", body="Hello\n\n<!-- more -->\n\nRest", amount=25, status="published")
    tip_jar_update(store=embedding, enabled=True)
    allowed = "frame-ancestors https://creator.example http://localhost:8001"
    for path in (f"/s/{embedding.slug}/posts/{post.slug}/", f"/s/{embedding.slug}/tips/new/"):
        response = client.get(path)
        assert (response.status_code, frame_policy(response), response.has_header("X-Frame-Options")) == (200, allowed, False)


@pytest.mark.parametrize("text, error", [
    ("example.com", "“example.com” is not a site's origin."),
    ("https://example.com/shop", "“https://example.com/shop” is not a site's origin."),
    ("https://example.com; script-src *", "“https://example.com;” is not a site's origin."),
    ("https://exa'mple.com", "“https://exa'mple.com” is not a site's origin."),
    ("javascript:alert(1)", "“javascript:alert(1)” is not a site's origin."),
    ("*", "“*” is not a site's origin."),
    ("https://example.com:99999", "“https://example.com:99999” is not a site's origin."),
    ("\n".join(f"https://s{n}.example" for n in range(21)), "List at most 20 sites."),
])
def test_a_bad_site_is_refused_by_name(text, error):
    from stall.stores.errors import StoreInvalid

    with pytest.raises(StoreInvalid, match=re.escape(error)) as caught:
        embed_origins_clean(text)
    assert caught.value.param == "embed_origins"


def test_sites_are_normalised():
    text = " HTTPS://Shop.Example/ \n\nhttps://*.example.org, http://localhost:8001 https://shop.example "
    assert embed_origins_clean(text) == "https://shop.example\nhttps://*.example.org\nhttp://localhost:8001"


def test_settings_show_a_bad_site_next_to_the_field_and_save_nothing(client, creator, store):
    client.force_login(creator)
    data = {"name": store.name, "slug": store.slug, "currency": "USD", "bio": "", "support_email": "",
            "embed_origins": "https://ok.example\nmy-site.com/page"}
    response = client.post(f"/dashboard/{store.slug}/settings/", data)
    assert response.status_code == 400
    assert "“my-site.com/page” is not a site&#x27;s origin." in response.content.decode()
    assert response.context["form"].errors["embed_origins"][0].startswith("“my-site.com/page” is not")
    store.refresh_from_db()
    assert store.embed_origins == ""

    data["embed_origins"] = "https://ok.example/"
    assert client.post(f"/dashboard/{store.slug}/settings/", data).status_code == 302
    store.refresh_from_db()
    assert store.embed_origins == "https://ok.example"


def test_the_script_is_small_and_asks_for_nothing_else(client, db):
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.content == embed_js_bytes()
    assert len(response.content) <= 10 * 1024
    # No request of its own: no fetch, XHR, import or script/image it adds; only the checkout's frame.
    for call in ("fetch(", "XMLHttpRequest", "import(", "createElement(\"script", "createElement(\"img", "sendBeacon"):
        assert call not in response.content.decode()


def test_the_script_carries_the_overlays_words_in_every_language(client, db):
    """The words the overlay shows (its "Open in a new tab" link, its Close button, the dialog's
    name) are written into the script from the catalogs, for the script to choose by the
    visitor's browser languages: none is left in English but the English entry."""
    script = client.get("/embed.js", headers={"accept-language": "ko"}).content.decode()
    words = json.loads(re.search(r"var WORDS = (\{.*?\});", script).group(1))
    assert words == {
        "en": {"checkout": "Checkout", "away": "Open in a new tab", "close": "Close"},
        "ko": {"checkout": "결제", "away": "새 탭에서 열기", "close": "닫기"},
        "pt-br": {"checkout": "Finalizar compra", "away": "Abrir em uma nova aba", "close": "Fechar"},
    }
    # The overlay reads its words from the table only.
    for english in ('"Open in a new tab"', '"Close"', '"Checkout"'):
        assert script.count(english) == 1, english
    # The same bytes whoever asks: caches may keep one copy.
    assert client.get("/embed.js", headers={"accept-language": "pt-br"}).content.decode() == script


def test_dashboard_pages_give_the_snippet(client, creator, store, product):
    client.force_login(creator)
    page = client.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()
    code = re.search(r'data-testid="embed-code">(.*?)</textarea>', page, re.S).group(1)
    assert code.startswith(f'&lt;a href=&quot;http://testserver/buy/{product.pk}/&quot; data-stall-overlay style=&quot;display:inline-block;')
    assert code.endswith('&gt;Buy Field notes&lt;/a&gt;\n&lt;script src=&quot;http://testserver/embed.js&quot; async&gt;&lt;/script&gt;')

    post = post_create(store=store, title="Diary <1>", body="Hello", amount=25, status="published")
    page = client.get(f"/dashboard/{store.slug}/posts/{post.pk}/").content.decode()
    assert f"http://testserver/s/{store.slug}/posts/{post.slug}/" in page
    assert "Read Diary &amp;lt;1&amp;gt;" in page  # escaped in the snippet, then again in the textarea

    tip_jar_update(store=store, enabled=True, title="Buy me a coffee")
    page = client.get(f"/dashboard/{store.slug}/tips/").content.decode()
    assert f"http://testserver/s/{store.slug}/tips/new/" in page and "Buy me a coffee&lt;/a&gt;" in page


def test_product_page_previews_well_when_shared(client, store):
    """Open Graph and Twitter card tags: plain-text description, escaped, absolute cover, price."""
    from stall.dashboard.tests.conftest import png

    product = ProductFactory(store=store, name='Notes "&" <b>more</b>', amount=1250,
                             description="**Bold** words & a [link](https://x.example) <script>alert(1)</script>")
    product.cover.save("cover.png", png(), save=True)
    page = client.get(f"/s/{store.slug}/{product.slug}/").content.decode()
    head = page.split("</head>")[0]
    assert '<meta property="og:title" content="Notes &quot;&amp;&quot; &lt;b&gt;more&lt;/b&gt;">' in head
    # Markdown shows raw HTML as text; as plain text it stays text, escaped in the attribute.
    described = "Bold words &amp; a link &lt;script&gt;alert(1)&lt;/script&gt;"
    assert f'<meta property="og:description" content="{described}">' in head
    assert f'<meta name="twitter:description" content="{described}">' in head
    assert re.search(r'<meta property="og:image" content="http://testserver/media/covers/cover[^"]*\.png">', head)
    assert '<meta name="twitter:card" content="summary_large_image">' in head
    assert '<meta property="product:price:amount" content="12.50">' in head
    assert '<meta property="product:price:currency" content="USD">' in head
    assert f'<meta property="og:url" content="http://testserver/s/{store.slug}/{product.slug}/">' in head
    assert "<script>" not in head


def test_store_page_previews_well_when_shared(client, store):
    store.bio = "Zines about *birds*.\n\nNew every month."
    store.save()
    head = client.get(f"/s/{store.slug}/").content.decode().split("</head>")[0]
    assert f'<meta property="og:title" content="{store.name}">' in head
    assert '<meta property="og:description" content="Zines about birds. New every month.">' in head
    assert '<meta name="twitter:card" content="summary">' in head
    assert "og:image" not in head and "product:price" not in head


def test_a_paid_order_still_works_with_sites_listed(embedding, product):
    """Listing sites changes headers only: buying through the services is untouched."""
    assert buy(store=embedding, product=product).status == "paid"


def test_the_checkout_in_a_frame_needs_no_cookie_but_refuses_other_sites_forms(product):
    """In the overlay the browser sends no cookie, so the checkout's forms are protected by where
    the request comes from: this site's own page passes, another site's form is refused."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    data = {"email": "fan@example.com"}
    refused = browser.post(f"/buy/{product.pk}/", data, HTTP_SEC_FETCH_SITE="cross-site", HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    refused = browser.post(f"/buy/{product.pk}/", data, HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    made = browser.post(f"/buy/{product.pk}/", data, HTTP_SEC_FETCH_SITE="same-origin", HTTP_ORIGIN="http://testserver")
    assert made.status_code == 302 and made["Location"].startswith("/checkout/chk_")

    pay_url = made["Location"]
    forged = browser.post(pay_url, {"payment_method": "sandbox_visa"}, HTTP_SEC_FETCH_SITE="same-site")
    assert forged.status_code == 403
    paid = browser.post(pay_url, {"payment_method": "sandbox_visa"}, HTTP_ORIGIN="http://testserver")
    assert (paid.status_code, paid["Location"]) == (302, pay_url + "complete/")


def test_other_pages_keep_the_cookie_check(creator, store):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(creator)
    response = browser.post(f"/dashboard/{store.slug}/settings/", {"name": "x"}, HTTP_SEC_FETCH_SITE="same-origin")
    assert response.status_code == 403
