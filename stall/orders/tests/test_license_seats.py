"""Paid extra seats for license keys (issue #11): with the buyer's consent from their library page,
an activation past the key's limit buys one more seat from their wallet or tab."""

import json

import pytest

from stall.accounts.services import buyer_for_email
from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance
from stall.ledger.tests.test_concurrency import in_threads
from stall.orders import licenses
from stall.orders.license_seats import (
    SeatConsentInvalid,
    SeatLimitReached,
    SeatsNotAllowed,
    license_activate_or_buy_seat,
    license_seat_consent_revoke,
    license_seat_consent_set,
)
from stall.orders.models import (
    LicenseActivation,
    LicenseKey,
    LicenseSeat,
    LicenseSeatConsent,
    Order,
)
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, buy
from stall.wallets.services import wallet_top_up
from stall.wallets.tests.conftest import assert_ledger_balanced, sign_in, store_balance, words

SEAT = 150  # $1.50 an extra seat
EMAIL = "dev@example.com"


def post(client, action, body, **headers):
    response = client.post(f"/api/v1/licenses/{action}", json.dumps(body), content_type="application/json", headers=headers)
    return response.status_code, response.json()


def _wallet(buyer) -> int:
    return account_balance(kind=AccountKind.BUYER_WALLET, owner=buyer.pk, currency="USD").amount


@pytest.fixture
def app(store):
    product = ProductFactory(store=store, name="Pixel Tool", amount=900)
    licenses.license_policy_set(product=product, enabled=True, key_format="PIX-#####-#####-#####-#####",
                                activation_limit=1, extra_seat_amount=SEAT)
    return product


@pytest.fixture
def buyer(db):
    buyer = buyer_for_email(email=EMAIL)
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def key(store, app, buyer):
    order = buy(store=store, product=app, email=EMAIL)
    lic = order.license_keys.get()
    licenses.license_activate(key=lic.key, instance_name="desktop")
    return lic


@pytest.mark.django_db
def test_without_consent_the_limit_refuses_and_says_how_to_allow_seats(client, key, buyer):
    """Past the limit with no consent: 403 activation_limit_reached naming the library page; no money moves."""
    before = _wallet(buyer)

    status, body = post(client, "activate", {"license_key": key.key, "instance_name": "laptop"})

    assert (status, body["error"]["code"]) == (403, "activation_limit_reached")
    assert body["error"]["message"] == (
        "This license key has reached its activation limit. Its owner can allow paid extra seats for it on their "
        "library page, or deactivate an instance."
    )
    assert _wallet(buyer) == before and not LicenseSeat.objects.exists()


@pytest.mark.django_db
def test_with_consent_an_activation_past_the_limit_buys_one_seat_from_the_wallet(client, store, key, buyer):
    """The activation answers with the instance and charged $1.50; the key's limit grows by one;
    the wallet, the store's balance and the ledger move exactly that; a retry with the same
    Idempotency-Key replays the answer and charges nothing more; the cap stops the third seat."""
    license_seat_consent_set(buyer=buyer, license_id=key.pk, method="wallet", max_extra_seats=2)
    wallet, balance = _wallet(buyer), store_balance(store)

    status, body = post(client, "activate", {"license_key": key.key, "instance_name": "laptop"}, **{"Idempotency-Key": "act-1"})
    again = post(client, "activate", {"license_key": key.key, "instance_name": "laptop"}, **{"Idempotency-Key": "act-1"})

    assert status == 200, body
    seat = LicenseSeat.objects.get()
    assert body["charged"] == {"amount": SEAT, "currency": "USD", "order": seat.order_id}
    assert (body["license_key"]["activation_limit"], body["license_key"]["activations_used"]) == (2, 2)
    assert again == (200, body)
    assert seat.instance_id == body["instance"]["id"]
    assert _wallet(buyer) == wallet - SEAT
    order = Order.objects.get(pk=seat.order_id)
    assert store_balance(store) == balance + order.net
    assert [(ln.name, ln.unit_amount) for ln in order.lines.all()] == [("Extra seat: Pixel Tool", SEAT)]
    assert LicenseKey.objects.filter(email=EMAIL).count() == 1  # the seat's order issues no key
    assert_ledger_balanced()

    status, second = post(client, "activate", {"license_key": key.key, "instance_name": "tablet"})
    assert (status, second["charged"]["amount"]) == (200, SEAT)
    status, third = post(client, "activate", {"license_key": key.key, "instance_name": "phone"})
    assert (status, third["error"]["code"]) == (403, "activation_limit_reached")
    assert third["error"]["message"].startswith("This license key has reached its activation limit and the most extra seats")
    key.refresh_from_db()
    assert (key.activation_limit, key.extra_seats, key.activations_used) == (3, 2, 3)
    assert _wallet(buyer) == wallet - 2 * SEAT


@pytest.mark.django_db
def test_a_freed_seat_is_used_before_a_new_one_is_bought(client, key, buyer):
    """A deactivation frees a seat: the next activation takes it and charges nothing."""
    license_seat_consent_set(buyer=buyer, license_id=key.pk, method="wallet", max_extra_seats=2)
    instance = LicenseActivation.objects.get(license=key)
    licenses.license_deactivate(key=key.key, instance_id=instance.pk)
    wallet = _wallet(buyer)

    answer = license_activate_or_buy_seat(key=key.key, instance_name="laptop")

    assert answer["charged"] is None and _wallet(buyer) == wallet


@pytest.mark.django_db
def test_the_tab_pays_when_the_buyer_chose_it_and_an_empty_wallet_refuses(client, store, app, settings):
    """Consent with the tab: the seat goes on the tab. Consent with an empty wallet: 402 insufficient_funds, no seat."""
    settings.STALL_TAB_FIRST_LIMIT = "5"  # a first tab holds $1.00 by default, less than a seat
    tabbed = buyer_for_email(email="tab@example.com")
    lic = buy(store=store, product=app, email=tabbed.email).license_keys.get()
    licenses.license_activate(key=lic.key, instance_name="one")
    license_seat_consent_set(buyer=tabbed, license_id=lic.pk, method="tab", max_extra_seats=1)
    status, body = post(client, "activate", {"license_key": lic.key, "instance_name": "two"})
    assert (status, body["charged"]["amount"]) == (200, SEAT)
    assert account_balance(kind=AccountKind.BUYER_TAB, owner=tabbed.pk, currency="USD").amount == SEAT  # owed on the tab

    poor = buyer_for_email(email="poor@example.com")
    lic2 = buy(store=store, product=app, email=poor.email).license_keys.get()
    licenses.license_activate(key=lic2.key, instance_name="one")
    license_seat_consent_set(buyer=poor, license_id=lic2.pk, method="wallet", max_extra_seats=1)
    status, body = post(client, "activate", {"license_key": lic2.key, "instance_name": "two"})
    assert (status, body["error"]["code"]) == (402, "insufficient_funds")
    lic2.refresh_from_db()
    assert (lic2.activation_limit, lic2.activations_used, lic2.extra_seats) == (1, 1, 0)
    assert not LicenseSeat.objects.filter(license=lic2).exists()
    assert_ledger_balanced()


@pytest.mark.django_db
def test_consent_refuses_bad_input_and_can_be_revoked(store, key, buyer, app):
    """Another buyer's key, no seat price, a method or a count out of range are refused; a revoked
    consent charges no more."""
    stranger = buyer_for_email(email="stranger@example.com")
    with pytest.raises(Exception, match="^No such license key.$"):
        license_seat_consent_set(buyer=stranger, license_id=key.pk, method="wallet", max_extra_seats=1)
    for method, count, param in [("card", 1, "method"), ("wallet", 0, "max_extra_seats"), ("wallet", 101, "max_extra_seats"),
                                 ("wallet", "2", "max_extra_seats"), ("wallet", True, "max_extra_seats")]:
        with pytest.raises(SeatConsentInvalid) as caught:
            license_seat_consent_set(buyer=buyer, license_id=key.pk, method=method, max_extra_seats=count)
        assert caught.value.param == param
    plain = ProductFactory(store=store, name="Free Tool", amount=100)
    licenses.license_policy_set(product=plain, enabled=True, activation_limit=1)
    other = buy(store=store, product=plain, email=EMAIL).license_keys.get()
    with pytest.raises(SeatConsentInvalid, match="does not sell extra seats"):
        license_seat_consent_set(buyer=buyer, license_id=other.pk, method="wallet", max_extra_seats=1)
    assert not LicenseSeatConsent.objects.exists()

    license_seat_consent_set(buyer=buyer, license_id=key.pk, method="wallet", max_extra_seats=3)
    license_seat_consent_revoke(buyer=buyer, license_id=key.pk)
    with pytest.raises(SeatsNotAllowed):
        license_activate_or_buy_seat(key=key.key, instance_name="laptop")
    with pytest.raises(licenses.LicenseInvalid, match="set one first"):
        licenses.license_policy_set(product=plain, enabled=True, extra_seat_amount=100)
    with pytest.raises(Exception, match="Amount must be a whole number"):
        licenses.license_policy_set(product=plain, enabled=True, activation_limit=1, extra_seat_amount="1")


@pytest.mark.django_db
def test_refunding_a_seats_order_gives_the_seat_up_and_the_license_order_ends_the_consent(client, store, key, buyer):
    """The seat's order refunded in full: the money goes back to the wallet, the limit drops by
    one and the seat's instance is deactivated. The key's own order refunded: consent revoked, key disabled."""
    license_seat_consent_set(buyer=buyer, license_id=key.pk, method="wallet", max_extra_seats=2)
    _, body = post(client, "activate", {"license_key": key.key, "instance_name": "laptop"})
    wallet = _wallet(buyer)

    refund_create(store=store, order_id=body["charged"]["order"])

    key.refresh_from_db()
    assert (key.activation_limit, key.extra_seats, key.activations_used) == (1, 0, 1)
    assert LicenseActivation.objects.get(pk=body["instance"]["id"]).deactivated_at is not None
    assert LicenseSeat.objects.get().released_at is not None
    assert _wallet(buyer) == wallet + SEAT

    refund_create(store=store, order_id=key.order_id)

    key.refresh_from_db()
    assert key.status == "disabled"
    assert LicenseSeatConsent.objects.get().revoked_at is not None
    assert_ledger_balanced()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_activations_past_the_limit_buy_at_most_the_cap_each_once(store, app):
    """Six activations past the limit at once with a cap of 2: two seats bought, each charged
    once with its instance; the others refused; the wallet paid exactly two seats."""
    buyer = buyer_for_email(email="race@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    lic = buy(store=store, product=app, email=buyer.email).license_keys.get()
    licenses.license_activate(key=lic.key, instance_name="first")
    license_seat_consent_set(buyer=buyer, license_id=lic.pk, method="wallet", max_extra_seats=2)
    wallet = _wallet(buyer)

    results, errors = in_threads(6, lambda i: license_activate_or_buy_seat(key=lic.key, instance_name=f"m{i}"))

    won = [r for r in results if r is not None]
    assert len(won) == 2, errors
    assert all(isinstance(e, SeatLimitReached | licenses.LicenseLimitReached) for e in errors if e is not None), errors
    assert sorted(r["charged"]["amount"] for r in won) == [SEAT, SEAT]
    lic.refresh_from_db()
    assert (lic.activation_limit, lic.extra_seats, lic.activations_used) == (3, 2, 3)
    assert LicenseSeat.objects.filter(license=lic).count() == 2
    assert _wallet(buyer) == wallet - 2 * SEAT
    assert_ledger_balanced()


@pytest.mark.django_db
def test_the_library_page_allows_and_stops_extra_seats(client, key, buyer, settings):
    """The buyer sees the seat's price, allows up to 3 from the tab, then stops; bad input is told."""
    sign_in(client, buyer)
    page = words(client.get("/library/"))
    assert "Past the limit, an activation can buy one more seat for $1.50" in page

    bad = client.post(f"/library/keys/{key.pk}/seats/", {"method": "tab", "max_extra_seats": "0"}, follow=True)
    assert "Ensure this value is greater than or equal to 1." in words(bad)
    assert not LicenseSeatConsent.objects.exists()
    allowed = client.post(f"/library/keys/{key.pk}/seats/", {"method": "tab", "max_extra_seats": "3"}, follow=True)
    assert "Allowed: up to 3 extra seats (0 bought)." in words(allowed)
    consent = LicenseSeatConsent.objects.get()
    assert (consent.method, consent.max_extra_seats, consent.buyer_id) == ("tab", 3, buyer.pk)
    stopped = client.post(f"/library/keys/{key.pk}/seats/", {"action": "revoke"}, follow=True)
    assert "Extra seats are no longer bought for this key." in words(stopped)
    assert LicenseSeatConsent.objects.get().revoked_at is not None

    korean = words(client.get("/library/", HTTP_ACCEPT_LANGUAGE="ko"))
    assert "한도를 넘으면 활성화할 때마다 좌석 하나를" in korean and "추가 좌석 허용" in korean
    assert "Past the limit" not in korean
    bad_ko = client.post(f"/library/keys/{key.pk}/seats/", {"method": "card", "max_extra_seats": "2"}, HTTP_ACCEPT_LANGUAGE="pt-br", follow=True)
    assert "Faça uma escolha válida." in words(bad_ko)


@pytest.mark.django_db
def test_the_creator_sets_the_extra_seat_price_on_the_products_license_page(client, creator, store):
    """"1.50" is 150 minor units; a price that is not an amount, or one without an activation
    limit, is refused on the form and saves nothing; empty stops selling seats."""
    product = ProductFactory(store=store, name="Seat Tool", amount=900)
    client.force_login(creator)
    url = f"/dashboard/{store.slug}/products/{product.pk}/license/"
    base = {"enabled": "on", "key_format": "#" * 25, "activation_limit": "2"}

    not_money = client.post(url, {**base, "extra_seat_amount": "lots"})
    no_limit = client.post(url, {**base, "activation_limit": "", "extra_seat_amount": "1.50"})
    assert (not_money.status_code, no_limit.status_code) == (400, 400)
    assert "Extra seats are sold past an activation limit: set one first." in no_limit.content.decode()
    assert not licenses.LicensePolicy.objects.filter(product=product).exists()

    client.post(url, {**base, "extra_seat_amount": "1.50"})
    assert licenses.LicensePolicy.objects.get(product=product).extra_seat_amount == 150
    assert 'value="1.50"' in client.get(url).content.decode()
    client.post(url, {**base, "extra_seat_amount": ""})
    assert licenses.LicensePolicy.objects.get(product=product).extra_seat_amount is None


@pytest.mark.django_db
def test_two_license_keys_may_send_the_same_idempotency_key(client, store, app, key):
    """The license endpoints carry no Authorization header: the credential is the key in the body.
    Two installs of different buyers that happen to pick the same Idempotency-Key must each get
    their own answer, not a 409 or the other's replay."""
    other = buy(store=store, product=app, email="other@example.com").license_keys.get()
    first = post(client, "validate", {"license_key": key.key}, **{"Idempotency-Key": "boot"})
    second = post(client, "validate", {"license_key": other.key}, **{"Idempotency-Key": "boot"})
    assert first[0] == second[0] == 200
    assert first[1] != second[1]
    assert post(client, "validate", {"license_key": key.key}, **{"Idempotency-Key": "boot"}) == first
