import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.wallets.allowances import allowance_grant, charge_create
from stall.wallets.models import Allowance
from stall.wallets.services import wallet_top_up


def sign_in(client, email="reader@example.com"):
    link = buyer_magic_link(email=email)
    parts = urlsplit(link)
    client.get(parts.path)
    return buyer_for_email(email=email)


@pytest.fixture
def reader(client, db):
    return sign_in(client)


def page(store):
    return f"/s/{store.slug}/allowance/"


def test_a_visitor_is_asked_to_sign_in_and_the_link_brings_them_back(client, store, django_capture_on_commit_callbacks):
    """Signed out, the page offers a sign-in link by email; following it lands on the allowance page, signed in."""
    response = client.get(page(store))
    assert response.status_code == 200
    assert b"Email me a sign-in link" in response.content
    assert b'name="amount"' not in response.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/wallet/allowances/sign-in/", {"email": "New@Example.com", "next": page(store)})
    assert response.status_code == 302 and response["Location"] == page(store)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    link = re.search(r"http://\S+/library/enter/\S+", mail.outbox[0].body).group(0)
    response = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert response.status_code == 302 and response["Location"] == page(store)
    response = client.get(page(store))
    assert b'name="amount"' in response.content


def test_a_sign_in_never_sends_the_buyer_to_another_site(client, store, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/wallet/allowances/sign-in/", {"email": "a@example.com", "next": "https://evil.example/"})
    assert response["Location"] == "/wallet/allowances/"


def test_a_signed_out_grant_is_refused(client, store):
    response = client.post(page(store), {"amount": "5", "period": "day"})
    assert response.status_code == 403
    assert Allowance.objects.count() == 0


def test_a_buyer_grants_an_allowance_and_sees_it_with_its_usage(client, store, reader):
    """$5 a day until a date: the allowance runs through that day (UTC); the list shows used and left."""
    until = (timezone.now() + timedelta(days=10)).date()
    response = client.post(page(store), {"amount": "5", "period": "day", "expires_at": until.isoformat()})
    assert response.status_code == 302 and response["Location"] == "/wallet/allowances/"
    allowance = Allowance.objects.get()
    assert (allowance.buyer_id, allowance.store_id, allowance.amount, allowance.period) == (reader.pk, store.pk, 500, "day")
    assert allowance.expires_at == datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=dt_timezone.utc)
    wallet_top_up(buyer=reader, amount=1000, currency="USD", payment_method="sandbox_visa")
    customer = Customer.objects.get(store=store, email=reader.email)
    charge_create(store=store, customer_id=customer.pk, amount=120, currency="USD")
    text = client.get("/wallet/allowances/").content.decode()
    assert "may charge up to $5.00 a day" in text
    assert "Used this day: $1.20 · left: $3.80" in text
    assert store.name in text


def test_the_store_page_shows_the_current_allowance_and_granting_again_replaces_it(client, store, reader):
    allowance_grant(buyer=reader, store=store, amount=500, period="week")
    response = client.get(page(store))
    assert "Up to $5.00 a week." in response.content.decode()
    assert 'value="5.00"' in response.content.decode()
    client.post(page(store), {"amount": "7.50", "period": "month"})
    assert list(Allowance.objects.filter(revoked_at__isnull=True).values_list("amount", "period")) == [(750, "month")]
    assert Allowance.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "abc", "period": "day"}, "amount", "“abc” is not an amount."),
        ({"amount": "-5", "period": "day"}, "amount", "Amount cannot be negative."),
        ({"amount": "0", "period": "day"}, "amount", "Enter an amount greater than zero."),
        ({"amount": "", "period": "day"}, "amount", "This field is required."),
        ({"amount": "1.234", "period": "day"}, "amount", "USD amounts have at most 2 decimal places."),
        ({"amount": "5", "period": "year"}, "period", "Select a valid choice. year is not one of the available choices."),
        ({"amount": "5", "period": "day", "expires_at": "2001-01-01"}, "expires_at", "That day has passed. Choose today or a later day."),
        ({"amount": "5", "period": "day", "expires_at": "someday"}, "expires_at", "Enter a date such as 2030-12-31."),
        ({"amount": "€5", "period": "day"}, "amount", "“€5” is not an amount in USD."),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_grants_nothing(client, store, reader, data, field, message):
    response = client.post(page(store), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert Allowance.objects.count() == 0


def test_a_buyer_revokes_an_allowance_from_the_list(client, store, reader):
    allowance = allowance_grant(buyer=reader, store=store, amount=500, period="day")
    response = client.post(f"/wallet/allowances/{allowance.pk}/revoke/")
    assert response.status_code == 302
    allowance.refresh_from_db()
    assert allowance.revoked_at is not None
    text = client.get("/wallet/allowances/").content.decode()
    assert "No store may charge your wallet." in text
    assert "revoked" in text


def test_a_buyer_cannot_revoke_someone_elses_allowance(client, store, reader):
    other = allowance_grant(buyer=buyer_for_email(email="other@example.com"), store=store, amount=500, period="day")
    assert client.post(f"/wallet/allowances/{other.pk}/revoke/").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_the_list_asks_a_visitor_to_sign_in(client, db):
    response = client.get("/wallet/allowances/")
    assert response.status_code == 200
    assert b"Email me a sign-in link" in response.content
    assert b'value="/wallet/allowances/"' in response.content


def test_an_unknown_store_has_no_allowance_page(client, db):
    assert client.get("/s/no-such-store/allowance/").status_code == 404


def test_the_store_page_links_to_the_allowance_page(client, store):
    response = client.get(f"/s/{store.slug}/")
    assert f'href="/s/{store.slug}/allowance/"'.encode() in response.content


def test_the_wallet_page_links_to_the_allowances(client, reader):
    response = client.get("/wallet/")
    assert response.status_code == 200
    assert b'href="/wallet/allowances/"' in response.content
