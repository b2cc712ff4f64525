"""API v1 products: /api/v1/products."""

import json

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.catalog.models import Product, ProductFile
from stall.integrations.services import api_key_create
from stall.testing import ApiClient, ProductFactory, StoreFactory


@pytest.fixture
def other_api(client):
    """A client for a second store, with its own key."""
    _, secret = api_key_create(store=StoreFactory(), name="other")
    return ApiClient(client, secret)


def error(response):
    return json.loads(response.content)["error"]


def body(response):
    return json.loads(response.content)


def test_create_product_returns_the_product_object(api, store):
    """POST /products creates a draft product in the store's currency and answers with the whole object."""
    response = api.post("/products", {"name": "Field notes", "amount": 250, "description": "A *zine*."})

    assert response.status_code == 200
    product = Product.objects.get(store=store)
    assert body(response) == {
        "id": product.pk,
        "object": "product",
        "name": "Field notes",
        "kind": "download",
        "parts": [],
        "slug": "field-notes",
        "description": "A *zine*.",
        "price_type": "fixed",
        "amount": 250,
        "suggested_amount": None,
        "currency": "USD",
        "status": "draft",
        "download_limit": settings.STALL_DOWNLOAD_LIMIT,
        "url": f"{settings.BASE_URL}/s/{store.slug}/field-notes/",
        "files": [],
        "service": None,
        "created": int(product.created_at.timestamp()),
    }
    assert product.pk.startswith("prod_")


def test_create_pay_what_you_want_product(api, store):
    """Every parameter is taken: a pay-what-you-want product with a suggestion, status, slug and limit.
    (The status is "archived", not "published": a download with no files cannot be published.)"""
    response = api.post("/products", {
        "name": "Tip jar", "price_type": "pay_what_you_want", "amount": 100, "suggested_amount": 500,
        "currency": "usd", "status": "archived", "slug": "tips", "download_limit": 4,
    })

    assert response.status_code == 200
    data = body(response)
    assert (data["price_type"], data["amount"], data["suggested_amount"], data["currency"]) == ("pay_what_you_want", 100, 500, "USD")
    assert (data["status"], data["slug"], data["download_limit"]) == ("archived", "tips", 4)
    assert data["url"] == f"{settings.BASE_URL}/s/{store.slug}/tips/"


BAD_CREATE = [
    # (body, status, code, param)
    ({"amount": 100}, 400, "invalid_request", "name"),
    ({"name": "X"}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": "abc"}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": "100"}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": 1.5}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": 100.0}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": True}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": None}, 400, "invalid_request", "amount"),
    ({"name": "X", "amount": -1}, 400, "invalid_amount", "amount"),
    ({"name": "X", "amount": 10**13}, 400, "invalid_amount", "amount"),
    ({"name": "X", "amount": 2**70}, 400, "invalid_amount", "amount"),
    ({"name": 5, "amount": 100}, 400, "invalid_request", "name"),
    ({"name": "", "amount": 100}, 400, "invalid_product", "name"),
    ({"name": "X" * 121, "amount": 100}, 400, "invalid_request", "name"),
    ({"name": "X\x00", "amount": 100}, 400, "invalid_request", "name"),
    ({"name": "X", "amount": 100, "description": "d" * 20001}, 400, "invalid_request", "description"),
    ({"name": "X", "amount": 100, "slug": "s" * 81}, 400, "invalid_request", "slug"),
    ({"name": "X", "amount": 100, "slug": "not a slug!"}, 400, "invalid_product", "slug"),
    ({"name": "X", "amount": 100, "currency": "XYZ"}, 400, "invalid_currency", "currency"),
    ({"name": "X", "amount": 100, "currency": "usd1"}, 400, "invalid_currency", "currency"),
    ({"name": "X", "amount": 100, "currency": 840}, 400, "invalid_request", "currency"),
    ({"name": "X", "amount": 100, "currency": "EUR"}, 400, "currency_mismatch", "currency"),
    ({"name": "X", "amount": 100, "price_type": "subscription"}, 400, "invalid_request", "price_type"),
    ({"name": "X", "amount": 100, "status": "live"}, 400, "invalid_request", "status"),
    ({"name": "X", "amount": 100, "suggested_amount": 200}, 400, "invalid_product", "suggested_amount"),
    ({"name": "X", "amount": 300, "price_type": "pay_what_you_want", "suggested_amount": 200}, 400, "invalid_product", "suggested_amount"),
    ({"name": "X", "amount": 100, "price_type": "pay_what_you_want", "suggested_amount": -5}, 400, "invalid_amount", "suggested_amount"),
    ({"name": "X", "amount": 100, "download_limit": 0}, 400, "invalid_request", "download_limit"),
    ({"name": "X", "amount": 100, "download_limit": 2**31}, 400, "invalid_request", "download_limit"),
    ({"name": "X", "amount": 100, "download_limit": "3"}, 400, "invalid_request", "download_limit"),
    ({"name": "X", "amount": 100, "ammount": 100}, 400, "invalid_request", "ammount"),
]


@pytest.mark.parametrize(("payload", "status", "code", "param"), BAD_CREATE)
def test_create_product_refuses_bad_input(api, store, payload, status, code, param):
    """Bad input is answered with the error object naming the parameter, and creates nothing."""
    response = api.post("/products", payload)

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (status, code, param)
    assert Product.objects.count() == 0


@pytest.mark.parametrize(("raw", "message"), [
    ("{not json", "The request body is not valid JSON."),
    ("[]", "The request body must be a JSON object."),
    ('"product"', "The request body must be a JSON object."),
    ("", "Send a JSON object as the request body."),
])
def test_create_product_refuses_a_body_that_is_not_an_object(api, raw, message):
    """A body that is not a JSON object is a 400 with the error object, not a server error."""
    response = api.post("/products", raw=raw)

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_request", "message": message, "param": None}


def test_create_product_messages(api):
    """Error messages say what is wrong in words an integrator can act on."""
    cases = [
        ({"amount": 1}, "Missing required parameter: name."),
        ({"name": "X", "amount": -1}, "Amount cannot be negative."),
        ({"name": "X", "amount": 10**13}, "Amount is too large."),
        ({"name": "X", "amount": 1, "currency": "XYZ"}, "Unknown currency: XYZ."),
        ({"name": "X", "amount": 1, "currency": "EUR"}, "This store sells in USD."),
        ({"name": "X", "amount": 1, "colour": "red"}, "Received unknown parameter: colour."),
        ({"name": "X", "amount": "1"}, "Invalid amount: Input should be a valid integer"),
    ]
    assert [error(api.post("/products", payload))["message"] for payload, _ in cases] == [m for _, m in cases]


def test_create_product_with_a_taken_slug_is_refused(api, product):
    """Two products of a store cannot share an address."""
    response = api.post("/products", {"name": "Again", "amount": 100, "slug": product.slug})

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_product", "message": "Another product of this store has that address.", "param": "slug"}


def test_create_product_replays_with_the_same_idempotency_key(api, store):
    """A retried create with the same key answers with the first product and creates no second one."""
    first = api.post("/products", {"name": "Once", "amount": 100}, idempotency_key="create-once")
    again = api.post("/products", {"amount": 100, "name": "Once"}, idempotency_key="create-once")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Product.objects.filter(store=store).count() == 1


def test_create_product_with_a_reused_idempotency_key_and_another_body_is_a_conflict(api, store):
    """The same key with a different body is a 409 and creates nothing more."""
    api.post("/products", {"name": "Once", "amount": 100}, idempotency_key="create-once")
    response = api.post("/products", {"name": "Twice", "amount": 100}, idempotency_key="create-once")

    assert response.status_code == 409
    assert error(response)["code"] == "idempotency_key_reused"
    assert list(Product.objects.filter(store=store).values_list("name", flat=True)) == ["Once"]


def test_retrieve_product_includes_its_files(api, store):
    """GET /products/{id} answers with the product and its files."""
    from stall.testing import product_with_file

    product = product_with_file(store=store, name="Zine", content=b"twelve bytes")
    file = product.files.get()

    response = api.get(f"/products/{product.pk}")

    assert response.status_code == 200
    assert body(response)["files"] == [{
        "id": file.pk, "object": "file", "name": "zine.txt", "size": 12, "content_type": "text/plain",
        "created": int(file.created_at.timestamp()),
    }]
    assert body(response)["status"] == "published"


@pytest.mark.parametrize("product_id", ["prod_01aaaaaaaaaaaaaaaaaaaaaaaa", "nope", "prod_" + "a" * 200, "x\x00y"])
def test_retrieve_unknown_product_is_404(api, product_id):
    """An id that matches no product, well-formed or not, is a 404 with the error object."""
    response = api.get(f"/products/{product_id}")

    assert response.status_code == 404
    assert error(response)["code"] == "resource_missing"


def test_list_products_pages_newest_first(api, store):
    """Lists are newest first; limit and starting_after walk the pages and has_more says when to stop."""
    ids = [body(api.post("/products", {"name": f"P{i}", "amount": 100}))["id"] for i in range(3)]

    first = body(api.get("/products", {"limit": 2}))
    assert first["object"] == "list"
    assert [p["id"] for p in first["data"]] == [ids[2], ids[1]]
    assert first["has_more"] is True

    second = body(api.get("/products", {"limit": 2, "starting_after": ids[1]}))
    assert [p["id"] for p in second["data"]] == [ids[0]]
    assert second["has_more"] is False


def test_list_products_filters_by_status(api, store):
    """?status= keeps only products in that status."""
    published = ProductFactory(store=store, status="published")
    ProductFactory(store=store, status="draft")

    data = body(api.get("/products", {"status": "published"}))

    assert [p["id"] for p in data["data"]] == [published.pk]


def test_list_products_shows_only_this_stores_products(api, store, other_api):
    """A store's list never includes another store's products."""
    mine = ProductFactory(store=store)
    ProductFactory(store=StoreFactory())

    assert [p["id"] for p in body(api.get("/products"))["data"]] == [mine.pk]
    assert body(other_api.get("/products"))["data"] == []


@pytest.mark.parametrize(("params", "param"), [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"starting_after": "not an id"}, "starting_after"),
    ({"status": "live"}, "status"),
])
def test_list_products_refuses_bad_parameters(api, params, param):
    """Bad list parameters are a 400 naming the parameter."""
    response = api.get("/products", params)

    assert response.status_code == 400
    assert (error(response)["code"], error(response)["param"]) == ("invalid_request", param)


def test_update_product_changes_only_what_is_sent(api, store):
    """POST /products/{id} is a partial update: fields left out keep their values."""
    product = ProductFactory(store=store, name="Old", amount=300, description="Keep me")

    response = api.post(f"/products/{product.pk}", {"name": "New", "amount": 450})

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.name, product.amount, product.description) == ("New", 450, "Keep me")
    assert (body(response)["name"], body(response)["amount"]) == ("New", 450)


def test_update_product_accepts_patch(api, store):
    """PATCH does what POST does."""
    product = ProductFactory(store=store, status="published")

    response = api.client.patch(
        f"/api/v1/products/{product.pk}", data=json.dumps({"status": "draft"}),
        content_type="application/json", headers={"Authorization": f"Bearer {api.secret}"},
    )

    assert response.status_code == 200
    product.refresh_from_db()
    assert product.status == "draft"


def test_update_product_clears_the_suggested_amount_with_null(api, store):
    """suggested_amount: null removes the suggestion."""
    product = ProductFactory(store=store, price_type="pay_what_you_want", amount=100, suggested_amount=500)

    response = api.post(f"/products/{product.pk}", {"suggested_amount": None})

    assert body(response)["suggested_amount"] is None
    product.refresh_from_db()
    assert product.suggested_amount is None


@pytest.mark.parametrize(("payload", "code", "param"), [
    ({"amount": -1}, "invalid_amount", "amount"),
    ({"amount": 2**70}, "invalid_amount", "amount"),
    ({"amount": "abc"}, "invalid_request", "amount"),
    ({"amount": True}, "invalid_request", "amount"),
    ({"amount": None}, "invalid_request", "amount"),
    ({"name": None}, "invalid_request", "name"),
    ({"name": ""}, "invalid_product", "name"),
    ({"name": "N" * 121}, "invalid_request", "name"),
    ({"currency": "XYZ"}, "invalid_currency", "currency"),
    ({"currency": "EUR"}, "currency_mismatch", "currency"),
    ({"status": "gone"}, "invalid_request", "status"),
    ({"suggested_amount": 100}, "invalid_product", "suggested_amount"),
    ({"id": "prod_other"}, "invalid_request", "id"),
])
def test_update_product_refuses_bad_input(api, store, payload, code, param):
    """A bad update is a 400 naming the parameter and changes nothing."""
    product = ProductFactory(store=store, name="Same", amount=300)

    response = api.post(f"/products/{product.pk}", payload)

    assert (response.status_code, error(response)["code"], error(response)["param"]) == (400, code, param)
    product.refresh_from_db()
    assert (product.name, product.amount, product.status) == ("Same", 300, "published")


def test_archive_product(api, store):
    """POST /products/{id}/archive archives the product."""
    product = ProductFactory(store=store, status="published")

    response = api.post(f"/products/{product.pk}/archive")

    assert (response.status_code, body(response)["status"]) == (200, "archived")
    product.refresh_from_db()
    assert product.status == "archived"


def test_upload_file_attaches_it_to_the_product(api, store):
    """A multipart upload in the field "file" is stored and listed on the product."""
    product = ProductFactory(store=store)

    response = api.upload(f"/products/{product.pk}/files", {"file": SimpleUploadedFile("notes.pdf", b"%PDF-1.4 tiny", content_type="application/pdf")})

    assert response.status_code == 200
    stored = ProductFile.objects.get(product=product)
    assert body(response) == {
        "id": stored.pk, "object": "file", "name": "notes.pdf", "size": 13, "content_type": "application/pdf",
        "created": int(stored.created_at.timestamp()),
    }
    assert [f["id"] for f in body(api.get(f"/products/{product.pk}"))["files"]] == [stored.pk]


def test_upload_without_a_file_is_refused(api, store):
    """An upload with no file is a 400 naming the field, and attaches nothing."""
    product = ProductFactory(store=store)

    response = api.upload(f"/products/{product.pk}/files", {"name": "x"})

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_request", "message": "Missing required parameter: file.", "param": "file"}
    assert not ProductFile.objects.exists()


def test_upload_of_an_empty_file_is_refused(api, store):
    """An empty file is refused by the service, with its message."""
    product = ProductFactory(store=store)

    response = api.upload(f"/products/{product.pk}/files", {"file": SimpleUploadedFile("empty.txt", b"")})

    assert response.status_code == 400
    assert error(response) == {"code": "invalid_file", "message": "The file is empty.", "param": "file"}


def test_another_stores_product_is_missing(api, other_api, store):
    """Another store's product is 404 for every endpoint, and none of them change it."""
    product = ProductFactory(store=store, name="Mine", status="published")
    upload = {"file": SimpleUploadedFile("x.txt", b"x")}

    responses = [
        other_api.get(f"/products/{product.pk}"),
        other_api.post(f"/products/{product.pk}", {"name": "Theirs"}),
        other_api.post(f"/products/{product.pk}/archive"),
        other_api.client.post(f"/api/v1/products/{product.pk}/files", data=upload, headers={"Authorization": f"Bearer {other_api.secret}"}),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert {error(r)["code"] for r in responses} == {"resource_missing"}
    product.refresh_from_db()
    assert (product.name, product.status, product.files.count()) == ("Mine", "published", 0)


@pytest.mark.parametrize(("method", "path"), [
    ("delete", "/products"),
    ("put", "/products/prod_01aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("delete", "/products/prod_01aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("get", "/products/prod_01aaaaaaaaaaaaaaaaaaaaaaaa/archive"),
    ("get", "/products/prod_01aaaaaaaaaaaaaaaaaaaaaaaa/files"),
])
def test_wrong_method_is_405_with_the_error_object(api, method, path):
    """A method a path does not take is a 405 with the error object and an Allow header."""
    response = getattr(api.client, method)(f"/api/v1{path}", headers={"Authorization": f"Bearer {api.secret}"})

    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
