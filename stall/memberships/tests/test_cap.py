"""Cap-to-subscribe: 25¢ unlocks of posts gated to a $1/month capped tier make the reader a
member at the fourth; the fifth post is free and the month never costs more than the cap."""

from datetime import UTC, datetime

import pytest
import time_machine

from stall.content.services import post_unlock
from stall.memberships.models import Subscription
from stall.memberships.renewals import renewals_run
from stall.memberships.services import cap_progress, subscription_pay_with_set
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.models import Order
from stall.orders.tests.test_spend import SPEND_STATEMENTS, at_most

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
