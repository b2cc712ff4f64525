"""A buyer's session (services.buyer_sign_in, buyer_sign_out): kept in the database, written
when it changes and never on an ordinary request, a new key at sign-in, void after sign-out."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.catalog.models import ProductStatus
from stall.content.services import post_create
from stall.orders.models import Entitlement
from stall.wallets.selectors import wallet_get
from stall.wallets.services import wallet_top_up

EMAIL = "reader@example.com"


@pytest.fixture
def buyer(db):
    buyer = buyer_for_email(email=EMAIL)
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def browser():
    """A test client that checks CSRF tokens, as a browser's requests are checked."""
    return Client(enforce_csrf_checks=True)


def sign_in(client) -> None:
    response = client.get(urlsplit(buyer_magic_link(email=EMAIL)).path)
    assert response.status_code == 302


def session_statements(queries) -> list[str]:
    """The first word of each statement that touched the session table."""
    return [q["sql"].split()[0].upper() for q in queries if "django_session" in q["sql"]]


def test_a_signed_in_buyers_pages_and_unlocks_never_write_the_session(browser, store, buyer):
    """After sign-in, the wallet page, a post page, a one-click unlock (POST, CSRF checked, a
    flash message after it) and the page it leads to each read the session row once and write
    nothing to it: no row is written on every request."""
    post = post_create(
        store=store, title="Field notes", amount=25, body="Free.\n\nMore.\n\nPaid.",
        status=ProductStatus.PUBLISHED,
    )
    page = f"/s/{store.slug}/posts/{post.slug}/"
    sign_in(browser)

    with CaptureQueriesContext(connection) as wallet_page:
        assert browser.get("/wallet/").status_code == 200
    with CaptureQueriesContext(connection) as post_page:
        html = browser.get(page).content.decode()
    assert "Field notes" in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {"csrfmiddlewaretoken": token, "method": "wallet"}
    with CaptureQueriesContext(connection) as unlock:
        response = browser.post(f"{page}unlock/", form)
    with CaptureQueriesContext(connection) as after:
        shown = browser.get(page).content.decode()

    assert response.status_code == 302
    assert Entitlement.objects.filter(product=post.product, email=EMAIL).count() == 1
    assert wallet_get(buyer=buyer, currency="USD").account.balance == 475
    assert "Unlocked for $0.25 from your wallet." in shown
    requests = (wallet_page, post_page, unlock, after)
    assert [session_statements(r.captured_queries) for r in requests] == [["SELECT"]] * 4


def test_signing_in_gives_the_browser_a_new_session_key(client, buyer):
    """A session key planted before sign-in (session fixation) is not the one that gets signed
    in: the magic link moves the session to a new key and the old one names no buyer."""
    planted = SessionStore()
    planted["content_card_checkouts"] = ["chk_planted"]
    planted.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key

    sign_in(client)

    signed_in_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in_key != planted.session_key
    assert SessionStore(session_key=signed_in_key).get("buyer_id") == buyer.pk
    assert SessionStore(session_key=planted.session_key).load() == {}
    stranger = Client()
    stranger.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert stranger.get("/wallet/")["Location"] == "/library/?next=%2Fwallet%2F"


def test_signing_out_voids_every_copy_of_the_session_cookie(client, buyer):
    """A copy of the session cookie taken while signed in (another tab, a stolen cookie) is
    signed out too: the buyer is removed from the session's row, not from one cookie."""
    sign_in(client)
    copy = Client()
    copy.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert copy.get("/wallet/").status_code == 200

    assert client.post("/library/logout/")["Location"] == "/library/"

    assert copy.get("/wallet/")["Location"] == "/library/?next=%2Fwallet%2F"
    assert client.get("/wallet/")["Location"] == "/library/?next=%2Fwallet%2F"
