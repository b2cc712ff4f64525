"""Chargebacks of Stripe payments (issue #11): Stripe's charge.dispute.* events, signed and POSTed
to Stall's webhook endpoint exactly as Stripe delivers them.

localstripe has no disputes (it never emits charge.dispute.* events, and has no test card that
makes one), so the order is paid through localstripe and the dispute events are built here in
Stripe's shape, naming that payment's real PaymentIntent. After every delivery the store's balance
is the sum of its orders' nets, and each order's columns are what the ledger moved for it.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from stall.audience.notifications import notifications_send
from stall.checkout.services import CheckoutItem, checkout_create
from stall.integrations.models import Event
from stall.ledger.models import AccountKind, Transfer
from stall.ledger.selectors import account_balance
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.licenses import license_activate, license_enable, license_policy_set
from stall.orders.models import ORDER_NET, DisputeState, LicenseKey, LicenseStatus, Order
from stall.orders.refunds import refund_create
from stall.orders.selectors import order_ledger_totals
from stall.payments.errors import RefundInvalid
from stall.payments.models import Dispute, StripeEvent
from stall.testing import product_with_file

from .conftest import VISA, signed_delivery

FEE = 1500  # STALL_STRIPE_DISPUTE_FEE's default: Stripe's $15.00


def _post(client, store, payload, **signing):
    body, header = signed_delivery(payload, **signing)
    return client.post(
        f"/webhooks/stripe/{store.pk}", data=body, content_type="application/json", headers={"Stripe-Signature": header}
    )


def _event(event_id, event_type, dispute):
    return {
        "id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
        "api_version": "2024-06-20", "livemode": False, "data": {"object": dispute},
    }


def _dispute(order, status, *, dispute_id="dp_1", amount=None, reason="fraudulent"):
    """A Stripe Dispute object of ``order``'s payment, as Stripe sends it in the event."""
    return {
        "id": dispute_id, "object": "dispute", "amount": order.amount_total if amount is None else amount,
        "currency": order.currency.lower(), "charge": "ch_" + order.payment.rail_reference[3:],
        "payment_intent": order.payment.rail_reference, "reason": reason, "status": status,
        "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
        "is_charge_refundable": False, "livemode": False,
    }


def _paid_order(store, card, amount=1000, email="fan@example.com"):
    """A $10.00 order paid by card through localstripe, of a product issuing a license key."""
    product = product_with_file(store=store, name=f"Plugin {amount}", amount=amount)
    license_policy_set(product=product, enabled=True, activation_limit=2)
    checkout = checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])
    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=card(VISA))
    return Order.objects.select_related("payment").get(pk=checkout.order.pk)


def _balance(store):
    return account_balance(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD").amount


def _books_agree(store):
    """The store's balance is the sum of its orders' nets; every order's columns are the ledger's."""
    orders = list(Order.objects.filter(store=store))
    assert _balance(store) == Order.objects.filter(store=store).aggregate(net=Sum(ORDER_NET))["net"]
    ledger = order_ledger_totals(orders=orders)
    for order in orders:
        figures = ledger[order.pk]
        assert (figures.net, figures.disputed, figures.dispute_fee) == (order.net, -order.amount_disputed, -order.dispute_fee)
    return _balance(store)


def _key(order):
    return LicenseKey.objects.get(order=order)


def test_a_lost_dispute_takes_the_money_and_the_fee_once_and_withdraws_what_was_bought(
    stripe_store, card, client, api, django_capture_on_commit_callbacks, mailoutbox,
):
    """created (needs_response) takes the $10.00 and the $15.00 fee from the balance, marks the
    order disputed and disables its key; the same event again, and funds_withdrawn after it, move
    nothing more; closed as lost revokes the downloads and keeps the key disabled. Each step is an
    event for the creator's webhooks, and the creator is emailed."""
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee
    activation = license_activate(key=_key(order).key, instance_name="laptop")
    assert activation["activated"] and _books_agree(stripe_store) == 1000 - fee

    created = _event("evt_dp_created", "charge.dispute.created", _dispute(order, "needs_response"))
    first = _post(client, stripe_store, created)
    again = _post(client, stripe_store, created)
    withdrawn = _post(client, stripe_store, _event("evt_dp_withdrawn", "charge.dispute.funds_withdrawn", _dispute(order, "needs_response")))

    assert (first.status_code, first.json()["duplicate"], again.json()["duplicate"], withdrawn.status_code) == (200, False, True, 200)
    order.refresh_from_db()
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.amount, dispute.fee, dispute.withdrawn, dispute.store_id) == ("needs_response", 1000, FEE, True, stripe_store.pk)
    assert (order.dispute_state, order.amount_disputed, order.dispute_fee) == (DisputeState.OPEN, 1000, FEE)
    assert _books_agree(stripe_store) == 1000 - fee - 1000 - FEE
    assert sorted(Transfer.objects.filter(reference=order.pk, code__startswith="dispute").values_list("code", "amount")) == [
        ("dispute", 1000), ("dispute_fee", FEE)]
    key = _key(order)
    assert (key.status, key.disabled_reason) == (LicenseStatus.DISABLED, "disputed")
    body = api.get(f"/orders/{order.pk}").json()
    assert (body["disputed"], body["dispute_status"], body["amount_disputed"], body["dispute_fee"], body["net"]) == (
        True, "open", 1000, FEE, 1000 - fee - 1000 - FEE)
    assert list(Event.objects.filter(store=stripe_store, type__in=["order.disputed", "dispute.closed"]).values_list("type", flat=True)) == ["order.disputed"]

    lost = _post(client, stripe_store, _event("evt_dp_lost", "charge.dispute.closed", _dispute(order, "lost")))

    assert lost.status_code == 200
    order.refresh_from_db()
    assert (order.dispute_state, order.amount_disputed, order.dispute_fee) == (DisputeState.LOST, 1000, FEE)
    assert _books_agree(stripe_store) == 1000 - fee - 1000 - FEE
    assert Transfer.objects.filter(reference=order.pk, code__startswith="dispute").count() == 2
    assert all(ent.revoked_at is not None for ent in order.entitlements.all())
    assert _key(order).status == LicenseStatus.DISABLED
    events = Event.objects.filter(store=stripe_store, type__in=["order.disputed", "dispute.closed"]).order_by("pk")
    assert [(e.type, e.data["object"]["dispute_status"], e.data["object"]["dispute"]["status"]) for e in events] == [
        ("order.disputed", "open", "needs_response"), ("dispute.closed", "lost", "lost")]
    assert StripeEvent.objects.count() == 3

    mailoutbox.clear()
    notifications_send(now=timezone.now() + timedelta(seconds=10))
    told = [m for m in mailoutbox if "Chargeback" in m.subject]
    assert [m.subject for m in told] == [
        f"{stripe_store.name}: " + (
            f"Chargeback: fan@example.com disputed $10.00 (order {order.pk}, fraudulent); evidence due by "
            f"{(timezone.now() + timedelta(days=7)):%b %-d, %Y}"
        )[:120],
        f"{stripe_store.name}: Chargeback lost: $10.00 of order {order.pk} (fan@example.com)",
    ]
    assert [m.to for m in told] == [[stripe_store.owner.email]] * 2


def test_a_won_dispute_gives_the_amount_back_and_the_key_works_again(stripe_store, card, client, api, settings):
    """created, funds_withdrawn, funds_reinstated, closed (won): the amount comes back once; the
    fee stays spent (STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON off) and the key is enabled again."""
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee

    for event_id, event_type, status in [
        ("evt_1", "charge.dispute.created", "needs_response"),
        ("evt_2", "charge.dispute.funds_withdrawn", "needs_response"),
        ("evt_3", "charge.dispute.funds_reinstated", "under_review"),
        ("evt_4", "charge.dispute.closed", "won"),
    ]:
        assert _post(client, stripe_store, _event(event_id, event_type, _dispute(order, status))).status_code == 200
        _books_agree(stripe_store)

    order.refresh_from_db()
    assert (order.dispute_state, order.amount_disputed, order.dispute_fee) == (DisputeState.WON, 0, FEE)
    assert _books_agree(stripe_store) == 1000 - fee - FEE
    assert sorted(Transfer.objects.filter(reference=order.pk, code__startswith="dispute").values_list("code", "amount")) == [
        ("dispute", 1000), ("dispute_fee", FEE), ("dispute_reinstated", 1000)]
    assert (_key(order).status, _key(order).disabled_reason) == (LicenseStatus.ACTIVE, "")
    assert all(ent.revoked_at is None for ent in order.entitlements.all())
    body = api.get(f"/orders/{order.pk}").json()
    assert (body["disputed"], body["dispute_status"], body["net"]) == (True, "won", 1000 - fee - FEE)
    # A won dispute's order can be refunded again, as Stripe allows.
    refund_create(store=stripe_store, order_id=order.pk, amount=100)
    assert _books_agree(stripe_store) == 1000 - fee - FEE - 100


def test_a_won_dispute_returns_the_fee_where_stripe_does(stripe_store, card, client, settings):
    """With STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON and a €-style 2000 fee, a win gives both back."""
    settings.STALL_STRIPE_DISPUTE_FEE = 2000
    settings.STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON = True
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee
    _post(client, stripe_store, _event("evt_1", "charge.dispute.created", _dispute(order, "needs_response", amount=400)))
    order.refresh_from_db()
    assert (order.amount_disputed, order.dispute_fee, _books_agree(stripe_store)) == (400, 2000, 1000 - fee - 400 - 2000)

    _post(client, stripe_store, _event("evt_2", "charge.dispute.closed", _dispute(order, "won", amount=400)))

    order.refresh_from_db()
    assert (order.dispute_state, order.amount_disputed, order.dispute_fee) == (DisputeState.WON, 0, 0)
    assert _books_agree(stripe_store) == 1000 - fee


def test_events_out_of_order_move_the_money_once(stripe_store, card, client):
    """The closing event (won) arrives first: the dispute is recorded, withdrawn and reinstated in
    one step (the fee shows). The late created and funds_withdrawn events reopen nothing."""
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee

    _post(client, stripe_store, _event("evt_won", "charge.dispute.closed", _dispute(order, "won")))
    _post(client, stripe_store, _event("evt_created", "charge.dispute.created", _dispute(order, "needs_response")))
    _post(client, stripe_store, _event("evt_withdrawn", "charge.dispute.funds_withdrawn", _dispute(order, "needs_response")))

    order.refresh_from_db()
    assert (Dispute.objects.get().status, order.dispute_state, order.amount_disputed) == ("won", DisputeState.WON, 0)
    assert _books_agree(stripe_store) == 1000 - fee - FEE
    assert Transfer.objects.filter(reference=order.pk, code__startswith="dispute").count() == 3
    assert sorted(Event.objects.filter(type__in=["order.disputed", "dispute.closed"]).values_list("type", flat=True)) == [
        "dispute.closed", "order.disputed"]


def test_an_inquiry_moves_no_money_and_its_closing_gives_the_key_back(stripe_store, card, client):
    """An inquiry (warning_needs_response) takes nothing and charges no fee; it disables the key
    until it closes (warning_closed)."""
    order = _paid_order(stripe_store, card)
    balance = _books_agree(stripe_store)

    _post(client, stripe_store, _event("evt_1", "charge.dispute.created", _dispute(order, "warning_needs_response")))
    order.refresh_from_db()
    assert (order.dispute_state, _key(order).status, _books_agree(stripe_store)) == (DisputeState.OPEN, LicenseStatus.DISABLED, balance)

    _post(client, stripe_store, _event("evt_2", "charge.dispute.closed", _dispute(order, "warning_closed")))

    order.refresh_from_db()
    assert (order.dispute_state, _key(order).status, _books_agree(stripe_store)) == (DisputeState.CLOSED, LicenseStatus.ACTIVE, balance)
    assert not Transfer.objects.filter(code__startswith="dispute").exists()


def test_unknown_charges_forged_and_foreign_events_change_nothing(stripe_store, card, client, caplog, store_factory_with_stripe):
    """A dispute of a payment we do not know is acknowledged and ignored; a wrong signature is a
    400; a dispute of this store's payment sent to another store's endpoint is ignored."""
    order = _paid_order(stripe_store, card)
    balance = _books_agree(stripe_store)
    unknown = {**_dispute(order, "needs_response"), "payment_intent": "pi_not_ours", "charge": "ch_not_ours"}

    responses = [
        _post(client, stripe_store, _event("evt_unknown", "charge.dispute.created", unknown)),
        _post(client, stripe_store, _event("evt_forged", "charge.dispute.created", _dispute(order, "lost")), secret="whsec_wrong"),
        _post(client, store_factory_with_stripe, _event("evt_foreign", "charge.dispute.created", _dispute(order, "lost"))),
        _post(client, stripe_store, _event("evt_too_big", "charge.dispute.created", _dispute(order, "lost", amount=1001))),
    ]

    assert [r.status_code for r in responses] == [200, 400, 200, 200]
    assert responses[1].json()["error"]["code"] == "invalid_signature"
    assert not Dispute.objects.exists()
    assert not Transfer.objects.filter(code__startswith="dispute").exists()
    order.refresh_from_db()
    assert (order.dispute_state, _books_agree(stripe_store)) == (DisputeState.NONE, balance)
    assert set(StripeEvent.objects.values_list("pk", flat=True)) == {"evt_unknown", "evt_foreign", "evt_too_big"}
    assert "no payment of ours" in caplog.text


@pytest.fixture
def store_factory_with_stripe(localstripe, settings):
    """A second store with its own Stripe keys (the same localstripe, another webhook secret)."""
    from stall.payments.stripe_services import stripe_account_set
    from stall.testing import StoreFactory

    from .conftest import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET

    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    other = StoreFactory()
    stripe_account_set(store=other, secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, webhook_secret=WEBHOOK_SECRET, api_base=localstripe)
    return other


def test_a_disputed_order_cannot_be_refunded_nor_its_key_enabled(stripe_store, card, client, api):
    """While the dispute is open: refund_create and the API refuse with charge_disputed and move
    nothing; the creator cannot enable the key; the dashboard's order page says so."""
    order = _paid_order(stripe_store, card)
    _post(client, stripe_store, _event("evt_1", "charge.dispute.created", _dispute(order, "needs_response", amount=600)))
    balance = _books_agree(stripe_store)

    with pytest.raises(RefundInvalid, match="^This order's payment is disputed by the cardholder: it cannot be refunded.$"):
        refund_create(store=stripe_store, order_id=order.pk, amount=100)
    response = api.post("/refunds", {"order": order.pk})
    with pytest.raises(Exception, match="disputed by the cardholder: it stays disabled"):
        license_enable(store=stripe_store, license_id=_key(order).pk)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "charge_disputed")
    assert _books_agree(stripe_store) == balance
    assert not order.refunds.exists()
    client.force_login(stripe_store.owner)
    page = client.get(f"/dashboard/{stripe_store.slug}/orders/{order.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="dispute-badge">Disputed<' in html
    assert "The cardholder disputed $6.00 with their bank (fraudulent)." in html
    assert "The payment is disputed by the cardholder: it cannot be refunded." in html
    assert 'data-testid="amount-disputed">−$6.00<' in html


@pytest.mark.django_db(transaction=True)
def test_simultaneous_deliveries_of_one_dispute_withdraw_once(stripe_store, card):
    """created and funds_withdrawn, distinct events of one dispute, delivered at the same moment
    by two connections: one withdrawal, one fee."""
    order = _paid_order(stripe_store, card)
    fee = order.payment.fee
    payloads = [
        _event("evt_a", "charge.dispute.created", _dispute(order, "needs_response")),
        _event("evt_b", "charge.dispute.funds_withdrawn", _dispute(order, "needs_response")),
        _event("evt_c", "charge.dispute.updated", _dispute(order, "under_review")),
    ]
    start, codes = threading.Barrier(len(payloads)), []

    def deliver(payload):
        try:
            start.wait()
            codes.append(_post(Client(), stripe_store, payload).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert codes == [200, 200, 200]
    order.refresh_from_db()
    assert (Dispute.objects.count(), order.amount_disputed, order.dispute_fee) == (1, 1000, FEE)
    assert _books_agree(stripe_store) == 1000 - fee - 1000 - FEE
