from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from unittest import mock

import pytest
from django.db.models import Sum
from django.utils import timezone

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.integrations.services import api_key_create
from stall.ledger.models import Transfer
from stall.ledger.selectors import account_balance
from stall.orders.models import Order
from stall.payments.rails.wallet import fee_pool_for, wallet_for
from stall.testing import ApiClient, StoreFactory
from stall.wallets.allowances import allowance_grant, allowance_revoke, charge_create
from stall.wallets.models import Charge
from stall.wallets.services import wallet_top_up


@pytest.fixture
def player(db):
    """A buyer with $10.00 in their wallet."""
    buyer = buyer_for_email(email="player@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def customer(store, player):
    """The store's customer id for the player, who lets the store charge $5.00 a day."""
    allowance_grant(buyer=player, store=store, amount=500, period="day")
    return Customer.objects.get(store=store, email=player.email).pk


def money_state(store, buyer) -> tuple:
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet.account.refresh_from_db()
    return (
        wallet.account.balance, fee_pool_for(wallet).balance,
        account_balance(kind="store_balance", owner=store.pk, currency="USD").amount,
        Transfer.objects.count(), Transfer.objects.aggregate(s=Sum("amount"))["s"],
        Order.objects.count(), Charge.objects.count(),
    )


def body(customer_id, **kwargs):
    return {"customer": customer_id, "amount": 25, "currency": "USD", "description": "10 gems", **kwargs}


def test_post_charges_charges_the_wallet_and_returns_the_charge(api, store, player, customer):
    response = api.post("/charges", body(customer), idempotency_key="c-1")
    assert response.status_code == 200, response.content
    data = response.json()
    charge = Charge.objects.get()
    assert data == {
        "id": charge.pk, "object": "charge", "customer": customer, "amount": 25, "currency": "USD",
        "description": "10 gems", "order": charge.order_id, "allowance": charge.allowance_id, "fee": 1,
        "fee_refunded": 0, "fee_net": 1, "livemode": True,
        "created": int(charge.created_at.timestamp()),
    }
    assert wallet_for(buyer=player, currency="USD").account.balance == 975
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 24


def test_a_replayed_idempotency_key_charges_once(api, store, player, customer):
    """The same POST twice with one key: the same answer, one charge, 25¢ taken once."""
    first = api.post("/charges", body(customer), idempotency_key="once")
    second = api.post("/charges", body(customer), idempotency_key="once")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Charge.objects.count() == 1
    assert wallet_for(buyer=player, currency="USD").account.balance == 975


def test_a_retry_that_misses_the_replay_still_charges_once(store, player, customer, client):
    """With another API key (so the middleware's record does not match), the charge's own key holds."""
    _, secret_a = api_key_create(store=store, name="a")
    _, secret_b = api_key_create(store=store, name="b")
    first = ApiClient(client, secret_a).post("/charges", body(customer), idempotency_key="same")
    second = ApiClient(client, secret_b).post("/charges", body(customer), idempotency_key="same")
    assert second.json()["id"] == first.json()["id"]
    assert Charge.objects.count() == 1


@pytest.mark.parametrize(
    ("setup", "payload", "status", "code", "param"),
    [
        ("none", {}, 403, "allowance_missing", None),
        ("revoked", {}, 403, "allowance_revoked", None),
        ("expired", {}, 403, "allowance_expired", None),
        ("grant", {"amount": 501}, 402, "allowance_exceeded", "amount"),
        ("big", {"amount": 1001}, 402, "insufficient_funds", "amount"),
        ("grant", {"currency": "EUR"}, 400, "currency_mismatch", "currency"),
        ("grant", {"currency": "ZZZ"}, 400, "invalid_currency", "currency"),
        ("grant", {"currency": "usd1"}, 400, "invalid_currency", "currency"),
        ("grant", {"amount": 0}, 400, "invalid_amount", "amount"),
        ("grant", {"amount": -25}, 400, "invalid_amount", "amount"),
        ("grant", {"amount": "25"}, 400, "invalid_request", "amount"),
        ("grant", {"amount": 2.5}, 400, "invalid_request", "amount"),
        ("grant", {"amount": None}, 400, "invalid_request", "amount"),
        ("grant", {"customer": "cus_doesnotexist"}, 400, "resource_missing", "customer"),
        ("grant", {"customer": "not an id"}, 400, "resource_missing", "customer"),
        ("grant", {"description": "x" * 121}, 400, "invalid_request", "description"),
        ("grant", {"description": "a\x00b"}, 400, "invalid_request", "description"),
        ("grant", {"ammount": 25}, 400, "invalid_request", "ammount"),
    ],
)
def test_a_refused_charge_answers_a_clear_error_and_moves_no_money(api, store, player, setup, payload, status, code, param):
    """Every refusal is the error object with its code and parameter; balances and the ledger stay as they were."""
    if setup != "none":
        allowance = allowance_grant(
            buyer=player, store=store, amount=5000 if setup == "big" else 500, period="day",
            expires_at=timezone.now() + timedelta(seconds=1) if setup == "expired" else None,
        )
        if setup == "revoked":
            allowance_revoke(buyer=player, allowance_id=allowance.pk)
    else:
        # A customer of the store (they bought something) who never granted an allowance.
        Customer.objects.create(store=store, email=player.email)
    customer = Customer.objects.get(store=store, email=player.email).pk
    before = money_state(store, player)
    later = timezone.now() + timedelta(seconds=2)
    with mock.patch("django.utils.timezone.now", return_value=later) if setup == "expired" else _nothing():
        response = api.post("/charges", body(customer, **payload))
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]
    assert money_state(store, player) == before


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_refusal_messages_name_what_is_wrong(api, store, player, customer):
    api.post("/charges", body(customer, amount=450))
    response = api.post("/charges", body(customer, amount=60))
    assert response.json()["error"]["message"] == "This charge is more than the $0.50 left of the customer's allowance this day."
    response = api.post("/charges", body(customer, currency="EUR"))
    assert response.json()["error"]["message"] == "This store charges in USD."


def test_list_and_retrieve_charges_newest_first(api, store, player, customer):
    ids = [api.post("/charges", body(customer, amount=10 + i)).json()["id"] for i in range(3)]
    listed = api.get("/charges", {"limit": 2}).json()
    assert [c["id"] for c in listed["data"]] == ids[::-1][:2]
    assert listed["has_more"] is True
    rest = api.get("/charges", {"limit": 2, "starting_after": ids[1]}).json()
    assert ([c["id"] for c in rest["data"]], rest["has_more"]) == ([ids[0]], False)
    one = api.get(f"/charges/{ids[0]}").json()
    assert (one["id"], one["amount"], one["object"]) == (ids[0], 10, "charge")


def test_another_stores_charges_and_customers_are_not_found(api, store, player, customer):
    """Store B's charge id, customer id or wallet answer 404 at store A, as if they did not exist."""
    other = StoreFactory()
    allowance_grant(buyer=player, store=other, amount=500, period="day")
    other_customer = Customer.objects.get(store=other, email=player.email).pk
    other_charge = charge_create(store=other, customer_id=other_customer, amount=25, currency="USD")
    for path in (f"/charges/{other_charge.pk}", f"/customers/{other_customer}", f"/customers/{other_customer}/wallet"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "resource_missing"
    assert api.get("/charges").json()["data"] == []
    before = money_state(other, player)
    response = api.post("/charges", body(other_customer))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "resource_missing")
    assert money_state(other, player) == before


def test_the_wallet_summary_shows_balance_and_allowance_while_allowed(api, store, player, customer):
    api.post("/charges", body(customer, amount=120))
    now = timezone.now()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    response = api.get(f"/customers/{customer}/wallet")
    assert response.status_code == 200, response.content
    allowance = Charge.objects.get().allowance
    assert response.json() == {
        "object": "customer_wallet", "customer": customer, "currency": "USD", "balance": 880,
        "allowance": {
            "id": allowance.pk, "amount": 500, "period": "day", "used": 120, "remaining": 380,
            "period_start": int(start.timestamp()), "period_end": int((start + timedelta(days=1)).timestamp()),
            "expires": None,
        },
    }


@pytest.mark.parametrize(("setup", "code"), [("none", "allowance_missing"), ("revoked", "allowance_revoked"), ("expired", "allowance_expired")])
def test_the_wallet_summary_is_refused_without_a_live_allowance(api, store, player, setup, code):
    """Without a live allowance the store learns nothing about the wallet: 403 and no balance."""
    if setup == "none":
        Customer.objects.create(store=store, email=player.email)
    else:
        allowance = allowance_grant(buyer=player, store=store, amount=500, period="week",
                                    expires_at=timezone.now() + timedelta(seconds=1))
        if setup == "revoked":
            allowance_revoke(buyer=player, allowance_id=allowance.pk)
    customer = Customer.objects.get(store=store, email=player.email).pk
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(seconds=2)):
        response = api.get(f"/customers/{customer}/wallet")
    assert response.status_code == 403
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code
    assert b"1000" not in response.content and b"balance" not in response.content


def test_customers_can_be_found_by_email(api, store, player, customer):
    response = api.get("/customers", {"email": "PLAYER@example.com"})
    data = response.json()["data"]
    assert [(c["id"], c["email"], c["object"]) for c in data] == [(customer, "player@example.com", "customer")]
    assert api.get("/customers", {"email": "nobody@example.com"}).json()["data"] == []
    assert api.get(f"/customers/{customer}").json()["email"] == "player@example.com"


def test_charges_need_an_api_key_and_refuse_other_methods(client, api, customer):
    response = client.post("/api/v1/charges", data="{}", content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    response = client.delete("/api/v1/charges")
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")
    response = client.post(f"/api/v1/customers/{customer}/wallet")
    assert response.status_code == 405


def test_the_openapi_document_lists_the_charge_and_customer_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/charges", "/api/v1/charges/{id}", "/api/v1/customers", "/api/v1/customers/{id}",
            "/api/v1/customers/{id}/wallet"} <= set(paths)
    assert set(paths["/api/v1/charges"]) == {"get", "post"}


def test_a_rolled_over_period_makes_room_again_over_the_api(api, store, player):
    day = datetime(2031, 5, 12, 10, tzinfo=dt_timezone.utc)
    with mock.patch("django.utils.timezone.now", return_value=day):
        allowance_grant(buyer=player, store=store, amount=100, period="day")
        customer = Customer.objects.get(store=store, email=player.email).pk
        assert api.post("/charges", body(customer, amount=100)).status_code == 200
        assert api.post("/charges", body(customer, amount=1)).json()["error"]["code"] == "allowance_exceeded"
    with mock.patch("django.utils.timezone.now", return_value=day + timedelta(days=1)):
        assert api.post("/charges", body(customer, amount=100)).status_code == 200


def test_a_refunded_charge_shows_its_fee_share_given_back(api, store, player, customer):
    """A 25¢ charge pays a 1¢ share of the top-up fee; once its order is refunded in full, the
    share is back in the wallet's pool and GET /charges/{id} says fee 1, fee_refunded 1, fee_net 0."""
    charge_id = api.post("/charges", body(customer)).json()["id"]
    order_id = Charge.objects.get(pk=charge_id).order_id

    refunded = api.post("/refunds", {"order": order_id})

    assert refunded.status_code == 200, refunded.content
    data = api.get(f"/charges/{charge_id}").json()
    assert (data["fee"], data["fee_refunded"], data["fee_net"]) == (1, 1, 0)
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 0
