"""The sandbox is a test mode (issue #14): its test cards are on only where nothing real is set up,
and where they are on next to real money, what they pay for is test money, kept apart.

Real parts: the API and pages through Django's test client, Stripe as localstripe (for the
platform's keys and a real card sale), webhooks delivered to a local HTTP receiver, and
``manage.py check --deploy`` run as a subprocess with the environment an operator would set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from stall.checkout.models import Checkout, CheckoutStatus
from stall.integrations.tests.test_webhooks import Receiver
from stall.integrations.webhooks import webhook_endpoint_create
from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.models import Payment
from stall.payments.rails import UnknownPaymentMethod, rail_for, rail_livemode, sandbox_enabled
from stall.payments.rails.base import card_fee
from stall.payments.stripe_services import stripe_account_set
from stall.testing import StoreFactory, buy, product_with_file

from .conftest import PUBLISHABLE_KEY, SECRET_KEY, VISA, open_checkout

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def platform_keys(settings, localstripe):
    """The platform's Stripe keys in the environment (localstripe); STALL_SANDBOX_ENABLED unset."""
    settings.STRIPE_SECRET_KEY, settings.STRIPE_PUBLISHABLE_KEY = SECRET_KEY, PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = localstripe
    return settings


@pytest.fixture
def https(settings):
    """A Stall served at an https address, with no Stripe keys; STALL_SANDBOX_ENABLED left unset."""
    settings.BASE_URL = "https://shop.example.com"
    return settings


def balance(store, *, test: bool = False) -> int:
    owner = f"{store.pk}:test" if test else store.pk
    return account_balance(kind=AccountKind.STORE_BALANCE, owner=owner, currency="USD").amount


# --- When the test cards are on ------------------------------------------------------------------


def on(*store_ids) -> tuple[bool, ...]:
    """Whether test cards are on for pages of no store, then for each of these stores."""
    return (sandbox_enabled(), *(sandbox_enabled(store_id=store_id) for store_id in store_ids))


def test_left_to_stall_the_test_cards_are_on_only_where_nothing_is_real(
    store, settings, localstripe
):
    """Unset, the sandbox is on with no Stripe keys and an http base URL (the suite's own
    settings), and off with an https base URL, with the platform's Stripe keys, or for a store
    with its own keys (other stores keep it); 1 and 0 decide everywhere."""
    assert settings.STALL_SANDBOX_ENABLED is None
    keyed = StoreFactory()
    assert on(store.pk, keyed.pk) == (True, True, True)

    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    stripe_account_set(
        store=keyed, secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, api_base=localstripe
    )
    assert on(store.pk, keyed.pk) == (True, True, False)

    settings.BASE_URL = "https://shop.example.com"
    assert on(store.pk) == (False, False)
    settings.BASE_URL = "http://127.0.0.1:8000"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    assert on(store.pk) == (False, False)

    settings.STALL_SANDBOX_ENABLED = True
    assert on(store.pk, keyed.pk) == (True, True, True)
    settings.STRIPE_SECRET_KEY = ""
    settings.STALL_SANDBOX_ENABLED = False
    assert on(store.pk, keyed.pk) == (False, False, False)


def test_a_sandbox_payment_is_real_money_only_where_the_stall_takes_no_real_money(
    store, settings, localstripe
):
    """The demo's sandbox payments count like any (livemode true); once the Stall is real
    anywhere (https, the platform's Stripe keys, any store's own keys) they are test payments."""
    assert [rail_livemode(rail) for rail in ("sandbox", "stripe", "wallet")] == [True, True, True]
    settings.BASE_URL = "https://shop.example.com"
    assert (rail_livemode("sandbox"), rail_livemode("stripe")) == (False, True)
    settings.BASE_URL = "http://127.0.0.1:8000"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    assert rail_livemode("sandbox") is False
    settings.STRIPE_SECRET_KEY = ""
    assert rail_livemode("sandbox") is True
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    keyed = StoreFactory()
    stripe_account_set(
        store=keyed, secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, api_base=localstripe
    )
    assert rail_livemode("sandbox") is False


def test_a_store_with_its_own_stripe_keys_refuses_test_cards_while_other_stores_take_them(
    store, stripe_store
):
    """A store's own Stripe keys count as real for that store: test cards are refused there, with
    a message saying why, and a store without keys on the same Stall still takes them."""
    plain = StoreFactory()
    with pytest.raises(
        UnknownPaymentMethod,
        match="^Test cards are turned off for this store: it takes real card payments.$",
    ):
        rail_for(store=stripe_store, payment_method="sandbox_visa")
    assert rail_for(store=plain, payment_method="sandbox_visa").name == "sandbox"


# --- Where the Stall is real, test cards are absent and refused ----------------------------------


@pytest.fixture(params=["platform_keys", "https"])
def real_stall(request):
    """A Stall that takes real money, by either sign: the platform's Stripe keys, or https."""
    return request.getfixturevalue(request.param)


def test_the_api_refuses_a_test_card_where_the_stall_is_real(real_stall, api, product):
    """POST /checkouts/{id}/confirm with sandbox_visa is a 400 saying test cards are off; no
    payment is made and the checkout stays open."""
    checkout = api.post("/checkouts", {"email": "b@example.com", "product": product.pk}).json()

    response = api.post(f"/checkouts/{checkout['id']}/confirm", {"payment_method": "sandbox_visa"})

    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "sandbox_disabled", "message": "Test cards are turned off on this Stall.",
        "param": "payment_method",
    }}
    assert Payment.objects.count() == 0
    assert Checkout.objects.get(pk=checkout["id"]).status == CheckoutStatus.OPEN


def test_the_checkout_page_offers_no_test_card_where_the_stall_is_real(
    real_stall, client, store, product
):
    """The hosted payment page lists no test card (the Stripe page with the platform's keys; with
    an https address and no Stripe, a page saying the store takes no cards yet), and a test card
    posted to it anyway pays nothing."""
    checkout = open_checkout(store)

    page = client.get(f"/checkout/{checkout.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "sandbox_" not in html and "Test card" not in html and "Sandbox" not in html

    posted = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert not Payment.objects.filter(checkout=checkout, rail="sandbox").exists()
    assert Checkout.objects.get(pk=checkout.pk).status == CheckoutStatus.OPEN
    if real_stall.BASE_URL.startswith("https://"):
        assert posted.status_code == 400
        assert "This store does not take card payments yet." in posted.content.decode()


def test_the_wallet_pages_offer_no_test_card_where_the_stall_is_real(
    real_stall, client, store, product
):
    """The top-up, automatic top-up, tab and settle-and-buy forms list no test card."""
    from stall.accounts.services import buyer_for_email
    from stall.wallets.tests.conftest import sign_in, spend

    buyer = buyer_for_email(email="reader@example.com")
    cheap = product_with_file(store=store, name="Cheap", amount=25)
    spend(store=store, product=cheap, buyer=buyer, method="tab")
    sign_in(client, buyer)
    checkout = open_checkout(store, amount=500, email=buyer.email)
    for path in (
        f"/wallet/?currency=USD&store={store.slug}",
        "/wallet/?currency=USD",
        f"/wallet/tab/?currency=USD&store={store.slug}",
        f"/wallet/tab/settle/{checkout.pk}/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "sandbox_" not in html and "Test card" not in html and "Test mode" not in html, path


# --- Switched on next to Stripe: test mode -------------------------------------------------------


@pytest.fixture
def test_mode(platform_keys):
    """STALL_SANDBOX_ENABLED=1 next to the platform's Stripe keys: a staging Stall, or careless."""
    platform_keys.STALL_SANDBOX_ENABLED = True
    return platform_keys


def test_an_order_paid_with_a_test_card_is_a_test_order_in_the_api_and_its_webhook(
    test_mode, api, store, product, django_capture_on_commit_callbacks
):
    """Next to Stripe, sandbox_visa pays, but the checkout, its payment and its order say
    livemode false, and so does the order.paid event delivered to the store's endpoint."""
    test_mode.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    receiver = Receiver()
    try:
        webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["order.paid"])
        checkout = api.post("/checkouts", {"email": "b@example.com", "product": product.pk}).json()
        assert checkout["livemode"] is True  # nothing paid yet

        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                f"/checkouts/{checkout['id']}/confirm", {"payment_method": "sandbox_visa"}
            )

        assert response.status_code == 200
        data = response.json()
        assert (data["status"], data["livemode"]) == ("complete", False)
        assert data["payment"]["livemode"] is False
        order = api.get(f"/orders/{data['order']}").json()
        assert (order["livemode"], order["amount_total"]) == (False, 300)
        assert api.get("/orders").json()["data"][0]["livemode"] is False
        assert len(receiver.requests) == 1
        event = json.loads(receiver.requests[0][1])
        delivered = event["data"]["object"]
        assert (event["type"], delivered["id"]) == ("order.paid", data["order"])
        assert delivered["livemode"] is False
    finally:
        receiver.close()


def test_test_orders_stay_out_of_the_balance_and_real_sales_go_in(test_mode, api, store, card):
    """A test card's sale goes to the store's test balance; /balance shows only the real card's
    sale, less its fee. Refunding the test order takes it back out of the test balance alone."""
    product = product_with_file(store=store, amount=300)
    test_order = buy(store=store, product=product, payment_method="sandbox_visa")
    real_checkout = api.post("/checkouts", {"email": "b@example.com", "product": product.pk}).json()
    paid = api.post(f"/checkouts/{real_checkout['id']}/confirm", {"payment_method": card(VISA)})
    assert paid.status_code == 200
    real_order = Order.objects.get(checkout_id=real_checkout["id"])

    assert (test_order.livemode, test_order.payment.livemode) == (False, False)
    assert real_order.livemode is True
    assert api.get("/balance").json() == {
        "object": "balance", "store": store.pk,
        "available": [{"amount": 300 - real_order.fee, "currency": "USD"}],
    }
    assert balance(store, test=True) == 300 - card_fee(300, "USD") == 300 - test_order.fee

    refund_create(store=store, order_id=test_order.pk)
    assert (balance(store), balance(store, test=True)) == (300 - real_order.fee, -test_order.fee)


def test_the_platform_fee_of_a_test_order_is_test_money(test_mode, store, product):
    """A test order's platform fee goes to the platform's test account, not to its real one."""
    test_mode.STALL_PLATFORM_FEE_BPS = 1000
    order = buy(store=store, product=product, payment_method="sandbox_visa")
    assert order.platform_fee == 30
    fees = {
        owner: account_balance(kind=AccountKind.PLATFORM_FEES, owner=owner, currency="USD").amount
        for owner in ("platform", "platform:test")
    }
    assert fees == {"platform": 0, "platform:test": 30}


def test_the_checkout_page_says_test_mode_next_to_real_money(settings, client, store):
    """Turned on where the Stall is real, the sandbox's page says "Test mode" plainly, above the
    test cards; in the demo (nothing real) it keeps its quieter "Sandbox" badge only."""
    checkout = open_checkout(store)
    demo = client.get(f"/checkout/{checkout.pk}/").content.decode()
    assert 'value="sandbox_visa"' in demo and "Sandbox · test mode" in demo
    assert 'data-testid="test-mode"' not in demo

    settings.BASE_URL, settings.STALL_SANDBOX_ENABLED = "https://shop.example.com", True
    html = client.get(f"/checkout/{checkout.pk}/").content.decode()
    assert 'value="sandbox_visa"' in html
    assert (
        "Test mode</span> These are test cards: no real money moves. "
        "An order paid with one is a test order."
        in html
    )


# --- manage.py check --deploy --------------------------------------------------------------------


def test_the_deploy_check_warns_when_test_cards_are_on_at_an_https_address(settings):
    """payments.W001 is a deploy check: raised with an https base URL and the sandbox switched on,
    not when Stall turned it off there, not at an http address, and not by a plain check."""

    def warnings(deploy=True):
        return [
            m.id
            for m in checks.run_checks(include_deployment_checks=deploy)
            if m.id.startswith("payments.")
        ]

    settings.BASE_URL, settings.STALL_SANDBOX_ENABLED = "https://shop.example.com", True
    assert warnings() == ["payments.W001"]
    assert warnings(deploy=False) == []
    settings.STALL_SANDBOX_ENABLED = None
    assert warnings() == []
    settings.BASE_URL, settings.STALL_SANDBOX_ENABLED = "http://127.0.0.1:8000", True
    assert warnings() == []


def test_manage_py_check_deploy_reads_the_operators_environment(tmp_path):
    """From the environment an operator sets, STALL_SANDBOX_ENABLED=1 with an https STALL_BASE_URL
    makes ``manage.py check --deploy`` print the warning (a warning: the command still succeeds)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STALL_", "STRIPE_", "DJANGO_", "DATABASE_URL"))
    }
    env |= {
        "STALL_DATA_DIR": str(tmp_path), "STALL_BASE_URL": "https://shop.example.com",
        "STALL_SANDBOX_ENABLED": "1", "PYTHONPATH": str(ROOT),
    }

    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert (
        "(payments.W001) The sandbox's test cards (sandbox_visa, …) are on, "
        "and STALL_BASE_URL is https."
        in done.stderr
    )
    assert "System check identified 1 issue (0 silenced)." in done.stdout + done.stderr
