"""Members paying by Stripe card, against localstripe: a join paid on the hosted pay page keeps
the card on a Stripe Customer (the PaymentIntent is made for the Customer and set up for
off-session use; the card is attached to it), then renewals and upgrades charge it off-session."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from stall.accounts.services import buyer_for_email
from stall.content.services import post_unlock
from stall.memberships.models import PeriodStatus, Subscription, SubscriptionPeriod
from stall.memberships.renewals import subscription_renew
from stall.memberships.services import join_card_setup, subscription_change, subscription_join
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.models import Order
from stall.payments.models import Payment, PaymentStatus
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    VISA,
    buyer_browser,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)
from stall.wallets.services import wallet_top_up

from .conftest import make_post
from .test_pages import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers(stripe_store):
    return (tier_create(store=stripe_store, name="Supporter", prices=[{"interval": "month", "amount": 600}]),
            tier_create(store=stripe_store, name="Patron", prices=[{"interval": "month", "amount": 900}]))


def _join_on_the_pay_page(client, tier, buyer_browser, capture) -> Subscription:
    checkout = subscription_join(tier=tier, method="card", email="fan@example.com").checkout
    assert checkout.save_card
    client.get(reverse("checkout:pay", args=[checkout.pk]))
    payment = Payment.objects.get(checkout=checkout)
    assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"
    with capture(execute=True):  # the task that attaches the card runs after the commit
        response = client.get(reverse("checkout:stripe_return", args=[checkout.pk]), {"payment_intent": payment.rail_reference})
    assert response["Location"] == reverse("checkout:complete", args=[checkout.pk])
    return Subscription.objects.select_related("saved_method").get(email="fan@example.com")


def test_a_join_paid_by_stripe_card_on_the_pay_page_keeps_the_card_and_renews_off_session(
    client, tiers, buyer_browser, localstripe_client, django_capture_on_commit_callbacks,
):
    supporter, _patron = tiers
    sub = _join_on_the_pay_page(client, supporter, buyer_browser, django_capture_on_commit_callbacks)
    saved = sub.saved_method
    assert (sub.status, sub.pay_with, saved.rail, saved.label) == ("active", "card", "stripe", "Visa •••• 4242")
    intent = localstripe_client.v1.payment_intents.retrieve(Payment.objects.get(checkout__isnull=False, rail="stripe").rail_reference)
    assert intent.customer == saved.customer_ref and intent.payment_method == saved.method_ref
    # The card is the Customer's: Stripe charges it off-session only then.
    assert localstripe_client.v1.payment_methods.retrieve(saved.method_ref).customer == saved.customer_ref

    assert subscription_renew(subscription_id=sub.pk, now=sub.current_period_end + timedelta(minutes=1)) == "renewed"
    period = SubscriptionPeriod.objects.select_related("payment").get(subscription=sub, number=1)
    assert (period.status, period.paid_with, period.payment.rail, period.payment.amount) == (PeriodStatus.PAID, "card", "stripe", 600)
    renewal = localstripe_client.v1.payment_intents.retrieve(period.payment.rail_reference)
    assert (renewal.status, renewal.customer, renewal.payment_method) == ("succeeded", saved.customer_ref, saved.method_ref)


def test_an_upgrade_charges_the_prorated_difference_to_the_saved_stripe_card(
    client, tiers, buyer_browser, localstripe_client, django_capture_on_commit_callbacks,
):
    supporter, patron = tiers
    sub = _join_on_the_pay_page(client, supporter, buyer_browser, django_capture_on_commit_callbacks)
    upgraded = subscription_change(subscription=sub, tier=patron)
    assert (upgraded.tier_id, upgraded.price.amount) == (patron.pk, 900)
    payment = Payment.objects.filter(rail="stripe", status=PaymentStatus.SUCCEEDED).latest("created_at")
    assert 0 < payment.amount <= 300  # (9 - 6) for what is left of the month
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference)
    assert (intent.status, intent.amount, intent.customer) == ("succeeded", payment.amount, sub.saved_method.customer_ref)
    assert payment.order.lines.get().product_id == patron.prices.get().product_id


# --- A Stripe card entered on Stripe's form (SetupIntent): Your memberships, and card trials --------


def _setup_id(response) -> str:
    secret = re.search(r'data-client-secret="(seti_[^"]+)"', response.content.decode()).group(1)
    return secret.split("_secret_")[0]


def test_a_member_changes_to_a_new_stripe_card_on_your_memberships(client, tiers, card, localstripe_client, localstripe):
    supporter, _patron = tiers
    sub = subscription_join(tier=supporter, method="card", email="fan@example.com", payment_method=card(VISA)).subscription
    sign_in(client, buyer_for_email(email="fan@example.com"))
    assert reverse("memberships:card", args=[sub.pk]) in client.get(reverse("memberships:manage")).content.decode()
    page = client.get(reverse("memberships:card", args=[sub.pk]))
    assert page.status_code == 200 and "stripe-setup.js" in page.content.decode()
    assert localstripe in page["Content-Security-Policy"]
    setup_id = _setup_id(page)
    new_card = card(VISA)
    localstripe_client.v1.setup_intents.confirm(setup_id, params={"payment_method": new_card})  # Stripe.js's confirmSetup
    response = client.get(reverse("memberships:card_return", args=[sub.pk]), {"setup_intent": setup_id})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert (sub.pay_with, sub.saved_method.rail, sub.saved_method.method_ref) == ("card", "stripe", new_card)
    assert subscription_renew(subscription_id=sub.pk, now=sub.current_period_end + timedelta(minutes=1)) == "renewed"
    period = SubscriptionPeriod.objects.select_related("payment").get(subscription=sub, number=1)
    assert localstripe_client.v1.payment_intents.retrieve(period.payment.rail_reference).payment_method == new_card


def test_someone_elses_card_setup_is_refused(client, tiers, card, localstripe_client):
    supporter, _patron = tiers
    sub = subscription_join(tier=supporter, method="card", email="fan@example.com", payment_method=card(VISA)).subscription
    before = sub.saved_method_id
    other = join_card_setup(tier=supporter, email="other@example.com").client_secret.split("_secret_")[0]
    localstripe_client.v1.setup_intents.confirm(other, params={"payment_method": card(VISA)})
    sign_in(client, buyer_for_email(email="fan@example.com"))
    response = client.get(reverse("memberships:card_return", args=[sub.pk]), {"setup_intent": other})
    assert response.status_code == 402 and "This card setup is not known here." in response.content.decode()
    sub.refresh_from_db()
    assert sub.saved_method_id == before


def test_a_card_trial_in_a_stripe_store_takes_the_card_on_stripes_form(client, stripe_store, card, localstripe_client):
    trial = tier_create(store=stripe_store, name="Try it", prices=[{"interval": "month", "amount": 300}], trial_days=14)
    join_page = client.get(reverse("memberships:join", args=[stripe_store.slug, trial.pk])).content.decode()
    assert "Start the trial with a card" in join_page
    response = client.post(reverse("memberships:join", args=[stripe_store.slug, trial.pk]), {"method": "card", "email": "trial@example.com"})
    assert response["Location"] == reverse("memberships:join_card", args=[stripe_store.slug, trial.pk])
    setup_id = _setup_id(client.get(response["Location"]))
    localstripe_client.v1.setup_intents.confirm(setup_id, params={"payment_method": card(VISA)})
    back = client.get(reverse("memberships:join_card_return", args=[stripe_store.slug, trial.pk]), {"setup_intent": setup_id})
    sub = Subscription.objects.select_related("saved_method").get(email="trial@example.com")
    assert back["Location"] == reverse("memberships:welcome", args=[sub.pk])
    assert (sub.status, sub.pay_with, sub.saved_method.rail) == ("trialing", "card", "stripe")
    assert not Payment.objects.filter(status=PaymentStatus.SUCCEEDED).exists()


def test_a_stripe_page_priced_before_the_cap_was_reached_offers_no_card_and_gives_up_its_intent(
    client, stripe_store, card, localstripe_client,
):
    """$1 posts under a $3 cap: the Stripe page of a card unlock opened with $1 left, then a wallet
    unlock reaches the cap; the page no longer offers the card and its intent is canceled."""
    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=1000, currency="USD", payment_method=card(VISA), store=stripe_store)
    tier = tier_create(store=stripe_store, name="All posts", prices=[{"interval": "month", "amount": 300}], cap_to_subscribe=True)
    posts = [make_post(stripe_store, title=f"Post {n}", amount=100) for n in range(4)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    for post in posts[:2]:
        post_unlock(post=post, method="wallet", buyer=reader)
    checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
    assert client.get(reverse("checkout:pay", args=[checkout.pk])).context["client_secret"]
    payment = Payment.objects.get(checkout=checkout)
    post_unlock(post=posts[2], method="wallet", buyer=reader)  # the cap is reached: a member now

    page = client.get(reverse("checkout:pay", args=[checkout.pk]))
    assert page.status_code == 409 and not page.context["client_secret"]
    assert "The price of this checkout has changed since it was made" in page.content.decode()
    assert localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).status == "canceled"
    assert sum(o.amount_total for o in Order.objects.filter(email=reader.email, lines__product__kind="post")) == 300
