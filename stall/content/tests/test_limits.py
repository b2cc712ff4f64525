"""Card unlocks and card tips make checkouts, so they count against the same per-address limit
as the buy page's (#13): past it, a 429 with Retry-After and the reason, and no checkout."""

from stall.checkout.models import Checkout
from stall.orders.tests.test_limits import at_window_start, limits  # noqa: F401 - fixtures

from .conftest import make_post
from .test_views import post_url


def test_card_unlocks_are_limited_per_address_and_a_limited_one_creates_nothing(client, store, limits, at_window_start):  # noqa: F811
    limits(checkout_address="2/10m")
    post = make_post(store, amount=100)
    for _ in range(2):
        response = client.post(post_url(post, "unlock/"), {"method": "card", "email": "new@example.com"})
        assert response.status_code == 302
    response = client.post(post_url(post, "unlock/"), {"method": "card", "email": "new@example.com"})
    assert (response.status_code, response["Retry-After"]) == (429, "600")
    assert "Too many checkouts. Try again in 10 minutes." in response.content.decode()
    assert Checkout.objects.count() == 2


def test_card_tips_are_limited_per_address_and_a_limited_one_creates_nothing(client, store, jar, limits, at_window_start):  # noqa: F811
    limits(checkout_address="1/10m")
    body = {"preset": "100", "email": "fan@example.com", "method": "card"}
    assert client.post(f"/s/{store.slug}/tips/new/", body).status_code == 302
    response = client.post(f"/s/{store.slug}/tips/new/", body)
    assert (response.status_code, response["Retry-After"]) == (429, "600")
    assert "Too many checkouts. Try again in 10 minutes." in response.content.decode()
    assert Checkout.objects.count() == 1
