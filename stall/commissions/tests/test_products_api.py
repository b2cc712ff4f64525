"""A service product (a commission) made and changed through API v1 /products, with its terms
(issue #11): slots and days before a delivery is accepted; bad input answered with the error
object and nothing made."""

import pytest

from stall.catalog.models import Product
from stall.commissions.models import ServiceOffer
from stall.commissions.services import slots_left
from stall.core.errors import Conflict

from .conftest import order_commission, reserve

pytestmark = pytest.mark.django_db


def _error(response):
    return response.json()["error"]


def test_a_service_is_created_with_its_terms_and_sells_as_one(api, store):
    """kind service with slots 1 and 3 days: the product and its offer are made together; the
    answer shows the terms; the one slot is taken by a paid commission and a second buyer is
    refused; the slot count in the API follows."""
    response = api.post("/products", {
        "name": "Portrait", "amount": 4000, "kind": "service", "status": "published",
        "service": {"slots": 1, "auto_accept_days": 3},
    })

    assert response.status_code == 200, response.content
    body = response.json()
    product = Product.objects.get(pk=body["id"])
    offer = ServiceOffer.objects.get(product=product)
    assert (body["kind"], body["status"], body["service"]) == ("service", "published", {"slots": 1, "slots_left": 1, "auto_accept_days": 3})
    assert (offer.slots, offer.auto_accept_days) == (1, 3)

    commission = order_commission(store=store, product=product)
    assert commission.status == "awaiting_delivery"
    assert api.get(f"/products/{product.pk}").json()["service"] == {"slots": 1, "slots_left": 0, "auto_accept_days": 3}
    with pytest.raises(Conflict, match="All commission slots are taken"):
        reserve(store=store, product=product, email="second@example.com")


def test_a_service_without_terms_gets_the_defaults_and_a_download_has_none(api):
    """No service object: no slot limit, 7 days. A download's service field is null."""
    service = api.post("/products", {"name": "Sketch", "amount": 1000, "kind": "service"}).json()
    download = api.post("/products", {"name": "Zine", "amount": 300}).json()

    assert service["service"] == {"slots": None, "slots_left": None, "auto_accept_days": 7}
    assert download["service"] is None
    assert ServiceOffer.objects.get(product_id=service["id"]).auto_accept_days == 7


def test_a_services_terms_change_with_an_update_and_only_those_sent(api):
    """PATCH service.slots keeps auto_accept_days; slots null lifts the limit."""
    created = api.post("/products", {"name": "Logo", "amount": 9000, "kind": "service", "service": {"slots": 2, "auto_accept_days": 10}}).json()

    more = api.client.patch(
        f"/api/v1/products/{created['id']}", data={"service": {"slots": 5}}, content_type="application/json",
        headers={"Authorization": f"Bearer {api.secret}"},
    )
    unlimited = api.post(f"/products/{created['id']}", {"service": {"slots": None}})

    assert more.status_code == 200, more.content
    assert more.json()["service"] == {"slots": 5, "slots_left": 5, "auto_accept_days": 10}
    assert unlimited.json()["service"] == {"slots": None, "slots_left": None, "auto_accept_days": 10}
    offer = ServiceOffer.objects.get(product_id=created["id"])
    assert (offer.slots, slots_left(offer), offer.auto_accept_days) == (None, None, 10)


BAD_CREATE = [
    ({"service": {"slots": 0}}, "invalid_request", "service.slots"),
    ({"service": {"slots": 1001}}, "invalid_request", "service.slots"),
    ({"service": {"slots": "3"}}, "invalid_request", "service.slots"),
    ({"service": {"slots": 2.5}}, "invalid_request", "service.slots"),
    ({"service": {"auto_accept_days": 0}}, "invalid_request", "service.auto_accept_days"),
    ({"service": {"auto_accept_days": 61}}, "invalid_request", "service.auto_accept_days"),
    ({"service": {"auto_accept_days": None}}, "invalid_request", "service.auto_accept_days"),
    ({"service": {"slotz": 3}}, "invalid_request", "service.slotz"),
    ({"service": "many"}, "invalid_request", "service"),
    ({"kind": "download", "service": {"slots": 2}}, "invalid_product", "service"),
    ({"kind": "bundle", "service": {}}, "invalid_product", "service"),
    ({"kind": "commission"}, "invalid_request", "kind"),
    ({"kind": "service", "parts": []}, "invalid_bundle", "parts"),
]


@pytest.mark.parametrize(("extra", "code", "param"), BAD_CREATE)
def test_bad_service_input_is_refused_and_makes_nothing(api, extra, code, param):
    """Each is a 400 naming the parameter; no product and no offer are made."""
    response = api.post("/products", {"name": "Portrait", "amount": 4000, "kind": "service", **extra})

    assert (response.status_code, _error(response)["code"], _error(response)["param"]) == (400, code, param), response.content
    assert not Product.objects.exists()
    assert not ServiceOffer.objects.exists()


def test_bad_service_updates_are_refused_and_change_nothing(api):
    """Terms sent for a download, or out of range for a service, are 400s and change nothing."""
    service = api.post("/products", {"name": "Logo", "amount": 9000, "kind": "service", "service": {"slots": 2}}).json()
    download = api.post("/products", {"name": "Zine", "amount": 300}).json()

    responses = [
        api.post(f"/products/{download['id']}", {"service": {"slots": 2}}),
        api.post(f"/products/{service['id']}", {"service": {"auto_accept_days": 0}}),
        api.post(f"/products/{service['id']}", {"service": None}),
        api.post(f"/products/{service['id']}", {"name": "Logo 2", "service": {"slots": 0}}),
    ]

    assert [(r.status_code, _error(r)["param"]) for r in responses] == [
        (400, "service"), (400, "service.auto_accept_days"), (400, "service"), (400, "service.slots")]
    assert ServiceOffer.objects.filter(product_id=download["id"]).count() == 0
    offer = ServiceOffer.objects.get(product_id=service["id"])
    assert (offer.slots, offer.auto_accept_days) == (2, 7)
    assert Product.objects.get(pk=service["id"]).name == "Logo"
