"""Cap-to-subscribe: 25¢ unlocks of posts gated to a $1/month capped tier make the reader a
member at the fourth; the fifth post is free and the month never costs more than the cap."""

import random
from datetime import UTC, datetime

import pytest
import time_machine

from stall.accounts.services import buyer_for_email
from stall.content.services import post_unlock
from stall.memberships.models import Subscription
from stall.memberships.renewals import renewals_run
from stall.memberships.selectors import access_granted
from stall.memberships.services import (
    cap_progress,
    subscription_cancel,
    subscription_join,
    subscription_pay_with_set,
)
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.errors import PriceChanged
from stall.orders.models import Order, OrderLine
from stall.orders.tests.test_spend import SPEND_STATEMENTS, at_most
from stall.payments.models import Payment
from stall.wallets.services import wallet_top_up

from .conftest import make_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def capped(store):
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": 100}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=25) for n in range(6)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    return tier, posts


def _paid(email) -> int:
    return sum(o.amount_total for o in Order.objects.filter(email=email))


def test_the_fourth_unlock_makes_a_member_and_the_fifth_is_free(store, reader, capped):
    tier, posts = capped
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False) as clock:
        for post in posts[:3]:
            assert not post_unlock(post=post, method="wallet", buyer=reader).already
        assert not Subscription.objects.exists()
        assert cap_progress(tier=tier, email=reader.email) == (75, 100)
        post_unlock(post=posts[3], method="wallet", buyer=reader)
        sub = Subscription.objects.get(email=reader.email)
        assert (sub.status, sub.origin, sub.pay_with, sub.current_period_end) == (
            "active", "cap", "none", datetime(2027, 4, 1, tzinfo=UTC),
        )
        fifth = post_unlock(post=posts[4], method="wallet", buyer=reader)
        assert (fifth.already, fifth.member, fifth.order) == (True, True, None)
        assert _paid(reader.email) == 100
        # Not opted in to renewals: the membership ends with the month.
        clock.move_to(datetime(2027, 4, 1, 0, 5, tzinfo=UTC))
        assert renewals_run() == {"ended": 1}
        assert not post_unlock(post=posts[5], method="wallet", buyer=reader).member


def test_a_capped_member_who_opts_in_renews_from_the_wallet_on_the_first(store, reader, capped):
    tier, posts = capped
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False) as clock:
        for post in posts[:4]:
            post_unlock(post=post, method="wallet", buyer=reader)
        sub = Subscription.objects.get(email=reader.email)
        subscription_pay_with_set(subscription=sub, pay_with="wallet", buyer=reader)
        clock.move_to(datetime(2027, 4, 1, 0, 5, tzinfo=UTC))
        assert renewals_run() == {"renewed": 1}
    assert Subscription.objects.get(pk=sub.pk).current_period_end == datetime(2027, 5, 1, tzinfo=UTC)
    assert _paid(reader.email) == 200


def test_a_store_with_a_capped_tier_still_spends_within_budget_for_an_ungated_post(store, reader, capped, django_capture_on_commit_callbacks):
    """The cap observer reads its column in the spend's SELECT and does nothing for an ungated post."""
    warm = make_post(store, title="Warm")
    with django_capture_on_commit_callbacks(execute=True):
        post_unlock(post=warm, method="wallet", buyer=reader)
    post = make_post(store, title="Not gated")
    with at_most(SPEND_STATEMENTS + 1):  # + the observer's look for capped tiers gating the post
        post_unlock(post=post, method="wallet", buyer=reader)


def _lines(email, posts) -> list[int]:
    """What each post's order line charged (the clock is frozen: ids do not sort by time)."""
    charged = dict(OrderLine.objects.filter(order__email=email).values_list("product_id", "unit_amount"))
    return [charged.get(post.product_id) for post in posts]


def test_the_unlock_that_reaches_the_cap_is_charged_only_what_is_left(store, reader):
    """40¢ posts under a $1 cap: 40¢, 40¢, then 20¢ (the order's line says so), and a member."""
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": 100}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=40) for n in range(4)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False):
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        assert not Subscription.objects.exists()
        third = post_unlock(post=posts[2], method="wallet", buyer=reader)
        assert (third.order.amount_total, _lines(reader.email, posts)) == (20, [40, 40, 20, None])
        assert Subscription.objects.get(email=reader.email).origin == "cap"
        assert cap_progress(tier=tier, email=reader.email) == (100, 100)
        assert post_unlock(post=posts[3], method="wallet", buyer=reader).member
    assert _paid(reader.email) == 100


def test_a_card_unlock_that_reaches_the_cap_is_charged_only_what_is_left(store, reader):
    """The card path asks the same limit: $1.20 posts under a $3 cap, the third by card costs 60¢."""
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": 300}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=120) for n in range(3)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False):
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[2], method="card", buyer=reader).checkout
        assert checkout.amount_total == 60
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
        assert Subscription.objects.get(email=reader.email).origin == "cap"
    assert _paid(reader.email) == 300


def test_no_reader_pays_more_than_the_cap_in_a_month_whatever_the_prices(store):
    """Property over seeded random sequences of post prices (some above the cap): each reader's
    month total never passes the cap, and reaching it makes them a member."""
    cap = 100
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": cap}], cap_to_subscribe=True)
    prices = [1, 7, 13, 25, 33, 40, 49, 60, 99, 100, 150]
    posts = [make_post(store, title=f"Post {n}", amount=amount) for n, amount in enumerate(prices)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    rng = random.Random(8)
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False):
        for n in range(12):
            buyer = buyer_for_email(email=f"prop{n}@example.com")
            wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
            for post in rng.sample(posts, rng.randint(1, len(posts))):
                post_unlock(post=post, method="wallet", buyer=buyer)
                paid = _paid(buyer.email)
                assert paid <= cap, (n, paid)
                member = Subscription.objects.filter(email=buyer.email, origin="cap").exists()
                assert member == (paid == cap), (n, paid)


def test_a_member_of_another_tier_stops_paying_at_the_cap_and_reads_the_rest_free(store, reader, capped):
    """A member of a tier that does not gate the posts cannot be made a member of the capped one
    (one membership per store): once the cap is reached its posts cost nothing more this month."""
    tier, posts = capped
    other = tier_create(store=store, name="Newsletter")
    subscription_join(tier=other, method="wallet", buyer=reader)
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False) as clock:
        for post in posts[:4]:
            assert not post_unlock(post=post, method="wallet", buyer=reader).already
        assert _paid(reader.email) == 100
        fifth = post_unlock(post=posts[4], method="wallet", buyer=reader)
        assert (fifth.already, fifth.member, fifth.order) == (True, True, None)
        assert access_granted(store_id=store.pk, product_id=posts[5].product_id, email=reader.email)
        assert post_unlock(post=posts[5], method="card", buyer=reader).member  # nor a card checkout
        assert _paid(reader.email) == 100
        assert Subscription.objects.get(email=reader.email).tier_id == other.pk
        clock.move_to(datetime(2027, 4, 2, tzinfo=UTC))  # a new month: pay per post again
        assert not access_granted(store_id=store.pk, product_id=posts[5].product_id, email=reader.email)
        assert post_unlock(post=posts[5], method="wallet", buyer=reader).order.amount_total == 25


def test_a_capped_membership_the_creator_ends_mid_month_is_not_paid_for_twice(store, reader, capped):
    """Ended by the creator after the reader paid the cap: the membership stays ended, and the
    month's gated posts cost the reader nothing more (they paid the month's price already)."""
    tier, posts = capped
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False):
        for post in posts[:4]:
            post_unlock(post=post, method="wallet", buyer=reader)
        sub = Subscription.objects.get(email=reader.email)
        subscription_cancel(subscription=sub, at_period_end=False)
        fifth = post_unlock(post=posts[4], method="wallet", buyer=reader)
        assert (fifth.member, fifth.order) == (True, None)
        assert _paid(reader.email) == 100
        assert list(Subscription.objects.filter(email=reader.email).values_list("status", flat=True)) == ["ended"]


def test_a_card_checkout_priced_before_a_wallet_unlock_is_refused_past_the_cap(store, reader):
    """$1 posts under a $3 cap: a card checkout priced at $1 (with $1 left), then a wallet unlock
    reaches the cap; paying the card checkout is refused with nothing charged."""
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": 300}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=100) for n in range(4)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=UTC), tick=False):
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
        assert checkout.amount_total == 100
        post_unlock(post=posts[2], method="wallet", buyer=reader)
        assert Subscription.objects.get(email=reader.email).origin == "cap"
        with pytest.raises(PriceChanged, match="The price of this checkout has changed"):
            checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert _paid(reader.email) == 300
    assert not Payment.objects.filter(checkout=checkout).exists()
