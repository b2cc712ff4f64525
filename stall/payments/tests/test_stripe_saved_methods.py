"""Saved payment methods: a card kept with a SetupIntent and charged off-session (localstripe),
and the sandbox rail behind the same two services."""

import pytest

from stall.checkout.models import CheckoutStatus
from stall.core.errors import Conflict, InvalidRequest
from stall.payments.errors import PaymentDeclined, PaymentMethodNeedsAction
from stall.payments.models import OffSessionCharge, Payment, PaymentStatus, SavedPaymentMethod
from stall.payments.saved_methods import payment_charge_saved, payment_method_save
from stall.testing import StoreFactory

from .conftest import DECLINED_ON_ATTACH, THREE_D_SECURE, VISA


def _intents_for(localstripe_client, payment_id):
    intents = localstripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return [i.id for i in intents if i.metadata.to_dict().get("stall_payment") == payment_id]


def test_a_card_saved_with_a_setup_intent_is_charged_off_session_once(stripe_store, card, localstripe_client):
    """Saving makes a Stripe customer for the buyer and sets the card up for off-session use; a
    charge with an idempotency key succeeds once, and the same key again returns that payment."""
    saved = payment_method_save(email="Fan@Example.com", rail="stripe", payment_method=card(VISA), store=stripe_store)

    assert (saved.email, saved.rail, saved.store_id, saved.label) == ("Fan@example.com", "stripe", stripe_store.pk, "Visa •••• 4242")
    assert saved.customer_ref.startswith("cus_") and saved.method_ref.startswith("pm_")
    assert localstripe_client.v1.customers.retrieve(saved.customer_ref).to_dict()["email"] == "Fan@example.com"

    payment = payment_charge_saved(
        store=stripe_store, saved=saved, amount=1000, currency="usd", description="Wallet top-up", idempotency_key="topup-1"
    )

    assert (payment.rail, payment.status, payment.amount, payment.currency) == ("stripe", PaymentStatus.SUCCEEDED, 1000, "USD")
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["customer"], intent["payment_method"], intent["status"]) == (saved.customer_ref, saved.method_ref, "succeeded")
    assert intent["metadata"]["stall_description"] == "Wallet top-up"
    assert payment.checkout.status == CheckoutStatus.COMPLETE
    assert payment.order.amount_total == 1000

    again = payment_charge_saved(
        store=stripe_store, saved=saved, amount=1000, currency="USD", description="Wallet top-up", idempotency_key="topup-1"
    )
    assert again.pk == payment.pk
    assert _intents_for(localstripe_client, payment.pk) == [payment.rail_reference]
    with pytest.raises(Conflict, match="^This idempotency key was used for another charge.$"):
        payment_charge_saved(store=stripe_store, saved=saved, amount=999, currency="USD", idempotency_key="topup-1")

    # A second card of the same buyer joins the same Stripe customer.
    second = payment_method_save(email="Fan@example.com", rail="stripe", payment_method=card(VISA), store=stripe_store)
    assert second.customer_ref == saved.customer_ref and second.pk != saved.pk


def test_a_card_that_needs_the_cardholder_fails_off_session_cleanly(stripe_store, card, buyer_browser):
    """A 3-D Secure card is saved once the buyer passes the bank's check on the page; charged
    with the buyer away it fails with authentication_required, making no order."""
    with pytest.raises(PaymentMethodNeedsAction, match="confirm this card") as caught:
        payment_method_save(email="fan@example.com", rail="stripe", payment_method=card(THREE_D_SECURE), store=stripe_store)
    assert caught.value.reference.startswith("seti_") and caught.value.client_secret.startswith(caught.value.reference)
    assert not SavedPaymentMethod.objects.exists()

    buyer_browser.confirm_setup(caught.value.reference, caught.value.client_secret)
    saved = payment_method_save(email="fan@example.com", rail="stripe", payment_method=caught.value.reference, store=stripe_store)
    assert saved.label == "Visa •••• 3184"

    payment = payment_charge_saved(store=stripe_store, saved=saved, amount=500, currency="USD", idempotency_key="tab-7")

    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "authentication_required")
    assert payment.failure_message == "The card's bank asks the cardholder to confirm this payment."
    assert payment.checkout.status == CheckoutStatus.OPEN
    assert not hasattr(payment, "order")


def test_a_card_the_bank_refuses_to_save_is_not_saved(stripe_store, card):
    """A card declined when attached raises Stripe's decline and keeps nothing."""
    with pytest.raises(PaymentDeclined, match="^Your card was declined.$") as caught:
        payment_method_save(email="fan@example.com", rail="stripe", payment_method=card(DECLINED_ON_ATTACH), store=stripe_store)

    assert caught.value.code == "card_declined"
    assert not SavedPaymentMethod.objects.exists()


def test_a_card_saved_in_one_stripe_account_is_not_charged_from_another(stripe_store, card):
    """A store with its own Stripe keys cannot charge a card kept in another store's account."""
    saved = payment_method_save(email="fan@example.com", rail="stripe", payment_method=card(VISA), store=stripe_store)
    other = StoreFactory()

    with pytest.raises(InvalidRequest):
        payment_charge_saved(store=other, saved=saved, amount=500, currency="USD", idempotency_key="k")
    assert not OffSessionCharge.objects.exists()


def test_the_sandbox_rail_saves_and_charges_through_the_same_services(store):
    """The sandbox keeps the test card's code; sandbox_visa charges, sandbox_3ds cannot off-session."""
    visa = payment_method_save(email="fan@example.com", rail="sandbox", payment_method="sandbox_visa")
    three_ds = payment_method_save(email="fan@example.com", rail="sandbox", payment_method="sandbox_3ds")

    assert (visa.method_ref, visa.label, visa.customer_ref) == ("sandbox_visa", "Visa •••• 4242", "")
    ok = payment_charge_saved(store=store, saved=visa, amount=700, currency="USD", idempotency_key="a")
    refused = payment_charge_saved(store=store, saved=three_ds, amount=700, currency="USD", idempotency_key="b")

    assert (ok.status, ok.rail) == (PaymentStatus.SUCCEEDED, "sandbox")
    assert (refused.status, refused.failure_code) == (PaymentStatus.FAILED, "authentication_required")
    assert Payment.objects.count() == 2
    with pytest.raises(InvalidRequest, match=r"^Card charges must be at least \$0.50.$"):
        payment_charge_saved(store=store, saved=visa, amount=20, currency="USD", idempotency_key="c")
