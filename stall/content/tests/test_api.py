"""API v1: /api/v1/posts and /api/v1/tips (stall/content/api.py)."""

import json

import pytest
from django.conf import settings

from stall.content.models import Post
from stall.content.services import post_unlock, tip_jar_update, tip_send
from stall.integrations.services import api_key_create
from stall.testing import ApiClient, StoreFactory

from .conftest import BODY, make_post


@pytest.fixture
def other_api(client):
    _, secret = api_key_create(store=StoreFactory(), name="other")
    return ApiClient(client, secret)


def body(response):
    return json.loads(response.content)


def error(response):
    return body(response)["error"]


def test_create_a_post(api, store):
    """POST /posts creates a draft 25¢ post and answers with the whole object, preview included."""
    response = api.post("/posts", {"title": "Field notes", "amount": 25, "body": BODY})
    assert response.status_code == 200
    post = Post.objects.get(store=store)
    assert body(response) == {
        "id": post.pk,
        "object": "post",
        "title": "Field notes",
        "slug": "field-notes",
        "body": BODY,
        "preview": "The free opening.\n\nA second free paragraph.",
        "amount": 25,
        "currency": "USD",
        "status": "draft",
        "product": post.product_id,
        "url": f"{settings.BASE_URL}/s/{store.slug}/posts/field-notes/",
        "published": None,
        "created": int(post.created_at.timestamp()),
    }
    assert post.pk.startswith("post_")


def test_create_replays_with_the_same_idempotency_key(api, store):
    """A retried create with the same Idempotency-Key returns the first post and makes no second one."""
    first = api.post("/posts", {"title": "Once"}, idempotency_key="post-once")
    again = api.post("/posts", {"title": "Once"}, idempotency_key="post-once")
    assert body(first) == body(again)
    assert Post.objects.count() == 1


@pytest.mark.parametrize("payload, status, code, param", [
    ({}, 400, "invalid_request", "title"),
    ({"title": ""}, 400, "invalid_post", "title"),
    ({"title": "X", "amount": "25"}, 400, "invalid_request", "amount"),
    ({"title": "X", "amount": 0.25}, 400, "invalid_request", "amount"),
    ({"title": "X", "amount": -1}, 400, "invalid_amount", "amount"),
    ({"title": "X", "amount": 10**13}, 400, "invalid_amount", "amount"),
    ({"title": "X", "status": "live"}, 400, "invalid_request", "status"),
    ({"title": "X", "body": 5}, 400, "invalid_request", "body"),
    ({"title": "X", "body": "a\x00b"}, 400, "invalid_request", "body"),
    ({"title": "X", "currency": "EUR"}, 400, "currency_mismatch", "currency"),
    ({"title": "X", "price": 25}, 400, "invalid_request", "price"),
    ({"title": "X" * 121}, 400, "invalid_request", "title"),
])
def test_bad_input_is_refused_with_the_error_object(api, payload, status, code, param):
    """Each bad create names its parameter and makes nothing."""
    response = api.post("/posts", payload)
    assert (response.status_code, error(response)["code"], error(response)["param"]) == (status, code, param)
    assert Post.objects.count() == 0


def test_a_taken_address_is_refused(api, store):
    """Two posts cannot share an address."""
    make_post(store, slug="notes")
    response = api.post("/posts", {"title": "Notes", "slug": "notes"})
    assert (response.status_code, error(response)) == (400, {
        "code": "invalid_post", "message": "Another post or product of this store has that address.", "param": "slug"})


def test_list_is_newest_first_and_paginated(api, store):
    """limit and starting_after page through the store's posts, newest first."""
    posts = [make_post(store, title=f"Post {i}") for i in range(3)]
    first = body(api.get("/posts", {"limit": 2}))
    assert ([p["id"] for p in first["data"]], first["has_more"]) == ([posts[2].pk, posts[1].pk], True)
    second = body(api.get("/posts", {"limit": 2, "starting_after": posts[1].pk}))
    assert ([p["id"] for p in second["data"]], second["has_more"]) == ([posts[0].pk], False)


def test_retrieve_update_and_archive(api, store):
    """GET one; POST changes only what is sent and publishing sets `published`; archive takes it off the store."""
    post = make_post(store, status="draft")
    assert body(api.get(f"/posts/{post.pk}"))["title"] == "Field notes"
    updated = body(api.post(f"/posts/{post.pk}", {"amount": 50, "status": "published"}))
    assert (updated["amount"], updated["status"], updated["title"], updated["body"]) == (50, "published", "Field notes", BODY)
    assert updated["published"] is not None
    archived = body(api.post(f"/posts/{post.pk}/archive"))
    assert archived["status"] == "archived"


def test_an_update_with_bad_input_changes_nothing(api, store):
    """A null title or a negative price is refused and the post is as it was."""
    post = make_post(store)
    for payload, param in (({"title": None}, "title"), ({"amount": -5}, "amount"), ({"colour": "red"}, "colour")):
        response = api.post(f"/posts/{post.pk}", payload)
        assert (response.status_code, error(response)["param"]) == (400, param)
    post.refresh_from_db()
    assert (post.title, post.amount) == ("Field notes", 25)


def test_another_stores_post_is_not_found(api, other_api, store):
    """Every /posts/{id} endpoint answers 404 resource_missing for a post of another store, and changes nothing."""
    post = make_post(store)
    for response in (
        other_api.get(f"/posts/{post.pk}"),
        other_api.post(f"/posts/{post.pk}", {"title": "Mine now"}),
        other_api.post(f"/posts/{post.pk}/archive"),
        api.get("/posts/post_nope"),
        api.get("/posts/not-an-id"),
    ):
        assert (response.status_code, error(response)["code"]) == (404, "resource_missing")
    assert body(other_api.get("/posts"))["data"] == []
    post.refresh_from_db()
    assert (post.title, post.status) == ("Field notes", "published")


def test_other_methods_get_405(api):
    """DELETE /posts and POST /tips are not endpoints."""
    for response in (api.client.delete("/api/v1/posts", headers={"Authorization": f"Bearer {api.secret}"}), api.post("/tips", {})):
        assert (response.status_code, error(response)["code"]) == (405, "method_not_allowed")


def test_tips_list_newest_first_with_what_the_tipper_wrote(api, other_api, store, funded):
    """GET /tips shows the store's tips, private ones included, newest first, paginated; never another store's."""
    tip_jar_update(store=store, enabled=True)
    first = tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Ana", message="Hi", public=True).tip
    second = tip_send(store=store, amount=200, method="wallet", buyer=funded, message="shh").tip
    page = body(api.get("/tips", {"limit": 1}))
    assert page["has_more"] is True
    assert page["data"] == [{
        "id": second.pk, "object": "tip", "order": second.order_id, "amount": 200, "currency": "USD",
        "email": "reader@example.com", "name": "", "message": "shh", "public": False,
        "created": int(second.created_at.timestamp()),
    }]
    rest = body(api.get("/tips", {"limit": 1, "starting_after": second.pk}))
    assert ([t["id"] for t in rest["data"]], rest["has_more"]) == ([first.pk], False)
    assert body(other_api.get("/tips"))["data"] == []


def test_tips_list_bad_paging_is_refused(api):
    """limit out of range and a junk cursor are 400s naming the parameter."""
    for params, param in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"starting_after": "x y"}, "starting_after")):
        response = api.get("/tips", params)
        assert (response.status_code, error(response)["param"]) == (400, param)


def test_unlocks_show_in_the_orders_api(api, store, post, funded):
    """An unlock is an order like any other: GET /orders lists it."""
    order = post_unlock(post=post, method="wallet", buyer=funded).order
    assert [o["id"] for o in body(api.get("/orders"))["data"]] == [order.pk]
