"""A pledge whose card failed at the deadline, paid another way from its page: "Pay now" opens
the checkout's hosted payment page for the pledge's amount, which offers what any buyer of the
store has (Stripe's card form or the test cards, Lightning where the store has a wallet for it,
the buyer's wallet and tab); the paid order collects the pledge, on whichever rail."""

from datetime import timedelta

import pytest
from django.urls import reverse

from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.selectors import campaign_totals
from stall.campaigns.services import pledge_create, tier_create
from stall.campaigns.settlement import campaigns_due_run, recovery_run
from stall.checkout.models import Checkout, CheckoutStatus
from stall.integrations.models import Event
from stall.orders.models import Entitlement, Order
from stall.payments.models import LightningAccount, Payment
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    DECLINED_ON_CHARGE,
    VISA,
    buyer_browser,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)
from stall.testing import ProductFactory

from .conftest import DEADLINE, backer, live_campaign, wallet_account
from .test_pages import sign_in, words

pytestmark = pytest.mark.django_db


def _failed(store, clock, *, email="late@example.com", top_up=0, tier=None, declined_card="sandbox_declined"):
    """A campaign met with $10 from a wallet and $7 by a card declined at the deadline. A store
    taking Stripe cards takes no test money: its goal is met by the card alone."""
    sandbox = declined_card.startswith("sandbox_")
    campaign = live_campaign(store, goal=1000 if sandbox else 700)
    if sandbox:
        pledge_create(campaign=campaign, buyer=backer("w@example.com"), amount=1000, method="wallet")
    pledge = pledge_create(campaign=campaign, buyer=backer(email, top_up=top_up), amount=700, method="card",
                           payment_method=declined_card, tier=tier(campaign) if tier else None)
    clock.move_to(DEADLINE)
    assert campaigns_due_run()["failed"] == 1
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.FAILED
    return campaign, pledge


def _pay_now(client, pledge) -> Checkout:
    """The pledge page's "Pay another way": the checkout's payment page."""
    page = client.get(reverse("campaigns:pledge", args=[pledge.pk]))
    assert page.status_code == 200 and "Pay another way" in words(page) and "Pay $7.00 now" in words(page)
    response = client.post(reverse("campaigns:pledge", args=[pledge.pk]), {"action": "pay"})
    assert response.status_code == 302, words(response)
    checkout = Checkout.objects.get(pk=Pledge.objects.get(pk=pledge.pk).recovery_checkout_id)
    assert response["Location"] == reverse("checkout:pay", args=[checkout.pk])
    assert (checkout.amount_total, checkout.currency, checkout.email) == (700, "USD", pledge.email)
    return checkout


def test_a_failed_pledge_is_paid_on_the_payment_page_with_its_rails(client, store, clock):
    """The sandbox store with Lightning: the payment page offers the test cards, Lightning and the
    signed-in backer's wallet; paid with a test card, the pledge is collected with the order and
    counted, and the recovery neither retries nor drops it."""
    LightningAccount.objects.create(store=store, url="http://lnbits.invalid", invoice_key="k" * 32)
    campaign, pledge = _failed(store, clock, top_up=2000)
    sign_in(client, pledge.buyer)
    checkout = _pay_now(client, pledge)
    # Pressing it again (a second tab) reuses the open checkout.
    again = client.post(reverse("campaigns:pledge", args=[pledge.pk]), {"action": "pay"})
    assert again["Location"] == reverse("checkout:pay", args=[checkout.pk])

    pay_page = client.get(reverse("checkout:pay", args=[checkout.pk]))
    text = words(pay_page)
    assert pay_page.status_code == 200 and "Pay $7.00" in text
    assert 'value="sandbox_visa"' in pay_page.content.decode()  # the store's card rail: the test cards
    assert "Pay with Lightning" in text
    assert "Pay from wallet (balance $20.00)" in text

    done = client.post(reverse("checkout:pay", args=[checkout.pk]), {"payment_method": "sandbox_visa"})
    assert done["Location"] == reverse("checkout:complete", args=[checkout.pk])
    pledge.refresh_from_db()
    order = Order.objects.get(checkout=checkout)
    assert (pledge.status, pledge.order_id, pledge.next_attempt_at) == (PledgeStatus.COLLECTED, order.pk, None)
    assert order.amount_total == 700
    assert campaign_totals(campaign=campaign).collected == 1700
    assert Event.objects.filter(type="pledge.collected", data__object__id=pledge.pk).count() == 1
    clock.move_to(DEADLINE + timedelta(days=8))
    assert recovery_run() == {"collected": 0, "failed": 0, "dropped": 0}
    assert "Pay another way" not in words(client.get(reverse("campaigns:pledge", args=[pledge.pk])))
    refused = client.post(reverse("campaigns:pledge", args=[pledge.pk]), {"action": "pay"})
    assert refused.status_code == 409 and "no longer waiting for payment" in words(refused)


def test_paid_from_the_wallet_on_the_payment_page_the_reward_is_granted(client, store, clock):
    """The reward's product is a line of the checkout: paid from the wallet on the payment page,
    the backer has it in their library and the pledge is collected."""
    def signed_tier(campaign):
        product = ProductFactory(store=store, name="Signed PDF")
        return tier_create(campaign=campaign, title="Signed", min_amount=500, product=product)

    campaign, pledge = _failed(store, clock, top_up=2000, tier=signed_tier)
    sign_in(client, pledge.buyer)
    checkout = _pay_now(client, pledge)
    confirm = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet"})
    assert "Confirm and pay $7.00" in words(confirm)  # above the wallet's confirm-above amount
    paid = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet", "confirm": "yes"})
    assert paid.status_code == 302, words(paid)
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.COLLECTED
    assert Entitlement.objects.filter(email=pledge.email, product__name="Signed PDF", order_id=pledge.order_id).exists()
    assert wallet_account(pledge.buyer).debits_posted == 700


def test_the_recovery_waits_while_the_backer_is_paying(client, store, clock):
    """A checkout opened and not yet paid: the day-3 retry and the day-7 drop wait for it to
    expire, so the card is not charged under a buyer who is paying."""
    _campaign, pledge = _failed(store, clock)
    sign_in(client, pledge.buyer)
    clock.move_to(DEADLINE + timedelta(days=3, minutes=1))
    checkout = _pay_now(client, pledge)
    assert recovery_run() == {"collected": 0, "failed": 0, "dropped": 0}
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=DEADLINE + timedelta(days=3, minutes=2))
    clock.move_to(DEADLINE + timedelta(days=3, minutes=5))
    assert recovery_run() == {"collected": 0, "failed": 1, "dropped": 0}
    # Once expired, "Pay now" makes a new checkout.
    fresh = _pay_now(client, Pledge.objects.get(pk=pledge.pk))
    assert fresh.pk != checkout.pk and fresh.status == CheckoutStatus.OPEN


def test_a_store_taking_stripe_cards_offers_its_card_form(client, stripe_store, clock, buyer_browser, card):
    """A store with its own Stripe keys: the payment page is Stripe's Payment Element for the
    recovery checkout (not a test card in sight); the card paid there collects the pledge."""
    campaign, pledge = _failed(stripe_store, clock, declined_card=card(DECLINED_ON_CHARGE))
    assert pledge.saved.rail == "stripe"
    sign_in(client, pledge.buyer)
    checkout = _pay_now(client, pledge)
    page = client.get(reverse("checkout:pay", args=[checkout.pk]))
    assert page.status_code == 200 and "data-client-secret" in page.content.decode()
    payment = Payment.objects.get(checkout=checkout, rail="stripe")
    assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"
    back = client.get(reverse("checkout:stripe_return", args=[checkout.pk]), {"payment_intent": payment.rail_reference})
    assert back["Location"] == reverse("checkout:complete", args=[checkout.pk])
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.COLLECTED and pledge.order.payment_id == payment.pk
    assert campaign_totals(campaign=campaign).collected == 700


def test_a_payment_that_lands_after_the_pledge_was_dropped_still_collects_it(client, store, clock):
    """The backer started paying on the last day (a card waiting on its bank's 3-D Secure check),
    the checkout ran out meanwhile and the recovery dropped the pledge; the bank then approved.
    The money came for the pledge: it is collected and counted, not left as a sale of nothing."""
    campaign, pledge = _failed(store, clock)
    sign_in(client, pledge.buyer)
    clock.move_to(DEADLINE + timedelta(days=6, hours=23))
    checkout = _pay_now(client, pledge)
    started = client.post(reverse("checkout:pay", args=[checkout.pk]), {"payment_method": "sandbox_3ds"})
    assert started.status_code == 302, words(started)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=DEADLINE + timedelta(days=6, hours=23, minutes=30))
    clock.move_to(DEADLINE + timedelta(days=7, minutes=1))
    assert recovery_run() == {"collected": 0, "failed": 0, "dropped": 1}
    assert campaign_totals(campaign=campaign).collected == 1000

    approved = client.post(reverse("checkout:authenticate", args=[checkout.pk]), {"decision": "approve"})
    assert approved["Location"] == reverse("checkout:complete", args=[checkout.pk])
    pledge.refresh_from_db()
    order = Order.objects.get(checkout=checkout)
    assert (pledge.status, pledge.order_id) == (PledgeStatus.COLLECTED, order.pk)
    assert campaign_totals(campaign=campaign).collected == 1700
    assert Event.objects.filter(type="pledge.collected", data__object__id=pledge.pk).count() == 1
