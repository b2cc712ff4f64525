"""Member pages: a tier on the store page, its join page (wallet, card, trial, free; refusals),
the welcome, "Your memberships" (cancel and undo, upgrade and downgrade, pause, payment method,
private feed), the offers on a gated post's paywall, and no element id used twice."""

import html
import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.content.services import post_unlock
from stall.memberships.models import Subscription, SubscriptionStatus
from stall.memberships.renewals import subscription_renew
from stall.memberships.services import subscription_cancel, subscription_join
from stall.memberships.tiers import tier_archive, tier_create, tier_gates_set
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.rails.wallet import wallet_get
from stall.testing import StoreFactory
from stall.wallets.tests.test_page_ids import duplicate_ids

from .conftest import make_post

pytestmark = pytest.mark.django_db


def sign_in(client, buyer) -> None:
    client.get(urlsplit(buyer_magic_link(email=buyer.email)).path)


def words(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def join_url(store, tier) -> str:
    return reverse("memberships:join", args=[store.slug, tier.pk])


def balance(buyer) -> int:
    return wallet_get(buyer=buyer, currency="USD").account.balance


@pytest.fixture
def gold(store):
    return tier_create(store=store, name="Gold", prices=[{"interval": "month", "amount": 500}])


# --- The store page and the join page ----------------------------------------------------------


def test_the_store_page_offers_the_active_tiers(client, store, tier, gold):
    tier_archive(tier=gold)
    page = words(client.get(reverse("stores:store", args=[store.slug])))
    assert "Memberships Supporter $3.00 a month Every post Join Supporter" in page
    assert "Gold" not in page


def test_a_signed_in_reader_joins_from_the_wallet_with_one_click(client, store, tier, reader):
    sign_in(client, reader)
    page = words(client.get(join_url(store, tier)))
    assert "Supporter $3.00 a month" in page and "Pay $3.00 from your wallet" in page
    response = client.post(join_url(store, tier), {"method": "wallet", "interval": "month"})
    sub = Subscription.objects.get(email=reader.email)
    assert response.status_code == 302 and response["Location"] == reverse("memberships:welcome", args=[sub.pk])
    welcome = words(client.get(response["Location"]))
    assert "Welcome to Supporter!" in welcome and "$3.00 on" in welcome and "Manage your membership" in welcome
    assert (sub.status, sub.pay_with, balance(reader)) == ("active", "wallet", 1700)
    # A member already: the join page says so and links to the management page.
    again = words(client.get(join_url(store, tier)))
    assert "You are a member of" in again and "Manage your membership" in again


def test_an_empty_wallet_is_refused_with_a_link_to_top_up(client, store, tier):
    poor = buyer_for_email(email="poor@example.com")
    sign_in(client, poor)
    response = client.post(join_url(store, tier), {"method": "wallet"})
    assert response.status_code == 402
    page = words(response)
    assert "Your wallet does not hold enough for this." in page and "Top up your wallet" in page
    assert not Subscription.objects.exists() and not Order.objects.exists()


def test_a_card_join_goes_to_the_payment_page_and_ends_on_a_welcome(client, store, tier):
    missing = client.post(join_url(store, tier), {"method": "card"})
    assert missing.status_code == 400 and "Enter your email" in words(missing)
    response = client.post(join_url(store, tier), {"method": "card", "email": "Card@Example.com"})
    assert re.fullmatch(r"/checkout/chk_\w+/", response["Location"])
    checkout_id = response["Location"].split("/")[2]
    assert not Subscription.objects.exists()
    checkout_confirm(checkout_id=checkout_id, payment_method="sandbox_visa")
    sub = Subscription.objects.get()
    assert (sub.email, sub.pay_with, sub.status) == ("card@example.com", "card", "active")
    complete = words(client.get(reverse("checkout:complete", args=[checkout_id])))
    assert "Welcome to Supporter!" in complete and "Manage your membership" in complete
    assert "The card you paid with is kept for renewals." in complete


def test_a_card_join_begun_signed_out_and_paid_from_the_wallet_renews_from_the_wallet(client, store, tier, reader):
    """"Pay by card" chosen signed out (an email only), then the wallet chosen on the pay page
    once signed in: the member is the wallet's owner and the next period is paid from the wallet
    (such a member used to have no wallet to renew from and went past due)."""
    response = client.post(join_url(store, tier), {"method": "card", "email": reader.email})
    checkout_id = response["Location"].split("/")[2]
    assert client.get(response["Location"]).status_code == 200
    sign_in(client, reader)
    paid = client.post(reverse("wallets:pay", args=[checkout_id]), {"payment_method": "wallet"})
    assert paid["Location"] == reverse("checkout:complete", args=[checkout_id])
    sub = Subscription.objects.get()
    assert (sub.status, sub.pay_with, sub.buyer_id, sub.saved_method) == ("active", "wallet", reader.pk, None)
    assert subscription_renew(subscription_id=sub.pk, now=sub.current_period_end) == "renewed"
    sub.refresh_from_db()
    assert (sub.status, sub.period_number, balance(reader)) == ("active", 1, 1400)


@pytest.mark.parametrize("interval", ["fortnight", "year"])
def test_an_interval_the_tier_does_not_offer_is_refused(client, store, tier, reader, interval):
    sign_in(client, reader)
    response = client.post(join_url(store, tier), {"method": "wallet", "interval": interval})
    assert response.status_code == 400
    expected = "Unknown interval “fortnight”" if interval == "fortnight" else "This tier has no yearly price."
    assert expected in words(response)
    assert not Subscription.objects.exists() and balance(reader) == 2000


def test_a_full_tier_says_so_and_takes_no_one(client, store, reader):
    small = tier_create(store=store, name="Inner circle", prices=[{"interval": "month", "amount": 300}], member_limit=1)
    subscription_join(tier=small, method="card", email="first@example.com", payment_method="sandbox_visa")
    sign_in(client, reader)
    assert "This tier is full: it has reached its member limit." in words(client.get(join_url(store, small)))
    response = client.post(join_url(store, small), {"method": "wallet"})
    assert response.status_code == 409 and "This tier is full" in words(response)
    assert Subscription.objects.count() == 1 and balance(reader) == 2000


def test_an_archived_tier_takes_no_one(client, store, tier, reader):
    tier_archive(tier=tier)
    sign_in(client, reader)
    assert "This tier is archived: it takes no new members." in words(client.get(join_url(store, tier)))
    response = client.post(join_url(store, tier), {"method": "wallet"})
    assert response.status_code == 409 and "archived" in words(response)
    assert not Subscription.objects.exists() and balance(reader) == 2000


def test_another_stores_tier_is_not_found(client, store, tier):
    other = StoreFactory()
    assert client.get(reverse("memberships:join", args=[other.slug, tier.pk])).status_code == 404
    assert client.post(reverse("memberships:join", args=[other.slug, tier.pk]), {"method": "card", "email": "a@b.co"}).status_code == 404
    assert not Subscription.objects.exists()


def test_a_trial_starts_with_nothing_charged(client, store, reader):
    trial = tier_create(store=store, name="Try it", prices=[{"interval": "month", "amount": 300}], trial_days=14)
    sign_in(client, reader)
    assert "Start your 14-day free trial" in words(client.get(join_url(store, trial)))
    response = client.post(join_url(store, trial), {"method": "wallet"})
    assert response.status_code == 302
    sub = Subscription.objects.get()
    assert (sub.status, balance(reader), Order.objects.count()) == ("trialing", 2000, 0)
    assert "on a free trial until" in words(client.get(response["Location"]))


def test_a_free_tier_is_joined_with_an_email_and_its_welcome_shows_in_that_browser_only(client, store):
    free = tier_create(store=store, name="Newsletter")
    response = client.post(join_url(store, free), {"method": "card", "email": "fan@example.com"})
    assert response.status_code == 302
    assert "Welcome to Newsletter!" in words(client.get(response["Location"]))
    from django.test import Client

    assert Client().get(response["Location"]).status_code == 404


# --- Your memberships ----------------------------------------------------------------------------


def manage_action(client, sub, action, data=None):
    return client.post(reverse("memberships:action", args=[sub.pk, action]), data or {})


@pytest.fixture
def member(client, store, tier, reader):
    sign_in(client, reader)
    return subscription_join(tier=tier, method="wallet", buyer=reader).subscription


def test_the_library_links_to_your_memberships_which_needs_signing_in(client, member):
    assert reverse("memberships:manage") in client.get(reverse("orders:library")).content.decode()
    from django.test import Client

    response = Client().get(reverse("memberships:manage"))
    assert response.status_code == 302 and response["Location"].startswith("/library/?next=")


def test_cancel_at_period_end_and_undo(client, member):
    page = words(client.get(reverse("memberships:manage")))
    assert "Supporter" in page and "$3.00 on" in page and "Cancel at the end of the period" in page
    response = manage_action(client, member, "cancel")
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.cancel_at_period_end and member.status == "active"
    canceled_at = member.canceled_at
    page = words(client.get(reverse("memberships:manage")))
    assert "Your Supporter membership ends on" in page and "Keep my membership" in page
    manage_action(client, member, "cancel")  # a second click changes nothing
    member.refresh_from_db()
    assert member.canceled_at == canceled_at
    manage_action(client, member, "undo")
    member.refresh_from_db()
    assert not member.cancel_at_period_end
    again = manage_action(client, member, "undo")
    assert again.status_code == 409 and "This membership is not set to end." in words(again)


def test_upgrade_now_pays_the_prorated_difference_and_a_downgrade_waits(client, store, member, gold, reader):
    page = words(client.get(reverse("memberships:manage")))
    due = re.search(r"Upgrade now for \$(\d+\.\d\d)", page).group(1)
    before = balance(reader)
    response = manage_action(client, member, "change", {"tier": gold.pk, "interval": "month"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.tier_id == gold.pk
    paid = before - balance(reader)
    assert 0 < paid <= 200 and abs(paid - round(float(due) * 100)) <= 1
    supporter = member.price  # now Gold's
    manage_action(client, member, "change", {"tier": store.tiers.get(name="Supporter").pk})
    member.refresh_from_db()
    assert (member.price_id, member.pending_price.tier.name) == (supporter.pk, "Supporter")
    assert "Supporter from the next renewal" in words(client.get(reverse("memberships:manage")))


def test_a_pending_downgrade_is_undone_and_the_renewal_charges_the_current_price(client, store, member, gold, reader):
    """A downgrade waiting for the renewal is forgotten with "Keep my current tier": the renewal
    charges the current tier's price; undoing twice says there is nothing to undo."""
    manage_action(client, member, "change", {"tier": gold.pk, "interval": "month"})  # Gold now, $5
    manage_action(client, member, "change", {"tier": member.tier_id, "interval": "month"})  # back to Supporter, later
    member.refresh_from_db()
    assert member.pending_price.tier.name == "Supporter"
    assert "Keep my current tier" in words(client.get(reverse("memberships:manage")))
    response = manage_action(client, member, "change-undo")
    assert response.status_code == 302
    assert "You stay on Gold: it renews at its current price." in words(client.get(response["Location"]))
    member.refresh_from_db()
    assert (member.tier.name, member.pending_price_id) == ("Gold", None)
    again = manage_action(client, member, "change-undo")
    assert again.status_code == 409 and "This membership has no change waiting for the next renewal." in words(again)
    before = balance(reader)
    assert subscription_renew(subscription_id=member.pk, now=member.current_period_end) == "renewed"
    member.refresh_from_db()
    assert (member.tier.name, member.price.amount, before - balance(reader)) == ("Gold", 500, 500)


def test_changing_to_an_archived_or_foreign_tier_is_refused(client, member, gold, reader):
    tier_archive(tier=gold)
    before = balance(reader)
    response = manage_action(client, member, "change", {"tier": gold.pk})
    assert response.status_code == 409 and "That tier is archived" in words(response)
    foreign = tier_create(store=StoreFactory(), name="Elsewhere", prices=[{"interval": "month", "amount": 900}])
    response = manage_action(client, member, "change", {"tier": foreign.pk})
    assert response.status_code == 400 and "No such tier in this store." in words(response)
    member.refresh_from_db()
    assert (member.tier.name, member.pending_price_id, balance(reader)) == ("Supporter", None, before)


def test_pause_one_to_three_periods_and_resume(client, member):
    response = manage_action(client, member, "pause", {"periods": "5"})
    assert response.status_code == 400 and "Pause for 1 to 3 periods." in words(response)
    member.refresh_from_db()
    assert member.pause_periods == 0
    manage_action(client, member, "pause", {"periods": "2"})
    member.refresh_from_db()
    assert member.pause_periods == 2
    assert "Paused from" in words(client.get(reverse("memberships:manage")))
    manage_action(client, member, "resume")
    member.refresh_from_db()
    assert member.pause_periods == 0


def test_change_the_payment_method_to_a_card(client, member):
    response = manage_action(client, member, "pay-with", {"pay_with": "card"})
    assert response.status_code == 400 and "Give the card to charge." in words(response)
    member.refresh_from_db()
    assert member.pay_with == "wallet"
    manage_action(client, member, "pay-with", {"pay_with": "card", "payment_method": "sandbox_visa"})
    member.refresh_from_db()
    assert (member.pay_with, member.saved_method.rail) == ("card", "sandbox")


def test_the_private_feed_address_is_shown_and_rotated(client, store, member):
    old = reverse("content:private_feed", args=[store.slug, member.feed_token])
    assert old in client.get(reverse("memberships:manage")).content.decode()
    manage_action(client, member, "feed")
    member.refresh_from_db()
    new = reverse("content:private_feed", args=[store.slug, member.feed_token])
    assert new != old and new in client.get(reverse("memberships:manage")).content.decode()
    assert client.get(old).status_code == 404 and client.get(new).status_code == 200


def test_another_readers_membership_is_not_found(client, store, tier, member):
    theirs = subscription_join(tier=tier, method="card", email="them@example.com", payment_method="sandbox_visa").subscription
    assert manage_action(client, theirs, "cancel").status_code == 404
    assert client.get(reverse("memberships:welcome", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.cancel_at_period_end


def test_an_ended_membership_shows_no_actions(client, member):
    subscription_cancel(subscription=member, at_period_end=False)
    page = words(client.get(reverse("memberships:manage")))
    assert "Ended" in page and "Cancel at the end of the period" not in page
    response = manage_action(client, member, "cancel")
    assert response.status_code == 409 and "This membership has ended." in words(response)


# --- The paywall's offers ------------------------------------------------------------------------


def test_a_gated_posts_paywall_offers_its_tiers_and_the_cap_progress(client, store, reader):
    capped = tier_create(store=store, name="Patron", prices=[{"interval": "month", "amount": 100}], cap_to_subscribe=True)
    priced = make_post(store, title="Priced", amount=25)
    free = make_post(store, title="Members only", amount=0)
    tier_gates_set(tier=capped, product_ids=[priced.product_id, free.product_id])
    page = words(client.get(reverse("content:post", args=[store.slug, priced.slug])))
    assert "Read the rest for $0.25" in page and "Patron $1.00 a month" in page and "Join Patron" in page
    assert join_url(store, capped) in client.get(reverse("content:post", args=[store.slug, free.slug])).content.decode()
    sign_in(client, reader)
    post_unlock(post=make_post(store, title="Another", amount=25), method="wallet", buyer=reader)  # not gated: not counted
    other = make_post(store, title="Counted", amount=25)
    tier_gates_set(tier=capped, product_ids=[priced.product_id, free.product_id, other.product_id])
    post_unlock(post=other, method="wallet", buyer=reader)
    page = words(client.get(reverse("content:post", args=[store.slug, priced.slug])))
    assert "Cap-to-subscribe: $0.25 of $1.00 paid this month." in page


def test_a_post_not_gated_offers_no_tier(client, store, tier):
    post = make_post(store, title="Open", amount=25)
    assert "Join Supporter" not in words(client.get(reverse("content:post", args=[store.slug, post.slug])))


# --- One id per element --------------------------------------------------------------------------


def test_no_member_page_repeats_an_element_id(client, store, tier, gold, reader):
    trial = tier_create(store=store, name="Trial", prices=[{"interval": "month", "amount": 300}, {"interval": "year", "amount": 3000}],
                        trial_days=7)
    post = make_post(store, title="Gated", amount=25)
    tier_gates_set(tier=tier, product_ids=[post.product_id])
    signed_out = {
        "join, signed out": client.get(join_url(store, tier)),
        "join with a trial, signed out": client.get(join_url(store, trial)),
        "join with errors": client.post(join_url(store, tier), {"method": "card"}),
        "post with offers": client.get(reverse("content:post", args=[store.slug, post.slug])),
        "store": client.get(reverse("stores:store", args=[store.slug])),
    }
    sign_in(client, reader)
    sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
    elsewhere = tier_create(store=StoreFactory(), name="Elsewhere", prices=[{"interval": "month", "amount": 200}])
    subscription_join(tier=elsewhere, method="wallet", buyer=reader)  # two memberships: two sets of forms
    other = buyer_for_email(email="other@example.com")
    subscription_join(tier=gold, method="card", email=other.email, payment_method="sandbox_visa")
    pages = {
        **signed_out,
        "join with a trial, signed in": client.get(join_url(store, trial)),
        "welcome": client.get(reverse("memberships:welcome", args=[sub.pk])),
        "manage": client.get(reverse("memberships:manage")),
        "manage with an error": manage_action(client, sub, "pay-with", {"pay_with": "card"}),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 400), (name, response.status_code)
        assert duplicate_ids(response.content.decode()) == {}, name
    assert sub.status == SubscriptionStatus.ACTIVE
