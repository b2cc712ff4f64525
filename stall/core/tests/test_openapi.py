"""The OpenAPI document at /api/v1/openapi.json: valid for real tools, one id per operation, and
saying what the API refuses."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from ninja import Router
from openapi_spec_validator import validate

from stall.api import StallAPI

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def document(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def operation_ids(document) -> dict[tuple[str, str], str]:
    return {
        (method.upper(), path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_document_passes_openapi_spec_validator(document):
    """openapi-spec-validator accepts the document as served (it raises on the first problem)."""
    assert validate(document) is None


def test_every_operation_has_its_own_short_id(document):
    """No two operations share an operationId; each is the path's resource and an action."""
    ids = operation_ids(document)

    assert len(ids) == 100  # 52 before usage billing, campaigns, gift cards, license keys, commissions, discounts, membership change undo, usage payment method
    assert len(set(ids.values())) == len(ids)
    for (method, path), op_id in ids.items():
        assert op_id.startswith(path.split("/")[3] + "_"), (method, path, op_id)
    assert {key: ids[key] for key in [
        ("POST", "/api/v1/products/{id}"),
        ("PATCH", "/api/v1/products/{id}"),
        ("GET", "/api/v1/products"),
        ("POST", "/api/v1/checkouts/{id}/confirm"),
        ("POST", "/api/v1/webhook_endpoints/{id}/roll_secret"),
        ("GET", "/api/v1/webhook_endpoints/{id}/deliveries"),
        ("GET", "/api/v1/customers/{id}/wallet"),
        ("GET", "/api/v1/balance"),
        ("GET", "/api/v1/customers/{id}/subscriptions"),
        ("POST", "/api/v1/subscriptions/{id}/cancel"),
        ("POST", "/api/v1/tiers/{id}/posts"),
        ("POST", "/api/v1/commissions/{id}/deliver"),
        ("POST", "/api/v1/campaigns/{id}/tiers"),
        ("GET", "/api/v1/campaigns/{id}/pledges"),
        ("DELETE", "/api/v1/campaigns/{id}"),
    ]} == {
        ("POST", "/api/v1/products/{id}"): "products_update",
        ("PATCH", "/api/v1/products/{id}"): "products_patch",
        ("GET", "/api/v1/products"): "products_list",
        ("POST", "/api/v1/checkouts/{id}/confirm"): "checkouts_confirm",
        ("POST", "/api/v1/webhook_endpoints/{id}/roll_secret"): "webhook_endpoints_roll_secret",
        ("GET", "/api/v1/webhook_endpoints/{id}/deliveries"): "webhook_endpoints_deliveries_list",
        ("GET", "/api/v1/customers/{id}/wallet"): "customers_wallet_retrieve",
        ("GET", "/api/v1/balance"): "balance_retrieve",
        ("GET", "/api/v1/customers/{id}/subscriptions"): "customers_subscriptions_list",
        ("POST", "/api/v1/subscriptions/{id}/cancel"): "subscriptions_cancel",
        ("POST", "/api/v1/tiers/{id}/posts"): "tiers_posts_set",
        ("POST", "/api/v1/commissions/{id}/deliver"): "commissions_deliver",
        ("POST", "/api/v1/campaigns/{id}/tiers"): "campaigns_tier_create",
        ("GET", "/api/v1/campaigns/{id}/pledges"): "campaigns_pledges_list",
        ("DELETE", "/api/v1/campaigns/{id}"): "campaigns_delete",
    }


def _api_with(router: Router, prefix: str) -> StallAPI:
    api = StallAPI(urls_namespace=f"test-{prefix}")
    api.add_router(f"/{prefix}", router)
    return api


def test_one_view_answering_two_methods_as_one_operation_is_refused():
    """Ninja documents such a view once under both methods, with one id: the document says why
    not rather than carrying a duplicate."""
    router = Router()

    @router.api_operation(["POST", "PATCH"], "/{id}")
    def widget_update(request, id: str):
        return {}

    message = "widget_update answers POST, PATCH as one operation"
    with pytest.raises(ImproperlyConfigured, match=message):
        _api_with(router, "widgets").get_openapi_schema(path_prefix="")


def test_a_view_not_named_after_its_resource_is_refused():
    """A view mounted at /widgets must be named widget_<action>, so its id is widgets_<action>."""
    router = Router()

    @router.get("")
    def gadget_list(request):
        return {}

    message = "gadget_list is mounted at /widgets: name it widget_<action>."
    with pytest.raises(ImproperlyConfigured, match=message):
        _api_with(router, "widgets").get_openapi_schema(path_prefix="")


def test_the_document_states_what_the_api_refuses(document):
    """Rules the services enforce are in the schemas too, so that a client (or the fuzzer) that
    follows the document is not refused for the shape of its request."""
    schemas = document["components"]["schemas"]
    product = schemas["ProductCreateIn"]["properties"]
    confirm = schemas["CheckoutConfirmIn"]["properties"]
    list_params = document["paths"]["/api/v1/products"]["get"]["parameters"]
    starting_after = next(p for p in list_params if p["name"] == "starting_after")
    path_id = document["paths"]["/api/v1/products/{id}"]["get"]["parameters"][0]

    assert (product["name"]["minLength"], product["name"]["pattern"]) == (1, r"\S")
    assert product["name"]["not"] == {"type": "string", "pattern": r"\x00"}
    assert product["slug"]["pattern"] == "^[-a-zA-Z0-9_]*$"
    assert (product["amount"]["minimum"], product["amount"]["maximum"]) == (0, 999_999_999_999)
    assert product["currency"]["anyOf"][0]["pattern"] == r"^\s*[A-Za-z]{3}\s*$"
    assert (schemas["PostCreateIn"]["properties"]["title"]["minLength"]) == 1
    assert schemas["ChargeCreateIn"]["properties"]["amount"]["minimum"] == 1
    assert starting_after["schema"]["pattern"] == "^[a-z]{1,8}_[0-9a-z]{1,40}$"
    assert path_id["schema"]["pattern"] == "^[a-z]{1,8}_[0-9a-z]{1,40}$"
    assert confirm["payment_method"]["pattern"] == (
        "^(sandbox_(visa|declined|insufficient_funds|3ds)|stripe|pm_[0-9A-Za-z_]+)?$"
    )
    assert schemas["WebhookEndpointCreateIn"]["properties"]["enabled_events"]["minItems"] == 1
    upload = document["paths"]["/api/v1/products/{id}/files"]["post"]["requestBody"]
    file = upload["content"]["multipart/form-data"]["schema"]["properties"]["file"]
    assert file["minLength"] == 1


def test_every_error_status_is_documented_with_the_error_object(document):
    """400, 401, 402, 404 and 409 are declared on every operation, with the error object."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "402", "404", "409"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == error_ref, (method, path, status)
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]
