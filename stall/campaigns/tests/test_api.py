"""API v1 for campaigns: CRUD, publish, cancel, tiers, pledges; other stores' objects are 404;
bad input is a 4xx with the error object; the pledge and campaign events reach the outbox."""

from datetime import timedelta

import pytest

from stall.campaigns.services import pledge_create
from stall.campaigns.settlement import campaigns_due_run
from stall.integrations.models import Event
from stall.integrations.services import api_key_create
from stall.testing import ApiClient, ProductFactory, StoreFactory

from .conftest import DEADLINE, backer

pytestmark = pytest.mark.django_db


def _create(api, **overrides):
    body = {"title": "Moss atlas", "goal": 1000, "deadline": DEADLINE.isoformat(), "story": "A *book*."}
    body.update(overrides)
    return api.post("/campaigns", body)


def test_a_campaign_is_created_given_tiers_published_and_listed(api, store, clock):
    created = _create(api)
    assert created.status_code == 200, created.content
    campaign = created.json()
    assert (campaign["status"], campaign["goal"], campaign["mode"]) == (
        "draft", {"amount": 1000, "currency": "USD"}, "all_or_nothing")
    zine = ProductFactory(store=store)
    tier = api.post(f"/campaigns/{campaign['id']}/tiers", {"title": "Zine", "min_amount": 500, "quantity": 3,
                                                           "product": zine.pk, "estimated_delivery": "2027-06-01"})
    assert tier.status_code == 200, tier.content
    assert (tier.json()["remaining"], tier.json()["product"]) == (3, zine.pk)
    assert api.get(f"/campaigns/{campaign['id']}/tiers").json()["data"][0]["id"] == tier.json()["id"]

    updated = api.post(f"/campaigns/{campaign['id']}", {"goal": 2000, "title": "Moss atlas, 2nd ed."})
    assert updated.json()["goal"]["amount"] == 2000
    published = api.post(f"/campaigns/{campaign['id']}/publish")
    assert published.json()["status"] == "live"
    refused = api.post(f"/campaigns/{campaign['id']}", {"goal": 10})
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "goal"

    pledge = pledge_create(campaign=store.campaigns.get(), buyer=backer("b@example.com"), amount=2000, method="wallet")
    listed = api.get(f"/campaigns/{campaign['id']}/pledges").json()
    assert [p["id"] for p in listed["data"]] == [pledge.pk]
    got = api.get(f"/pledges/{pledge.pk}").json()
    assert (got["status"], got["amount"]["amount"]) == ("held", 2000)
    retrieved = api.get(f"/campaigns/{campaign['id']}").json()
    assert (retrieved["pledged"]["amount"], retrieved["backers"]) == (2000, 1)
    assert api.get("/campaigns").json()["data"][0]["id"] == campaign["id"]

    clock.move_to(DEADLINE)
    campaigns_due_run()
    types = sorted(Event.objects.filter(store=store).values_list("type", flat=True))
    assert types == ["campaign.succeeded", "pledge.collected", "pledge.created"]


def test_bad_campaign_input_is_a_400_with_the_param(api, clock):
    for body, param in (
        ({"goal": 0}, "goal"), ({"goal": -5}, "goal"),
        ({"deadline": (DEADLINE - timedelta(days=30)).isoformat()}, "deadline"),
        ({"deadline": "2027-04-01T12:00:00"}, "deadline"),
        ({"title": " "}, "title"),
    ):
        response = _create(api, **body)
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["param"] == param, body


def test_another_stores_campaign_and_pledge_are_not_found(api, clock):
    other = StoreFactory()
    _, secret = api_key_create(store=other, name="other")
    theirs = _create(ApiClient(api.client, secret)).json()
    for path in (f"/campaigns/{theirs['id']}", f"/campaigns/{theirs['id']}/tiers", f"/campaigns/{theirs['id']}/pledges"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "resource_missing", path
    assert api.post(f"/campaigns/{theirs['id']}/publish").status_code == 404
    assert api.post(f"/campaigns/{theirs['id']}/tiers", {"title": "x", "min_amount": 100}).status_code == 404
    assert api.get("/pledges/plg_01hzzzzzzzzzzzzzzzzzzzzzzz").status_code == 404


def test_cancel_releases_the_holds_and_tells_the_integrator(api, store, clock):
    campaign = _create(api).json()
    api.post(f"/campaigns/{campaign['id']}/publish")
    buyer = backer("b@example.com")
    pledge = pledge_create(campaign=store.campaigns.get(), buyer=buyer, amount=300, method="wallet")
    canceled = api.post(f"/pledges/{pledge.pk}/cancel")
    assert canceled.json()["status"] == "canceled"
    again = api.post(f"/pledges/{pledge.pk}/cancel")
    assert again.status_code == 409
    pledge_create(campaign=store.campaigns.get(), buyer=buyer, amount=300, method="wallet")
    ended = api.post(f"/campaigns/{campaign['id']}/cancel")
    assert ended.json()["status"] == "canceled" and ended.json()["pledged"]["amount"] == 0
    assert api.post(f"/campaigns/{campaign['id']}/cancel").status_code == 409
    assert api.client.delete(f"/api/v1/campaigns/{campaign['id']}", headers=api._headers()).status_code == 409
    types = set(Event.objects.filter(store=store).values_list("type", flat=True))
    assert {"pledge.created", "pledge.canceled", "campaign.canceled"} <= types


def test_a_draft_is_deleted(api, store, clock):
    campaign = _create(api).json()
    response = api.client.delete(f"/api/v1/campaigns/{campaign['id']}", headers=api._headers())
    assert response.status_code == 200
    assert not store.campaigns.exists()
