"""Gating: a non-member never gets a gated post's body (page, unlock, RSS); a member reads it
without paying; the private feed stops when the membership ends or its token is rotated."""

import pytest
from django.urls import reverse

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.content.errors import MembersOnly
from stall.content.services import post_unlock
from stall.memberships.services import (
    subscription_cancel,
    subscription_feed_token_rotate,
    subscription_join,
)
from stall.memberships.tiers import post_gate_set, tier_gates_set
from stall.orders.models import Order
from stall.orders.tests.test_spend import SPEND_STATEMENTS, at_most
from stall.payments.errors import WalletEmpty
from stall.payments.rails.wallet import wallet_get

from .conftest import SECRET, make_post

pytestmark = pytest.mark.django_db


def _sign_in(client, buyer):
    client.get(buyer_magic_link(email=buyer.email).removeprefix("http://testserver"), follow=True)


@pytest.fixture
def gated(store, tier):
    """A free members-only post and a 25¢ post gated to the tier."""
    free = make_post(store, title="Members only", amount=0)
    priced = make_post(store, title="Paid or members", amount=25)
    tier_gates_set(tier=tier, product_ids=[free.product_id, priced.product_id])
    return free, priced


def test_a_member_unlocks_a_gated_post_for_nothing(store, tier, reader, gated):
    free, priced = gated
    subscription_join(tier=tier, method="wallet", buyer=reader)
    balance = wallet_get(buyer=reader, currency="USD").account.balance
    unlock = post_unlock(post=priced, method="wallet", buyer=reader)
    assert (unlock.already, unlock.member, unlock.order) == (True, True, None)
    assert post_unlock(post=free, method="wallet", buyer=reader).member
    assert wallet_get(buyer=reader, currency="USD").account.balance == balance
    assert Order.objects.filter(email=reader.email).count() == 1  # the join


def test_a_non_member_cannot_unlock_a_free_gated_post_and_pays_for_a_priced_one(store, tier, reader, gated):
    free, priced = gated
    with pytest.raises(MembersOnly, match="This post is for members"):
        post_unlock(post=free, method="wallet", buyer=reader)
    unlock = post_unlock(post=priced, method="wallet", buyer=reader)
    assert (unlock.member, unlock.order.amount_total) == (False, 25)


def test_the_unlock_of_a_store_with_no_tiers_costs_no_more_statements(store, reader, django_capture_on_commit_callbacks):
    """The member check rides in the spend's first SELECT: the budget holds."""
    warm = make_post(store, title="Warm")
    with django_capture_on_commit_callbacks(execute=True):
        post_unlock(post=warm, method="wallet", buyer=reader)
    post = make_post(store, title="Counted")
    with at_most(SPEND_STATEMENTS):
        unlock = post_unlock(post=post, method="wallet", buyer=reader)
    assert unlock.order.amount_total == 25


def test_the_page_shows_the_body_to_members_only(client, store, tier, reader, gated):
    free, priced = gated
    url = reverse("content:post", args=[store.slug, free.slug])
    assert SECRET not in client.get(url).content.decode()
    _sign_in(client, reader)
    page = client.get(url).content.decode()
    assert SECRET not in page and "This post is for members." in page
    subscription_join(tier=tier, method="wallet", buyer=reader)
    assert SECRET in client.get(url).content.decode()
    assert SECRET in client.get(reverse("content:post", args=[store.slug, priced.slug])).content.decode()


def test_the_public_feed_never_carries_a_gated_body(client, store, tier, reader, gated):
    subscription_join(tier=tier, method="wallet", buyer=reader)
    feed = client.get(reverse("content:feed", args=[store.slug])).content.decode()
    assert SECRET not in feed and "Members read on." in feed


def test_the_private_feed_carries_members_bodies_until_the_membership_ends(client, store, tier, reader, gated):
    sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
    url = reverse("content:private_feed", args=[store.slug, sub.feed_token])
    assert client.get(url).content.decode().count(SECRET) == 2
    rotated = subscription_feed_token_rotate(subscription=sub)
    assert client.get(url).status_code == 404
    url = reverse("content:private_feed", args=[store.slug, rotated.feed_token])
    assert client.get(url).status_code == 200
    subscription_cancel(subscription=sub, at_period_end=False)
    assert client.get(url).status_code == 404


def test_a_post_is_gated_from_its_side_too(store, tier):
    post = make_post(store)
    assert post_gate_set(store=store, product_id=post.product_id, tier_ids=[tier.pk]) == [tier.pk]
    assert list(tier.gates.values_list("product_id", flat=True)) == [post.product_id]
    stranger = buyer_for_email(email="x@example.com")
    with pytest.raises(WalletEmpty, match="Your wallet does not hold enough for this."):
        post_unlock(post=post, method="wallet", buyer=stranger)


def test_the_private_feed_speaks_the_members_language_and_the_public_one_the_visitors(client, store, tier, reader, gated):
    """A member who joined from a Korean page: their feed app asks in English (or nothing), and
    the feed's title, description, its "read on" lines and its <language> are Korean still. The
    public feed follows whoever asks it."""
    from django.utils import translation

    with translation.override("ko"):
        sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
    assert sub.language == "ko"
    extra = make_post(store, title="Paid only", amount=50)  # not gated: the member did not unlock it
    url = reverse("content:private_feed", args=[store.slug, sub.feed_token])
    feed = client.get(url, headers={"accept-language": "en"}).content.decode()
    assert f"<title>{store.name}: 글</title>" in feed and f"{store.name}의 새 글입니다." in feed
    assert "<language>ko</language>" in feed
    assert "US$0.50에 이어서 읽으세요." in feed and "Read on" not in feed and extra.title in feed
    assert feed.count(SECRET) == 2

    public = client.get(reverse("content:feed", args=[store.slug]), headers={"accept-language": "pt-br"}).content.decode()
    assert "<language>pt-br</language>" in public and f"Novos posts de {store.name}." in public
    assert "Membros continuam lendo." in public and "Continue lendo por US$\xa00,50." in public
    english = client.get(reverse("content:feed", args=[store.slug])).content.decode()
    assert "Members read on." in english and "Read on for $0.50." in english
