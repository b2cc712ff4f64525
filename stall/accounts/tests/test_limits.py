"""Abuse limits on the account pages (log in, sign up, sign-in links) and single-use sign-in links."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail, signing

from stall.accounts.models import MagicLinkUse, User
from stall.accounts.services import (
    MagicLinkInvalid,
    MagicLinkUsed,
    buyer_magic_link,
    buyer_magic_link_use,
    login_attempt_count,
    magic_link_request_allowed,
)
from stall.accounts.tasks import magic_link_uses_prune
from stall.core.limits import RateLimited
from stall.testing import FACTORY_PASSWORD

pytestmark = pytest.mark.django_db

WINDOW_START = datetime(2030, 1, 1, tzinfo=UTC)  # a window boundary of every period used here
LIMITED = "Too many attempts. Try again in 15 minutes."


@pytest.fixture
def limits(settings):
    def set_limits(**rates):
        settings.STALL_LIMITS = {**settings.STALL_LIMITS, **rates}
    return set_limits


@pytest.fixture
def at_window_start():
    with time_machine.travel(WINDOW_START, tick=False) as traveller:
        yield traveller


def text(response) -> str:
    return response.content.decode()


def log_in(client, email, password="wrong password", address="198.51.100.1"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=address)


# --- Log in ---------------------------------------------------------------------------------


def test_thirty_wrong_passwords_meet_the_default_limit_of_ten(client, creator, at_window_start):
    """The issue's attack with the shipped limits: the 11th attempt on an account is refused."""
    statuses = [log_in(client, creator.email).status_code for _ in range(30)]
    assert statuses == [400] * 10 + [429] * 20


def test_a_limited_log_in_says_when_to_try_again_and_checks_no_password(client, creator, limits, at_window_start):
    """Past the limit even the right password is refused, with the wait in the form and in Retry-After."""
    limits(login_email="3/15m")
    for _ in range(3):
        assert log_in(client, creator.email).status_code == 400
    response = log_in(client, creator.email.upper(), password=FACTORY_PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert LIMITED in text(response)
    assert "_auth_user_id" not in client.session

    at_window_start.shift(15 * 60)
    response = log_in(client, creator.email, password=FACTORY_PASSWORD)
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")


def test_log_in_is_limited_per_address_across_accounts(client, creator, limits, at_window_start):
    limits(login_address="3/15m")
    for n in range(3):
        assert log_in(client, f"guess{n}@example.com").status_code == 400
    assert log_in(client, creator.email, password=FACTORY_PASSWORD).status_code == 429
    response = log_in(client, creator.email, password=FACTORY_PASSWORD, address="198.51.100.2")
    assert response.status_code == 302


def test_an_empty_log_in_form_is_not_counted(client, creator, limits, at_window_start):
    """Nothing is checked without an email and a password, so nothing is counted."""
    limits(login_email="1/15m", login_address="1/15m")
    for _ in range(3):
        response = client.post("/login/", {"username": "", "password": ""})
        assert response.status_code == 400 and "This field is required." in text(response)
    assert log_in(client, creator.email, password=FACTORY_PASSWORD).status_code == 302


def test_login_attempt_count_service(limits, at_window_start):
    limits(login_email="2/15m")
    login_attempt_count(email="Ada@Example.com", address="198.51.100.1")
    login_attempt_count(email="ada@example.com ", address="198.51.100.2")
    with pytest.raises(RateLimited):  # the same account, however it is typed
        login_attempt_count(email="ADA@example.com", address="198.51.100.3")


# --- Sign up --------------------------------------------------------------------------------


def test_sign_up_is_limited_per_address_and_a_limited_one_creates_nothing(client, limits, at_window_start):
    limits(signup_address="2/1h")
    for n in range(2):
        response = client.post("/signup/", {"email": f"new{n}@example.com", "password": "a long pass phrase"})
        assert response.status_code == 302
        client.logout()
    response = client.post("/signup/", {"email": "new2@example.com", "password": "a long pass phrase"})
    assert response.status_code == 429
    assert response["Retry-After"] == "3600"
    assert "Too many attempts. Try again in 60 minutes." in text(response)
    assert not User.objects.filter(email="new2@example.com").exists()


def test_sign_ups_that_ask_whether_an_email_is_taken_are_counted(client, creator, limits, at_window_start):
    """"An account with this email already exists" tells who has an account: each asking counts."""
    limits(signup_address="2/1h")
    for _ in range(2):
        response = client.post("/signup/", {"email": creator.email, "password": "a long pass phrase"})
        assert response.status_code == 400
    response = client.post("/signup/", {"email": creator.email, "password": "a long pass phrase"})
    assert response.status_code == 429
    assert "already exists" not in text(response)


# --- Sign-in links --------------------------------------------------------------------------


def _ask_library(client, email, address):
    return client.post("/library/", {"email": email}, REMOTE_ADDR=address)


def _ask_reader(client, email, address, store):
    return client.post(f"/s/{store.slug}/reader/sign-in/", {"email": email}, REMOTE_ADDR=address, follow=True)


def _ask_allowances(client, email, address, store):
    return client.post("/wallet/allowances/sign-in/", {"email": email}, REMOTE_ADDR=address, follow=True)


ASKS = {"library": _ask_library, "reader": _ask_reader, "allowances": _ask_allowances}


def ask(page, client, email, address="198.51.100.1", store=None):
    if page == "library":
        return _ask_library(client, email, address)
    return ASKS[page](client, email, address, store)


@pytest.mark.parametrize("page", ASKS)
def test_sign_in_links_past_the_limit_send_nothing_and_say_the_same(
    client, store, page, limits, at_window_start, django_capture_on_commit_callbacks
):
    """Twenty asks for one address send the limit's worth of emails; the answer never changes."""
    limits(magic_link_email="3/1h")
    answers = []
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(20):
            response = ask(page, client, "Reader@Example.com", address=f"198.51.100.{n}", store=store)
            assert response.status_code == 200
            answers.append(re.sub(r"csrfmiddlewaretoken\" value=\"\w+", "", text(response)))
    assert len(mail.outbox) == 3
    assert len(set(answers)) == 1

    at_window_start.shift(3600)
    with django_capture_on_commit_callbacks(execute=True):
        ask(page, client, "reader@example.com", store=store)
    assert len(mail.outbox) == 4


@pytest.mark.parametrize("page", ASKS)
def test_sign_in_links_are_limited_per_address_across_emails(
    client, store, page, limits, at_window_start, django_capture_on_commit_callbacks
):
    limits(magic_link_address="2/1h")
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            assert ask(page, client, f"reader{n}@example.com", store=store).status_code == 200
        ask(page, client, "other@example.com", address="198.51.100.99", store=store)
    assert [m.to for m in mail.outbox] == [["reader0@example.com"], ["reader1@example.com"], ["other@example.com"]]


def test_magic_link_request_allowed_service(limits, at_window_start):
    limits(magic_link_email="1/1h", magic_link_address="5/1h")
    assert magic_link_request_allowed(email="Reader@Example.com", address="198.51.100.1")
    assert not magic_link_request_allowed(email="reader@example.com", address="198.51.100.2")
    assert magic_link_request_allowed(email="other@example.com", address="198.51.100.2")


# --- Sign-in links work once ----------------------------------------------------------------


def test_a_sign_in_link_signs_in_once():
    link = buyer_magic_link(email="Reader@Example.com")
    token = urlsplit(link).path.split("/")[3]
    assert buyer_magic_link_use(token=token) == "reader@example.com"
    with pytest.raises(MagicLinkUsed):
        buyer_magic_link_use(token=token)
    # Another link for the same buyer is unaffected: an older receipt's link still signs in.
    assert buyer_magic_link_use(token=urlsplit(buyer_magic_link(email="reader@example.com")).path.split("/")[3])


@pytest.mark.parametrize("token", [
    "nonsense",
    signing.dumps("reader@example.com", salt="stall.accounts.buyer-magic-link", compress=True),  # before nonces
    signing.dumps({"e": "reader@example.com", "n": "x"}, salt="another salt", compress=True),
])
def test_links_that_are_not_ours_or_are_from_before_single_use_are_refused(token):
    with pytest.raises(MagicLinkInvalid) as refused:
        buyer_magic_link_use(token=token)
    assert type(refused.value) is MagicLinkInvalid
    assert not MagicLinkUse.objects.exists()


def test_following_a_used_link_again_does_not_sign_in(client):
    path = urlsplit(buyer_magic_link(email="reader@example.com")).path
    response = client.get(path)
    assert (response.status_code, response["Location"]) == (302, "/library/")
    assert client.session["buyer_email"] == "reader@example.com"

    other = type(client)()  # someone else who has the link: a forwarded email, a shared screen
    response = other.get(path)
    assert response.status_code == 400
    page = text(response)
    assert "This sign-in link has already been used. Ask for a new one below." in page
    assert 'name="email"' in page
    assert "buyer_email" not in other.session


def test_used_links_are_forgotten_once_they_would_have_expired(settings):
    settings.STALL_MAGIC_LINK_TTL_SECONDS = 3600
    with time_machine.travel(WINDOW_START, tick=False) as traveller:
        old = urlsplit(buyer_magic_link(email="reader@example.com")).path.split("/")[3]
        buyer_magic_link_use(token=old)
        traveller.shift(1800)
        recent = urlsplit(buyer_magic_link(email="reader@example.com")).path.split("/")[3]
        buyer_magic_link_use(token=recent)
        traveller.shift(timedelta(seconds=1801))
        assert magic_link_uses_prune.call_local() == 1
        assert MagicLinkUse.objects.count() == 1
        with pytest.raises(MagicLinkUsed):
            buyer_magic_link_use(token=recent)
        with pytest.raises(MagicLinkInvalid) as refused:  # forgotten, and expired
            buyer_magic_link_use(token=old)
        assert type(refused.value) is MagicLinkInvalid
