"""API v1 /gift_cards: list, issue, retrieve, redeem for a customer; bad input is a 4xx with
the error object and moves nothing; another store's card is a 404."""

from datetime import timedelta

from django.utils import timezone

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.payments.rails.wallet import wallet_for
from stall.testing import StoreFactory
from stall.wallets import gift_cards as gc


def customer(store, email="fan@example.com"):
    return Customer.objects.create(store=store, email=email)


def test_issue_list_retrieve_and_redeem(api, store):
    created = api.post("/gift_cards", {"amount": 1500, "message": "Welcome"}, idempotency_key="gc-1")
    assert created.status_code == 200, created.json()
    body = created.json()
    assert (body["object"], body["initial_amount"], body["balance"], body["status"]) == ("gift_card", 1500, 1500, "active")
    code = body["code"]
    assert body["code_last4"] == code[-4:]
    again = api.post("/gift_cards", {"amount": 1500, "message": "Welcome"}, idempotency_key="gc-1")
    assert again.json()["id"] == body["id"]  # a replay issues nothing more
    listed = api.get("/gift_cards").json()
    assert [c["id"] for c in listed["data"]] == [body["id"]] and "code" not in listed["data"][0]
    assert api.get(f"/gift_cards/{body['id']}").json()["balance"] == 1500

    fan = customer(store)
    redeemed = api.post("/gift_cards/redeem", {"code": code, "customer": fan.pk})
    assert redeemed.status_code == 200, redeemed.json()
    assert (redeemed.json()["status"], redeemed.json()["balance"]) == ("redeemed", 0)
    assert wallet_for(buyer=buyer_for_email(email=fan.email), currency="USD").account.balance == 1500

    used = api.post("/gift_cards/redeem", {"code": code, "customer": fan.pk})
    assert used.status_code == 400
    assert used.json()["error"] == {"code": "gift_card_used_up", "message": "This gift card has already been redeemed.", "param": "code"}


def test_bad_input_is_a_clear_4xx_and_moves_nothing(api, store):
    fan = customer(store)
    other = StoreFactory()
    theirs, their_code = gc.gift_card_issue(store=other, amount=500)
    expired, expired_code = gc.gift_card_issue(store=store, amount=500, expires_at=timezone.now() + timedelta(seconds=1))
    gc.GiftCard.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    cases = [
        ("/gift_cards", {"amount": 0}, 400, "invalid_amount", "amount"),
        ("/gift_cards", {"amount": "5"}, 400, None, "amount"),
        ("/gift_cards", {"amount": 100, "recipient_email": "nope"}, 400, "gift_card_invalid", "recipient_email"),
        ("/gift_cards", {"amount": 100, "expires_at": "2001-01-01T00:00:00Z"}, 400, "gift_card_invalid", "expires_at"),
        ("/gift_cards/redeem", {"code": gc.code_generate(), "customer": fan.pk}, 400, "gift_card_code_invalid", "code"),
        ("/gift_cards/redeem", {"code": their_code, "customer": fan.pk}, 400, "gift_card_code_invalid", "code"),
        ("/gift_cards/redeem", {"code": expired_code, "customer": fan.pk}, 400, "gift_card_expired", "code"),
        ("/gift_cards/redeem", {"code": expired_code, "customer": "cus_nobody"}, 400, "resource_missing", "customer"),
    ]
    for path, body, status, code, param in cases:
        response = api.post(path, body)
        assert response.status_code == status, (body, response.json())
        error = response.json()["error"]
        assert error["param"] == param, (body, error)
        if code:
            assert error["code"] == code, (body, error)
    assert api.get(f"/gift_cards/{theirs.pk}").status_code == 404
    assert gc.GiftCard.objects.filter(store=store).count() == 1
    assert wallet_for(buyer=buyer_for_email(email=fan.email), currency="USD").account.balance == 0
    assert theirs.balance == 500 and gc.GiftCard.objects.get(pk=theirs.pk).status == "active"


def test_redemptions_through_the_api_are_limited_per_customer_not_per_server(api, store, settings):
    """The store's server redeems for all its customers from one address: only each customer's
    attempts are counted."""
    settings.STALL_LIMITS = {**settings.STALL_LIMITS, "gift_card_redeem_buyer": "2/15m", "gift_card_redeem_address": "2/15m"}
    fans = [customer(store, f"fan{n}@example.com") for n in range(3)]
    for fan in fans:
        assert api.post("/gift_cards/redeem", {"code": gc.code_generate(), "customer": fan.pk}).status_code == 400
    assert api.post("/gift_cards/redeem", {"code": gc.code_generate(), "customer": fans[0].pk}).status_code == 400
    refused = api.post("/gift_cards/redeem", {"code": gc.code_generate(), "customer": fans[0].pk})
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "rate_limited")
