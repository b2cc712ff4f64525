"""Browser journey for the buy button (#11): the creator copies the button's code from the
product's dashboard page into a plain HTML page served from another origin; a visitor there buys in
the overlay without leaving the page, and with JavaScript off the same button is a plain link."""

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from stall.orders.models import Order
from stall.stores.services import store_update
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory, product_with_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def creator_site(tmp_path):
    """The creator's own site: a plain static page on another port of 127.0.0.1 (the live server is
    on localhost, so the two are different sites to the browser, as in real life)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_buy_button_opens_the_checkout_over_the_creators_page(live_server, browser, desktop, creator_site, shot):
    folder, site = creator_site
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Ada's Field Notes", slug="ada")
    product = product_with_file(store=store, name="Sample Pack", amount=300, content=b"samples\n")

    # The creator lists their site in Settings and copies the button from the product's page.
    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill(creator.email)
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    dash.goto(f"{live_server.url}/dashboard/ada/settings/")
    dash.get_by_label("Sites that may embed your checkout").fill(f"{site}/")
    dash.get_by_role("button", name="Save settings").click()
    expect(dash.get_by_text("Settings saved.")).to_be_visible()
    store.refresh_from_db()
    assert store.embed_origins == site
    dash.goto(f"{live_server.url}/dashboard/ada/products/{product.pk}/")
    code = dash.get_by_test_id("embed-code").input_value()
    shot(dash, "1-dashboard-code")
    (folder / "index.html").write_text(
        f"<!doctype html><html><head><title>Ada's site</title></head><body><h1>Ada's own site</h1><p>{code}</p></body></html>"
    )

    # A visitor on the creator's site: the overlay opens over the page, and the purchase is made in it.
    page = desktop.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{site}/index.html")
    page.get_by_role("link", name="Buy Sample Pack").click()
    dialog = page.get_by_role("dialog", name="Buy Sample Pack")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(f"{site}/index.html")  # still on the creator's page
    frame = page.frame_locator("iframe[title='Buy Sample Pack']")
    frame.get_by_label("Your email").fill("fan@example.com")
    shot(page, "2-overlay")
    frame.get_by_role("button", name="Continue").click()
    expect(frame.get_by_role("heading", name="Pay $3.00")).to_be_visible()
    frame.get_by_label(re.compile("4242")).check()
    frame.get_by_role("button", name="Pay $3.00").click()
    expect(frame.get_by_role("heading", name="Thank you!")).to_be_visible()
    shot(page, "3-paid-in-overlay")
    assert Order.objects.get(email="fan@example.com").amount_total == 300
    # Nothing but the creator's page, the script and the checkout's own pages was asked for.
    assert {re.match(r"https?://[^/]+", url).group(0) for url in requests} <= {site, live_server.url}

    # Closing the overlay returns to the page.
    page.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)

    # A site the store does not list cannot frame the checkout: the overlay offers the plain link.
    store_update(store=store, embed_origins="https://elsewhere.example")
    page.reload()
    page.get_by_role("link", name="Buy Sample Pack").click()
    expect(page.get_by_role("link", name="Open in a new tab")).to_be_visible()
    expect(page.frame_locator("iframe[title='Buy Sample Pack']").get_by_label("Your email")).to_have_count(0)


def test_the_buy_button_is_a_plain_link_without_javascript(live_server, browser, creator_site):
    folder, site = creator_site
    store = StoreFactory(owner=UserFactory(), name="Ada's Field Notes", slug="ada")
    product = product_with_file(store=store, name="Sample Pack", amount=300, content=b"samples\n")
    store_update(store=store, embed_origins=site)
    from django.test import RequestFactory

    from stall.dashboard.embeds import embed_button

    request = RequestFactory().get("/", HTTP_HOST=live_server.url.removeprefix("http://"))
    code = embed_button(request, path=f"/buy/{product.pk}/", label="Buy Sample Pack")["code"]
    (folder / "index.html").write_text(f"<!doctype html><html><body><p>{code}</p></body></html>")

    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{site}/index.html")
        page.get_by_role("link", name="Buy Sample Pack").click()
        expect(page).to_have_url(f"{live_server.url}/buy/{product.pk}/")
        page.get_by_label("Your email").fill("nojs@example.com")
        page.get_by_role("button", name="Continue").click()
        page.get_by_label(re.compile("4242")).check()
        page.get_by_role("button", name="Pay $3.00").click()
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    finally:
        context.close()
    assert Order.objects.filter(email="nojs@example.com").count() == 1


@pytest.mark.parametrize(("locale", "away", "close"), [("ko-KR", "새 탭에서 열기", "닫기"), ("pt-PT", "Abrir em uma nova aba", "Fechar")])
def test_the_overlay_speaks_the_visitors_language(live_server, browser, creator_site, locale, away, close):
    """A Korean visitor (and a Portuguese one, who gets Brazilian Portuguese by the language's
    first part) sees the overlay's link and Close button in their language, as the checkout in it."""
    folder, site = creator_site
    store = StoreFactory(owner=UserFactory(), name="Ada's Field Notes", slug="ada")
    product = product_with_file(store=store, name="Sample Pack", amount=300, content=b"samples\n")
    store_update(store=store, embed_origins="https://elsewhere.example")  # the frame stays empty: the link is offered
    from django.test import RequestFactory

    from stall.dashboard.embeds import embed_button

    request = RequestFactory().get("/", HTTP_HOST=live_server.url.removeprefix("http://"))
    code = embed_button(request, path=f"/buy/{product.pk}/", label="Sample Pack")["code"]
    (folder / "index.html").write_text(f"<!doctype html><html><body><p>{code}</p></body></html>")

    context = browser.new_context(locale=locale)
    try:
        page = context.new_page()
        page.goto(f"{site}/index.html")
        page.get_by_role("link", name="Sample Pack").click()
        expect(page.get_by_role("link", name=away)).to_be_visible()
        page.get_by_role("button", name=close).click()
        expect(page.get_by_role("dialog")).to_have_count(0)
    finally:
        context.close()
