"""License keys: issued per order of a product with a license policy, checked by the public
key-authenticated API (activate, validate, deactivate), disabled by refunds, managed by the creator."""

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.ledger.tests.test_concurrency import in_threads
from stall.orders import licenses
from stall.orders.models import LicenseActivation, LicenseKey
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, StoreFactory, buy


def post(client, action, body, address="127.0.0.1"):
    """A call from the licensed software: JSON, no API key."""
    response = client.post(f"/api/v1/licenses/{action}", json.dumps(body), content_type="application/json",
                           REMOTE_ADDR=address)
    return response.status_code, response.json()


@pytest.fixture
def app(store):
    product = ProductFactory(store=store, name="Pixel Tool", amount=900)
    licenses.license_policy_set(product=product, enabled=True, key_format="PIX-#####-#####-#####-#####", activation_limit=2)
    return product


@pytest.fixture
def key(store, app):
    order = buy(store=store, product=app, email="dev@example.com")
    return order.license_keys.get()


def test_a_key_format_must_leave_keys_unguessable(app):
    with pytest.raises(licenses.LicenseInvalid, match="at least 20 #"):
        licenses.license_policy_set(product=app, enabled=True, key_format="KEY-####-####")
    with pytest.raises(licenses.LicenseInvalid, match="Use letters, digits"):
        licenses.license_policy_set(product=app, enabled=True, key_format="#" * 20 + " /")
    with pytest.raises(licenses.LicenseInvalid, match="at least 1"):
        licenses.license_policy_set(product=app, enabled=True, activation_limit=0)


def test_a_paid_order_issues_a_key_in_the_creators_format(store, app, key):
    assert re.fullmatch(r"PIX(-[0-9A-Z]{5}){4}", key.key)
    assert (key.email, key.activation_limit, key.activations_used, key.status) == ("dev@example.com", 2, 0, "active")
    plain = ProductFactory(store=store)
    assert not buy(store=store, product=plain).license_keys.exists()


def test_a_wallet_purchase_issues_a_key_too(store, app):
    """The lean spend runs the license observer: its EXISTS column says the store issues keys."""
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.orders.checkout_pay import checkout_confirm
    from stall.wallets.services import wallet_top_up

    buyer = buyer_for_email(email="walleted@example.com")
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=app.pk)])
    order = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=buyer).order
    assert order.payment.rail == "wallet"
    assert LicenseKey.objects.filter(order_id=order.pk).count() == 1


def test_activate_validate_deactivate(client, key):
    status, body = post(client, "activate", {"license_key": key.key.lower(), "instance_name": "laptop"})
    assert status == 200, body
    instance = body["instance"]["id"]
    assert body["activated"] is True and instance.startswith("inst_")
    assert body["license_key"]["activations_used"] == 1

    status, body = post(client, "validate", {"license_key": key.key, "instance_id": instance})
    assert status == 200
    assert body["valid"] is True and body["error"] is None
    info = body["license_key"]
    assert (info["status"], info["product"]["name"], info["customer_email"]) == ("active", "Pixel Tool", "dev@example.com")
    assert (info["activation_limit"], info["activations_used"], info["expires_at"]) == (2, 1, None)
    assert body["instance"]["name"] == "laptop"

    status, body = post(client, "deactivate", {"license_key": key.key, "instance_id": instance})
    assert (status, body["deactivated"], body["license_key"]["activations_used"]) == (200, True, 0)
    status, body = post(client, "validate", {"license_key": key.key, "instance_id": instance})
    assert body["valid"] is False and body["error"]["code"] == "instance_invalid"
    status, body = post(client, "deactivate", {"license_key": key.key, "instance_id": instance})
    assert (status, body["error"]["code"]) == (404, "instance_invalid")


def test_bad_keys_and_the_limit_are_clear_errors_that_change_nothing(client, store, key):
    assert post(client, "validate", {"license_key": "PIX-00000-00000-00000-00000"}) == (404, {"error": {
        "code": "license_key_invalid", "message": "No license has this key.", "param": "license_key"}})
    status, body = post(client, "activate", {"license_key": key.key, "instance_name": "  "})
    assert (status, body["error"]["param"]) == (400, "instance_name")
    status, body = post(client, "activate", {"license_key": key.key})
    assert (status, body["error"]["param"]) == (400, "instance_name")
    status, body = post(client, "validate", {"license_key": 12345})
    assert status == 400
    for name in ("one", "two"):
        assert post(client, "activate", {"license_key": key.key, "instance_name": name})[0] == 200
    status, body = post(client, "activate", {"license_key": key.key, "instance_name": "three"})
    assert (status, body["error"]["code"]) == (403, "activation_limit_reached")
    assert LicenseActivation.objects.filter(license=key).count() == 2
    assert LicenseKey.objects.get(pk=key.pk).activations_used == 2


def test_expired_and_disabled_keys_are_refused_but_still_described(client, store, app, key):
    licenses.license_policy_set(product=app, enabled=True, activation_limit=None, valid_days=30)
    order = buy(store=store, product=app, email="yearly@example.com")
    timed = order.license_keys.get()
    assert timed.activation_limit is None and timed.expires_at is not None
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        status, body = post(client, "validate", {"license_key": timed.key})
        assert (status, body["valid"], body["error"]["code"], body["license_key"]["status"]) == (200, False, "license_expired", "expired")
        status, body = post(client, "activate", {"license_key": timed.key, "instance_name": "late"})
        assert (status, body["error"]["code"]) == (403, "license_expired")
    licenses.license_disable(store=store, license_id=key.pk)
    status, body = post(client, "activate", {"license_key": key.key, "instance_name": "x"})
    assert (status, body["error"]["code"]) == (403, "license_disabled")
    licenses.license_enable(store=store, license_id=key.pk)
    assert post(client, "activate", {"license_key": key.key, "instance_name": "x"})[0] == 200


def test_a_refund_disables_the_key_and_it_cannot_be_re_enabled(client, store, key):
    refund_create(store=store, order_id=key.order_id)
    status, body = post(client, "validate", {"license_key": key.key})
    assert (body["valid"], body["license_key"]["status"]) == (False, "disabled")
    with pytest.raises(licenses.LicenseInvalid, match="was refunded"):
        licenses.license_enable(store=store, license_id=key.pk)


def test_the_creator_resets_activations_and_raises_the_limit_for_one_customer(client, store, key):
    for name in ("a", "b"):
        post(client, "activate", {"license_key": key.key, "instance_name": name})
    with pytest.raises(licenses.LicenseInvalid, match="cannot go below"):
        licenses.license_limit_raise(store=store, license_id=key.pk, activation_limit=1)
    assert licenses.license_limit_raise(store=store, license_id=key.pk, activation_limit=3).activation_limit == 3
    assert post(client, "activate", {"license_key": key.key, "instance_name": "c"})[0] == 200
    assert licenses.license_activations_reset(store=store, license_id=key.pk).activations_used == 0
    assert not LicenseActivation.objects.filter(license=key, deactivated_at__isnull=True).exists()
    other = StoreFactory()
    with pytest.raises(licenses.NotFound):
        licenses.license_disable(store=other, license_id=key.pk)


@override_settings(STALL_LIMITS={"license_key": "3/1m", "license_address": "5/1m"})
def test_calls_are_rate_limited_per_key_and_guesses_per_address(client, store, app, key):
    """Each key takes so many calls; an address so many unknown keys, and then nothing at all."""
    for _ in range(3):
        assert post(client, "validate", {"license_key": key.key}, address="198.51.100.7")[0] == 200
    status, body = post(client, "validate", {"license_key": key.key}, address="198.51.100.8")
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    other = buy(store=store, product=app, email="other@example.com").license_keys.get()
    for n in range(5):
        assert post(client, "validate", {"license_key": f"PIX-{n}0000-00000-00000-00000"}, address="198.51.100.9")[0] == 404
    status, body = post(client, "validate", {"license_key": other.key}, address="198.51.100.9")
    assert (status, body["error"]["code"]) == (429, "rate_limited")  # a right guess now tells nothing
    assert post(client, "validate", {"license_key": other.key}, address="198.51.100.10")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_simultaneous_activations_at_the_limit_never_pass_it(store, app):
    order = buy(store=store, product=app, email="race@example.com")
    lic = order.license_keys.get()
    racers = 5
    results, errors = in_threads(racers, lambda i: licenses.license_activate(key=lic.key, instance_name=f"m{i}"))
    won = [r for r in results if r is not None]
    assert len(won) == 2, errors
    assert all(isinstance(e, licenses.LicenseLimitReached) for e in errors if e is not None), errors
    lic.refresh_from_db()
    assert lic.activations_used == 2 == LicenseActivation.objects.filter(license=lic).count()


# --- receipt, library, creator pages ---------------------------------------------------------------


def test_the_key_is_in_the_receipt_and_the_library(client, store, app, django_capture_on_commit_callbacks):
    from django.core import mail

    from stall.wallets.tests.conftest import sign_in

    with django_capture_on_commit_callbacks(execute=True):
        order = buy(store=store, product=app, email="dev@example.com")
    key = order.license_keys.get().key
    receipt = [m for m in mail.outbox if m.to == ["dev@example.com"]][-1]
    assert f"Pixel Tool: {key}" in receipt.body
    sign_in(client, buyer_for_email(email="dev@example.com"))
    library = client.get("/library/")
    assert key in library.content.decode()


def test_the_creator_sets_the_policy_and_manages_an_orders_keys(client, creator, store, app, key):
    client.force_login(creator)
    url = f"/dashboard/{store.slug}/products/{app.pk}/license/"
    bad = client.post(url, {"enabled": "on", "key_format": "SHORT-####"})
    assert bad.status_code == 400 and "at least 20 #" in bad.content.decode()
    client.post(url, {"enabled": "on", "key_format": "#" * 25, "activation_limit": "5"})
    assert licenses.LicensePolicy.objects.get(product=app).activation_limit == 5
    page = client.get(f"/dashboard/{store.slug}/orders/{key.order_id}/")
    assert key.key in page.content.decode()
    base = f"/dashboard/{store.slug}/licenses/{key.pk}"
    client.post(f"{base}/disable/")
    assert LicenseKey.objects.get(pk=key.pk).status == "disabled"
    client.post(f"{base}/enable/")
    client.post(f"{base}/limit/", {"activation_limit": "9"})
    assert LicenseKey.objects.get(pk=key.pk).activation_limit == 9
    licenses.license_activate(key=key.key, instance_name="pc")
    client.post(f"{base}/reset/")
    assert LicenseKey.objects.get(pk=key.pk).activations_used == 0
    other = StoreFactory(owner=creator)
    assert client.post(f"/dashboard/{other.slug}/licenses/{key.pk}/disable/").status_code == 404
