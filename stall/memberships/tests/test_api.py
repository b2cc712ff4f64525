"""API v1 for tiers and subscriptions: the same services, store-scoped, with error objects."""

import pytest

from stall.memberships.models import Subscription
from stall.memberships.services import subscription_join
from stall.memberships.tiers import tier_create
from stall.testing import StoreFactory

pytestmark = pytest.mark.django_db


def test_create_retrieve_and_list_tiers(api):
    created = api.post("/tiers", {"name": "Gold", "benefits": ["Early posts"], "prices": [{"interval": "month", "amount": 500}]})
    assert created.status_code == 200, created.json()
    body = created.json()
    assert (body["object"], body["name"], body["free"], body["prices"][0]["amount"]) == ("tier", "Gold", False, 500)
    assert api.get(f"/tiers/{body['id']}").json()["id"] == body["id"]
    assert [t["id"] for t in api.get("/tiers").json()["data"]] == [body["id"]]


@pytest.mark.parametrize(
    ("prices", "code", "param"),
    [
        ([{"interval": "month", "amount": 0}], "invalid_amount", "prices[0].amount"),
        ([{"interval": "month", "amount": -5}], "invalid_amount", "prices[0].amount"),
        ([{"interval": "daily", "amount": 100}], "invalid_interval", "prices[0].interval"),
    ],
)
def test_bad_prices_are_400_with_the_parameter(api, prices, code, param):
    response = api.post("/tiers", {"name": "Bad", "prices": prices})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)
    assert api.get("/tiers").json()["data"] == []


def test_another_stores_tier_is_not_found(api):
    other = tier_create(store=StoreFactory(), name="Theirs", prices=[{"interval": "month", "amount": 300}])
    response = api.get(f"/tiers/{other.pk}")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "resource_missing")
    assert api.post(f"/tiers/{other.pk}/archive").status_code == 404


def test_archive_then_changing_to_the_archived_tier_is_refused(api, store):
    gold = tier_create(store=store, name="Gold", prices=[{"interval": "month", "amount": 500}])
    silver = tier_create(store=store, name="Silver", prices=[{"interval": "month", "amount": 300}])
    sub = subscription_join(tier=silver, method="card", email="m@example.com", payment_method="sandbox_visa").subscription
    assert api.post(f"/tiers/{gold.pk}/archive").json()["status"] == "archived"
    response = api.post(f"/subscriptions/{sub.pk}/change", {"tier": gold.pk})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "tier_archived")
    assert api.get(f"/subscriptions/{sub.pk}").json()["tier"] == silver.pk


def test_subscriptions_list_cancel_and_customer_listing(api, store):
    tier = tier_create(store=store, name="Silver", prices=[{"interval": "month", "amount": 300}])
    sub = subscription_join(tier=tier, method="card", email="m@example.com", payment_method="sandbox_visa").subscription
    listed = api.get("/subscriptions", {"status": "active"}).json()["data"]
    assert [s["id"] for s in listed] == [sub.pk]
    canceled = api.post(f"/subscriptions/{sub.pk}/cancel", {"at_period_end": True}).json()
    assert (canceled["status"], canceled["cancel_at_period_end"]) == ("active", True)
    mine = api.get(f"/customers/{sub.customer_id}/subscriptions").json()["data"]
    assert [s["id"] for s in mine] == [sub.pk]
    other = subscription_join(
        tier=tier_create(store=StoreFactory(), name="X", prices=[{"interval": "month", "amount": 300}]),
        method="card", email="x@example.com", payment_method="sandbox_visa",
    ).subscription
    assert api.get(f"/subscriptions/{other.pk}").status_code == 404
    assert api.get(f"/customers/{other.customer_id}/subscriptions").status_code == 404


def test_a_change_waiting_for_renewal_is_undone_through_the_api(api, store):
    low = tier_create(store=store, name="Bronze", prices=[{"interval": "month", "amount": 100}])
    tier = tier_create(store=store, name="Silver", prices=[{"interval": "month", "amount": 300}])
    sub = subscription_join(tier=tier, method="card", email="m@example.com", payment_method="sandbox_visa").subscription
    changed = api.post(f"/subscriptions/{sub.pk}/change", {"tier": low.pk}).json()
    assert (changed["tier"], changed["pending_price"]) == (tier.pk, low.prices.get().pk)
    undone = api.post(f"/subscriptions/{sub.pk}/change/undo", {})
    assert undone.status_code == 200 and (undone.json()["tier"], undone.json()["pending_price"]) == (tier.pk, None)
    again = api.post(f"/subscriptions/{sub.pk}/change/undo", {})
    assert again.status_code == 409
    error = again.json()["error"]
    assert (error["code"], error["message"]) == ("subscription_state_invalid", "This membership has no change waiting for the next renewal.")
    assert Subscription.objects.get(pk=sub.pk).pending_price_id is None
