"""Wallet top-ups, automatic top-ups and tab settlements on Stripe (the platform's account), against
localstripe: ``pm_…`` payment methods work server-side through the same services as the test cards."""

import pytest

from stall.payments.errors import PaymentDeclined
from stall.payments.rails import UnknownPaymentMethod
from stall.payments.rails.wallet import wallet_for
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    DECLINED_ON_CHARGE,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    VISA,
    card,
    localstripe,
    localstripe_client,
)
from stall.wallets.models import AutoTopUp, Tab, TabStatus
from stall.wallets.services import (
    tab_settle,
    wallet_auto_top_up,
    wallet_auto_top_up_set,
    wallet_top_up,
)

from .conftest import assert_ledger_balanced, spend


@pytest.fixture
def platform_stripe(settings, localstripe):
    """The platform's own Stripe keys, pointed at localstripe; test cards turned off."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = localstripe
    settings.STALL_SANDBOX_ENABLED = False


def test_a_pm_top_up_is_charged_on_stripe_and_fills_the_wallet(platform_stripe, buyer, card, localstripe_client):
    """A $10 top-up with a Stripe PaymentMethod is confirmed server-side; the wallet holds $10.00 and the
    PaymentIntent carries our payment's id."""
    payment = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method=card(VISA))
    assert (payment.rail, payment.status, payment.amount) == ("stripe", "succeeded", 1000)
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["status"], intent["amount"], intent["metadata"]["stall_payment"]) == ("succeeded", 1000, payment.pk)
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 1000
    assert_ledger_balanced()


def test_test_cards_are_refused_when_the_sandbox_is_off(platform_stripe, buyer):
    """With STALL_SANDBOX_ENABLED=0 a test card is refused before any payment."""
    with pytest.raises(UnknownPaymentMethod, match="Test cards are turned off on this Stall.") as caught:
        wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    assert caught.value.code == "sandbox_disabled"


def test_auto_top_up_charges_a_saved_stripe_card_off_session(platform_stripe, store, post, buyer, card, django_capture_on_commit_callbacks):
    """A card saved for auto top-up becomes a Stripe customer's card; a spend below the threshold charges
    it off-session once, as a top-up of the wallet."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method=card(VISA))
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method=card(VISA), below=480, amount=1000)
    wallet.refresh_from_db()
    assert wallet.auto_top_up_method.rail == "stripe" and wallet.auto_top_up_method.customer_ref.startswith("cus_")
    with django_capture_on_commit_callbacks(execute=True):
        spend(store=store, product=post, buyer=buyer)
    auto = AutoTopUp.objects.get()
    assert (auto.payment.rail, auto.payment.status, auto.payment.amount) == ("stripe", "succeeded", 1000)
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 500 - 25 + 1000
    assert_ledger_balanced()


def test_a_saved_stripe_card_declined_off_session_pauses_auto_top_up(platform_stripe, buyer, card):
    """A card that attaches but declines every charge: the auto top-up fails and pauses."""
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method=card(DECLINED_ON_CHARGE), below=100, amount=500)
    auto = wallet_auto_top_up(wallet_id=wallet.pk)
    assert auto.payment.status == "failed"
    wallet.refresh_from_db()
    assert wallet.auto_top_up_failed_at is not None
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 0


def test_a_tab_is_settled_with_a_pm_card_at_the_card_minimum(platform_stripe, store, post, buyer, card):
    """A 25¢ tab settled with a Stripe card charges the 50¢ minimum; 25¢ goes into the wallet."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    payment = tab_settle(buyer=buyer, currency="USD", payment_method=card(VISA))
    assert (payment.rail, payment.status, payment.amount) == ("stripe", "succeeded", 50)
    assert Tab.objects.get().status == TabStatus.SETTLED
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 25
    with pytest.raises(PaymentDeclined):
        spend(store=store, product=post, buyer=buyer, method="tab")
        tab_settle(buyer=buyer, currency="USD", payment_method=card(DECLINED_ON_CHARGE))
    assert Tab.objects.get(status=TabStatus.OPEN).account.debit_limit == 500
    assert_ledger_balanced()
