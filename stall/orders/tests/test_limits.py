"""Abuse limits on checkouts (the storefront's buy form and the API) and on the API per key."""

from datetime import UTC, datetime

import pytest
import time_machine

from stall.checkout.models import Checkout
from stall.integrations.services import api_key_create

pytestmark = pytest.mark.django_db

WINDOW_START = datetime(2030, 1, 1, tzinfo=UTC)  # a window boundary of every period used here


@pytest.fixture
def limits(settings):
    def set_limits(**rates):
        settings.STALL_LIMITS = {**settings.STALL_LIMITS, **rates}
    return set_limits


@pytest.fixture
def at_window_start():
    with time_machine.travel(WINDOW_START, tick=False) as traveller:
        yield traveller


def assert_rate_limited(response, *, retry_after: str, message: str):
    assert response.status_code == 429
    assert response["Retry-After"] == retry_after
    assert response.json() == {"error": {"code": "rate_limited", "message": message, "param": None}}


# --- The API, per key -----------------------------------------------------------------------


def test_the_api_refuses_a_key_past_its_limit_with_429_retry_after_and_the_error_object(
    api, product, limits, at_window_start
):
    limits(api_key="3/1m")
    at_window_start.shift(15)
    for _ in range(3):
        assert api.get("/products").status_code == 200
    assert_rate_limited(api.get("/products"), retry_after="45", message="Too many requests. Try again in 45 seconds.")
    # Any endpoint: the limit is the key's, not the path's.
    response = api.post("/checkouts", {"email": "b@example.com", "product": product.pk})
    assert_rate_limited(response, retry_after="45", message="Too many requests. Try again in 45 seconds.")
    assert not Checkout.objects.exists()

    at_window_start.shift(45)
    assert api.get("/products").status_code == 200


def test_each_key_has_its_own_limit(api, store, limits, at_window_start):
    limits(api_key="2/1m")
    _, other = api_key_create(store=store, name="other")
    for _ in range(2):
        api.get("/products")
    assert api.get("/products").status_code == 429
    assert api.get("/products", secret=other).status_code == 200


def test_a_wrong_key_is_refused_as_ever_and_not_counted(api, limits, at_window_start):
    limits(api_key="1/1m")
    for _ in range(3):
        response = api.get("/products", secret="sk_wrong")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert api.get("/products").status_code == 200


def test_a_limited_request_is_not_kept_for_its_idempotency_key(api, product, limits, at_window_start):
    """Retried after Retry-After with the same Idempotency-Key, the request runs: a 429 is not
    replayed as the key's answer (as Stripe does)."""
    limits(api_key="1/1m")
    api.get("/products")
    body = {"email": "b@example.com", "product": product.pk}
    assert api.post("/checkouts", body, idempotency_key="k1").status_code == 429
    at_window_start.shift(60)
    response = api.post("/checkouts", body, idempotency_key="k1")
    assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert Checkout.objects.count() == 1


def test_the_openapi_document_lists_429_with_the_error_object(client):
    operation = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/checkouts"]["post"]
    assert operation["responses"]["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


# --- Checkouts ------------------------------------------------------------------------------


def test_api_checkouts_are_limited_per_key_and_a_limited_one_creates_nothing(api, product, limits, at_window_start):
    limits(checkout_key="2/1m")
    body = {"email": "b@example.com", "product": product.pk}
    for _ in range(2):
        assert api.post("/checkouts", body).status_code == 200
    assert_rate_limited(api.post("/checkouts", body), retry_after="60", message="Too many checkouts. Try again in 1 minute.")
    assert Checkout.objects.count() == 2
    assert api.get("/products").status_code == 200  # other requests of the key go on


def test_storefront_checkouts_are_limited_per_address_and_a_limited_one_creates_nothing(
    client, product, limits, at_window_start
):
    limits(checkout_address="2/10m")
    for _ in range(2):
        response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}, REMOTE_ADDR="198.51.100.1")
        assert response.status_code == 302
    response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}, REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 429
    assert response["Retry-After"] == "600"
    assert "Too many checkouts. Try again in 10 minutes." in response.content.decode()
    assert Checkout.objects.count() == 2

    response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}, REMOTE_ADDR="198.51.100.2")
    assert response.status_code == 302
    assert Checkout.objects.count() == 3


def test_a_buy_form_with_a_bad_email_is_not_counted(client, product, limits, at_window_start):
    limits(checkout_address="1/10m")
    for _ in range(3):
        assert client.post(f"/buy/{product.pk}/", {"email": "not an email"}).status_code == 400
    assert client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}).status_code == 302


@pytest.mark.parametrize(
    ("language", "message"),
    [("ko", "주문 시도가 너무 많습니다. 10분 후에 다시 시도하세요."),
     ("pt-br", "Pedidos demais. Tente de novo em 10 minutos.")],
)
def test_a_limited_buyer_reads_why_in_their_language(client, product, limits, at_window_start, language, message):
    """The limit's message on the buy page is in the buyer's language, its wait in their plural."""
    limits(checkout_address="1/10m")
    client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}, HTTP_ACCEPT_LANGUAGE=language)
    response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 429
    assert message in response.content.decode()


def test_discount_code_tries_have_their_own_tighter_limit(client, product, limits, at_window_start):
    """Guessing codes on the buy page is stopped sooner than buying: a form with a code counts
    against discount_code_address too, one without does not."""
    limits(checkout_address="10/10m", discount_code_address="2/10m")
    for guess in ("AAAA", "BBBB"):
        response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com", "discount_code": guess})
        assert response.status_code == 400
    response = client.post(f"/buy/{product.pk}/", {"email": "b@example.com", "discount_code": "CCCC"})
    assert response.status_code == 429
    assert "Too many code attempts. Try again in 10 minutes." in response.content.decode()
    assert client.post(f"/buy/{product.pk}/", {"email": "b@example.com"}).status_code == 302
    assert Checkout.objects.count() == 1
