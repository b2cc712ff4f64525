import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from stall.audience.models import Subscriber, SubscriberStatus
from stall.audience.segments import recipients
from stall.audience.services import (
    customers_import,
    subscriber_bounce,
    subscriber_sign_up,
    unsubscribe_url,
)
from stall.audience.tokens import confirm_token
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.content.services import post_create
from stall.orders.checkout_pay import checkout_confirm

from .conftest import subscribe


def _link(message, kind):
    return re.search(rf"http://[^\s\"]+/list/{kind}/[^\s\"/]+/", message.body).group(0)


def _status(store, email):
    return Subscriber.objects.filter(store=store, email=email).values_list("status", flat=True).first()


def test_sign_up_needs_the_emailed_link_to_subscribe(client, store, django_capture_on_commit_callbacks):
    """Double opt-in: the form sends a link; the address is on the list only once it is followed."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audience:signup", args=[store.slug]), {"email": "Reader@Example.com"})
    assert response.status_code == 200 and b"Check your email" in response.content
    assert _status(store, "reader@example.com") == SubscriberStatus.PENDING
    assert list(recipients(store=store, segment="subscribers")) == []
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["reader@example.com"]
    link = _link(mail.outbox[0], "confirm")
    page = client.get(link.replace("http://127.0.0.1:8000", ""))
    assert page.status_code == 200 and b"You are subscribed" in page.content
    assert _status(store, "reader@example.com") == SubscriberStatus.SUBSCRIBED
    assert list(recipients(store=store, segment="subscribers")) == ["reader@example.com"]


def test_a_forged_or_foreign_confirmation_link_subscribes_nobody(client, store):
    subscriber_sign_up(store=store, email="reader@example.com")
    assert client.get(reverse("audience:confirm", args=["forged"])).status_code == 400
    other_token = confirm_token(store_id=store.pk, email="someone@example.com")
    assert client.get(reverse("audience:confirm", args=[other_token])).status_code == 400
    assert _status(store, "reader@example.com") == SubscriberStatus.PENDING


def test_sign_up_refuses_a_bad_address_with_a_message(client, store):
    response = client.post(reverse("audience:signup", args=[store.slug]), {"email": "nope"})
    assert response.status_code == 400 and b"Enter a valid email address." in response.content
    assert not Subscriber.objects.exists() and not mail.outbox


def test_the_store_page_and_posts_carry_the_sign_up_form(client, store):
    post = post_create(store=store, title="Hello", amount=0, body="Free words.", status="published")
    action = reverse("audience:signup", args=[store.slug]).encode()
    assert action in client.get(reverse("stores:store", args=[store.slug])).content
    assert action in client.get(reverse("content:post", args=[store.slug, post.slug])).content


def test_the_unsubscribe_link_asks_first_then_unsubscribes(client, store):
    """GET (a link scanner) changes nothing; the button's POST unsubscribes."""
    subscribe(store, "reader@example.com")
    path = unsubscribe_url(store_id=store.pk, email="reader@example.com").replace("http://127.0.0.1:8000", "")
    assert b"Unsubscribe" in client.get(path).content
    assert _status(store, "reader@example.com") == SubscriberStatus.SUBSCRIBED
    response = client.post(path)
    assert response.status_code == 302
    assert _status(store, "reader@example.com") == SubscriberStatus.UNSUBSCRIBED
    assert list(recipients(store=store, segment="subscribers")) == []


def test_one_click_unsubscribe_works_without_csrf_token_or_login(store):
    """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click to the header's address."""
    subscribe(store, "reader@example.com")
    client = Client(enforce_csrf_checks=True)
    path = unsubscribe_url(store_id=store.pk, email="reader@example.com").replace("http://127.0.0.1:8000", "")
    response = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert _status(store, "reader@example.com") == SubscriberStatus.UNSUBSCRIBED
    assert client.post(path[:-3] + "xx/", "List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 400


def test_unsubscribed_and_bounced_addresses_stay_off_the_list(store):
    """Suppression: an import cannot put them back; checkout consent cannot either."""
    subscribe(store, "gone@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    subscribe(store, "bounce@example.com")
    subscriber_bounce(store=store, email="bounce@example.com")
    customers_import(store=store, data="email,consent\ngone@example.com,yes\nbounce@example.com,yes\n")
    assert list(recipients(store=store, segment="subscribers")) == []
    assert _status(store, "bounce@example.com") == SubscriberStatus.BOUNCED


@pytest.mark.parametrize("ticked", [True, False])
def test_checkout_consent_box_subscribes_only_when_ticked(store, product, ticked, django_capture_on_commit_callbacks):
    checkout = checkout_create(store=store, email="buyer@example.com", items=[CheckoutItem(product_id=product.pk)], email_consent=ticked)
    with django_capture_on_commit_callbacks(execute=True):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert _status(store, "buyer@example.com") == (SubscriberStatus.SUBSCRIBED if ticked else None)


def test_the_buy_form_offers_an_unticked_box(client, store, product):
    page = client.get(reverse("checkout:buy", args=[product.pk]))
    box = re.search(rb'<input type="checkbox" name="email_consent"[^>]*>', page.content).group(0)
    assert b"checked" not in box
    client.post(reverse("checkout:buy", args=[product.pk]), {"email": "ticked@example.com", "email_consent": "on"})
    assert Checkout.objects.get(email="ticked@example.com").email_consent is True


def test_checkout_consent_counts_on_the_lean_wallet_path_too(store, product, wallet_reader, django_capture_on_commit_callbacks):
    """A checkout paid from the wallet (the lean spend, which holds no checkout object) subscribes too."""
    checkout = checkout_create(store=store, email=wallet_reader.email, items=[CheckoutItem(product_id=product.pk)], email_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        paid = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=wallet_reader)
    assert paid.status == "complete"
    assert _status(store, wallet_reader.email) == SubscriberStatus.SUBSCRIBED
