import pytest
from django.contrib.auth.hashers import identify_hasher

from stall.accounts.models import User

pytestmark = pytest.mark.django_db


def test_signup_creates_account_logs_in_and_goes_to_dashboard(client):
    """Signing up stores an argon2-hashed password, logs the creator in and leads to the dashboard."""
    response = client.post("/signup/", {"email": "Ada@Example.com", "name": "Ada", "password": "a long pass phrase"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = User.objects.get()
    assert user.email == "ada@example.com"
    assert user.name == "Ada"
    assert identify_hasher(user.password).algorithm == "argon2"
    assert client.get("/dashboard/")["Location"] == "/dashboard/new-store/"


def test_signup_with_taken_email_is_refused(client, creator):
    """An email that already has an account (in any case) is refused with a message; no account is added."""
    response = client.post("/signup/", {"email": creator.email.upper(), "name": "", "password": "a long pass phrase"})

    assert response.status_code == 400
    assert "An account with this email already exists; log in instead." in response.content.decode()
    assert User.objects.count() == 1


def test_signup_with_short_password_is_refused(client):
    """A password shorter than 8 characters fails Django's validators and creates nothing."""
    response = client.post("/signup/", {"email": "new@example.com", "name": "", "password": "short1"})

    assert response.status_code == 400
    assert "This password is too short. It must contain at least 8 characters." in response.content.decode()
    assert not User.objects.exists()


def test_signup_with_common_password_is_refused(client):
    """A password from the list of common passwords is refused."""
    response = client.post("/signup/", {"email": "new@example.com", "name": "", "password": "password123"})

    assert response.status_code == 400
    assert "This password is too common." in response.content.decode()
    assert not User.objects.exists()


def test_signup_with_bad_email_is_refused(client):
    """Something that is not an email address is refused."""
    response = client.post("/signup/", {"email": "not-an-email", "name": "", "password": "a long pass phrase"})

    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not User.objects.exists()


def test_signup_page_sends_a_logged_in_creator_to_the_dashboard(client, creator):
    """A creator who is already logged in is not asked to sign up again."""
    client.force_login(creator)

    assert client.get("/signup/")["Location"] == "/dashboard/"


def test_login_with_right_password_goes_to_dashboard(client, creator):
    """The right email (in any case) and password log in and lead to the dashboard."""
    response = client.post("/login/", {"username": creator.email.upper(), "password": "correct horse battery"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.session["_auth_user_id"] == creator.pk


def test_login_with_wrong_password_is_refused(client, creator):
    """A wrong password shows a clear message and logs nobody in."""
    response = client.post("/login/", {"username": creator.email, "password": "wrong horse battery"})

    assert response.status_code == 400
    assert "That email and password do not match an account. Check both and try again." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_follows_next_within_the_site(client, creator, store):
    """After logging in from a protected page, the creator lands back on that page."""
    response = client.post(
        "/login/", {"username": creator.email, "password": "correct horse battery", "next": f"/dashboard/{store.slug}/orders/"}
    )

    assert response["Location"] == f"/dashboard/{store.slug}/orders/"


def test_logout_is_a_post_and_ends_the_session(client, creator):
    """Logging out (POST) ends the session and returns to the login page; a GET does not log out."""
    client.force_login(creator)

    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_login_and_signup_pages_render(client):
    """Both pages render their forms for an anonymous visitor."""
    login = client.get("/login/").content.decode()
    signup = client.get("/signup/").content.decode()

    assert 'name="username"' in login and 'type="password"' in login
    assert 'name="email"' in signup and 'name="password"' in signup


def test_a_signed_in_buyer_is_read_from_the_session_without_a_query(client, db, django_assert_num_queries):
    """The signed-in buyer comes from the session (id and email kept at sign-in): no query for it."""
    from django.test import RequestFactory

    from stall.accounts.services import (
        BUYER_EMAIL_SESSION_KEY,
        BUYER_SESSION_KEY,
        buyer_for_email,
        buyer_from_request,
    )

    buyer = buyer_for_email(email="reader@example.com")
    request = RequestFactory().get("/")
    request.session = {BUYER_SESSION_KEY: buyer.pk, BUYER_EMAIL_SESSION_KEY: buyer.email}
    with django_assert_num_queries(0):
        found = buyer_from_request(request)
        again = buyer_from_request(request)
    assert (found.pk, found.email, again is found) == (buyer.pk, "reader@example.com", True)
    request = RequestFactory().get("/")
    request.session = {}
    assert buyer_from_request(request) is None


def test_signup_page_shows_the_password_rules(client):
    """The signup page tells the password rules, as the validators word them."""
    response = client.get("/signup/")

    assert response.status_code == 200
    assert "Your password must contain at least 8 characters. Your password can’t be a commonly used password." in response.content.decode()
