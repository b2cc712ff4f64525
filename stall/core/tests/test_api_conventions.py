"""API v1 conventions every endpoint shares: keys, the error object, idempotency, documentation."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.catalog.models import Product, ProductFile
from stall.integrations.services import api_key_create, api_key_revoke
from stall.testing import ProductFactory


def error(response):
    return json.loads(response.content)["error"]


ENDPOINTS = [
    ("get", "/products"),
    ("post", "/products"),
    ("get", "/products/prod_01aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("post", "/checkouts"),
    ("get", "/checkouts/chk_01aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("post", "/checkouts/chk_01aaaaaaaaaaaaaaaaaaaaaaaa/confirm"),
    ("get", "/orders"),
    ("get", "/orders/ord_01aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("get", "/refunds"),
    ("post", "/refunds"),
    ("get", "/balance"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_wants_a_key(client, db, method, path):
    """Without Authorization every endpoint is a 401 with the error object and a Bearer challenge."""
    response = getattr(client, method)(f"/api/v1{path}")

    assert response.status_code == 401
    assert error(response) == {
        "code": "unauthorized", "message": "Send your secret API key: Authorization: Bearer sk_…", "param": None,
    }
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("secret", ["sk_not-a-real-key", "pk_live_123", "", "sk_" + "x" * 300])
def test_an_invalid_key_is_401(api, secret):
    """A mistyped or foreign key is a 401, never a 500."""
    response = api.get("/products", secret=secret)

    assert response.status_code == 401
    assert error(response)["code"] == "unauthorized"


def test_a_revoked_key_stops_working(api, store):
    """Once revoked, a key is refused at once."""
    assert api.get("/products").status_code == 200
    key = store.api_keys.get()
    api_key_revoke(store=store, key_id=key.pk)

    response = api.get("/products")

    assert response.status_code == 401
    assert error(response) == {
        "code": "unauthorized",
        "message": "The API key is not valid: it is mistyped, revoked, or not a secret key (sk_…).",
        "param": None,
    }


def test_a_key_acts_for_its_own_store(api, store, client):
    """Two keys of two stores see two different catalogs: the key decides the store."""
    from stall.testing import ApiClient, StoreFactory

    other = StoreFactory()
    _, secret = api_key_create(store=other)
    ProductFactory(store=store, name="Ours")
    ProductFactory(store=other, name="Theirs")

    ours = json.loads(api.get("/products").content)["data"]
    theirs = json.loads(ApiClient(client, secret).get("/products").content)["data"]

    assert ([p["name"] for p in ours], [p["name"] for p in theirs]) == (["Ours"], ["Theirs"])


@pytest.mark.parametrize("path", ["/nothing-here", "/products/prod_x/nothing", "/products/"])
def test_an_unknown_path_is_a_404_error_object(api, path):
    """A path the API does not have is a 404 with the error object, not an HTML page."""
    response = api.get(path)

    assert response.status_code == 404
    assert error(response)["code"] == "resource_missing"


def test_wrong_method_is_a_405_error_object(api):
    """A method the path does not take is a 405 with the error object, before authentication."""
    response = api.client.delete("/api/v1/balance")

    assert response.status_code == 405
    assert error(response) == {"code": "method_not_allowed", "message": "DELETE is not allowed here; use GET.", "param": None}
    assert response.headers["Allow"] == "GET"


def test_a_replay_returns_the_first_response(api, store):
    """The same Idempotency-Key and body answers with the first response, marked as replayed."""
    first = api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-1")
    replay = api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-1")

    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert Product.objects.count() == 1


def test_a_replayed_error_is_the_same_error(api, store):
    """An error is stored like any answer: the retry gets the same error, and no product."""
    first = api.post("/products", {"name": "A", "amount": -1}, idempotency_key="k-err")
    replay = api.post("/products", {"name": "A", "amount": -1}, idempotency_key="k-err")

    assert (first.status_code, replay.status_code) == (400, 400)
    assert replay.content == first.content
    assert Product.objects.count() == 0


def test_a_key_reused_with_another_body_is_409(api, store):
    """The same key with a different body is refused and does nothing."""
    api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-2")
    response = api.post("/products", {"name": "B", "amount": 100}, idempotency_key="k-2")

    assert response.status_code == 409
    assert error(response) == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used with a different request.",
        "param": "Idempotency-Key",
    }
    assert list(Product.objects.values_list("name", flat=True)) == ["A"]


def test_a_key_reused_on_another_path_is_409(api, store, product):
    """A key belongs to one request: reusing it on another endpoint is a conflict too."""
    api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-3")

    response = api.post(f"/products/{product.pk}/archive", idempotency_key="k-3")

    assert response.status_code == 409
    product.refresh_from_db()
    assert product.status == "published"


def test_keys_of_two_stores_do_not_collide(api, client, store):
    """Two stores using the same Idempotency-Key each get their own result."""
    from stall.testing import ApiClient, StoreFactory

    other_store = StoreFactory()
    _, secret = api_key_create(store=other_store)
    other = ApiClient(client, secret)

    a = api.post("/products", {"name": "A", "amount": 100}, idempotency_key="shared")
    b = other.post("/products", {"name": "A", "amount": 100}, idempotency_key="shared")

    assert json.loads(a.content)["id"] != json.loads(b.content)["id"]
    assert "Idempotent-Replayed" not in b.headers
    assert sorted(Product.objects.values_list("store_id", flat=True)) == sorted([store.pk, other_store.pk])


def test_an_unauthenticated_request_does_not_use_up_the_key(api, store):
    """A 401 is not stored: the same key works once the right API key is sent."""
    assert api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-4", secret="sk_wrong").status_code == 401

    response = api.post("/products", {"name": "A", "amount": 100}, idempotency_key="k-4")

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize("key", [" ", "k" * 256])
def test_a_bad_idempotency_key_is_refused(api, store, key):
    """A blank or over-long key is a 400 and the request is not run."""
    response = api.post("/products", {"name": "A", "amount": 100}, idempotency_key=key)

    assert response.status_code == 400
    assert error(response)["code"] == "invalid_idempotency_key"
    assert Product.objects.count() == 0


def test_an_upload_replay_returns_the_first_file(api, store, product):
    """Resending the same upload with its key attaches the file once."""
    def send():
        return api.upload(f"/products/{product.pk}/files", {"file": SimpleUploadedFile("a.txt", b"same bytes")}, idempotency_key="up-1")

    first, replay = send(), send()

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert ProductFile.objects.count() == 1


def test_an_upload_key_reused_for_another_file_of_the_same_size_is_409(api, store, product):
    """A different file under the same key is a conflict even when the two files are the same size."""
    api.upload(f"/products/{product.pk}/files", {"file": SimpleUploadedFile("a.txt", b"first file")}, idempotency_key="up-2")

    response = api.upload(f"/products/{product.pk}/files", {"file": SimpleUploadedFile("a.txt", b"other file")}, idempotency_key="up-2")

    assert response.status_code == 409
    assert error(response)["code"] == "idempotency_key_reused"
    assert list(ProductFile.objects.values_list("size", flat=True)) == [10]


def test_openapi_document_is_served(client, db):
    """The OpenAPI document is public and describes every endpoint."""
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert sorted(paths) == [
        "/api/v1/balance",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/cancel",
        "/api/v1/campaigns/{id}/pledges",
        "/api/v1/campaigns/{id}/publish",
        "/api/v1/campaigns/{id}/tiers",
        "/api/v1/charges",
        "/api/v1/charges/{id}",
        "/api/v1/checkouts",
        "/api/v1/checkouts/{id}",
        "/api/v1/checkouts/{id}/confirm",
        "/api/v1/commissions",
        "/api/v1/commissions/{id}",
        "/api/v1/commissions/{id}/decline",
        "/api/v1/commissions/{id}/deliver",
        "/api/v1/commissions/{id}/messages",
        "/api/v1/customers",
        "/api/v1/customers/{id}",
        "/api/v1/customers/{id}/subscriptions",
        "/api/v1/customers/{id}/usage",
        "/api/v1/customers/{id}/wallet",
        "/api/v1/discounts",
        "/api/v1/discounts/{id}",
        "/api/v1/discounts/{id}/deactivate",
        "/api/v1/events",
        "/api/v1/events/{id}",
        "/api/v1/gift_cards",
        "/api/v1/gift_cards/redeem",
        "/api/v1/gift_cards/{id}",
        "/api/v1/licenses/activate",
        "/api/v1/licenses/deactivate",
        "/api/v1/licenses/validate",
        "/api/v1/meters",
        "/api/v1/meters/{id}",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/plans",
        "/api/v1/plans/{id}",
        "/api/v1/pledges/{id}",
        "/api/v1/pledges/{id}/cancel",
        "/api/v1/posts",
        "/api/v1/posts/{id}",
        "/api/v1/posts/{id}/archive",
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/products/{id}/archive",
        "/api/v1/products/{id}/files",
        "/api/v1/refunds",
        "/api/v1/refunds/{id}",
        "/api/v1/subscriptions",
        "/api/v1/subscriptions/{id}",
        "/api/v1/subscriptions/{id}/cancel",
        "/api/v1/subscriptions/{id}/change",
        "/api/v1/subscriptions/{id}/change/undo",
        "/api/v1/subscriptions/{id}/pause",
        "/api/v1/subscriptions/{id}/resume",
        "/api/v1/tiers",
        "/api/v1/tiers/{id}",
        "/api/v1/tiers/{id}/archive",
        "/api/v1/tiers/{id}/posts",
        "/api/v1/tips",
        "/api/v1/usage_subscriptions",
        "/api/v1/usage_subscriptions/{id}",
        "/api/v1/usage_subscriptions/{id}/cancel",
        "/api/v1/usage_subscriptions/{id}/payment_method",
        "/api/v1/usage_subscriptions/{id}/retry",
        "/api/v1/webhook_endpoints",
        "/api/v1/webhook_endpoints/{id}",
        "/api/v1/webhook_endpoints/{id}/deliveries",
        "/api/v1/webhook_endpoints/{id}/deliveries/{delivery_id}/redeliver",
        "/api/v1/webhook_endpoints/{id}/roll_secret",
    ]
    assert sorted(paths["/api/v1/products/{id}"]) == ["get", "patch", "post"]


def test_docs_page_loads_everything_from_our_origin(client, db):
    """The Swagger UI page and its assets come from this server, so the CSP (no third-party script) holds."""
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == [
        "/static/ninja/favicon.png",
        "/static/ninja/favicon.svg",
        "/static/ninja/swagger-ui-bundle.js",
        "/static/ninja/swagger-ui-init.js",
        "/static/ninja/swagger-ui.css",
    ]
    assert "<script>" not in html  # no inline script: the CSP forbids it
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize("idempotency_key", [None, "odd-body"])
@pytest.mark.parametrize(("raw", "content_type"), [
    ("[" * 100_000 + "]" * 100_000, "application/json"),  # nested too deep for the parser
    (b"\xff\xfe{", "application/json"),
    ("name=x&amount=5", "application/x-www-form-urlencoded"),
])
def test_a_body_that_cannot_be_read_is_400(api, store, raw, content_type, idempotency_key):
    """Whatever the body holds, a body that is not JSON is a 400 error object, with or without a key."""
    headers = {"Authorization": f"Bearer {api.secret}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key

    response = api.client.post("/api/v1/products", data=raw, content_type=content_type, headers=headers)

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_request", "message": "The request body is not valid JSON.", "param": None}


@pytest.mark.parametrize("idempotency_key", [None, "bad-multipart"])
def test_a_broken_multipart_upload_is_400(api, product, idempotency_key):
    """A multipart body without its boundary is a 400 error object, with or without a key."""
    headers = {"Authorization": f"Bearer {api.secret}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key

    response = api.client.post(f"/api/v1/products/{product.pk}/files", data=b"garbage", content_type="multipart/form-data", headers=headers)

    assert response.status_code == 400
    assert error(response) == {
        "code": "invalid_request", "message": "The multipart body could not be read: Invalid boundary in multipart: None", "param": None,
    }


@pytest.mark.parametrize("idempotency_key", [None, "big-body"])
def test_a_body_over_the_size_limit_is_413(api, store, settings, idempotency_key):
    """A JSON body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 error object and creates nothing."""
    raw = json.dumps({"name": "x", "amount": 1, "description": "d" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = api.post("/products", raw=raw, idempotency_key=idempotency_key)

    assert response.status_code == 413
    assert error(response) == {"code": "request_too_large", "message": "The request body is too large.", "param": None}
    assert Product.objects.count() == 0
