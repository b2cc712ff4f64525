"""Two payments at once past a cap, on real connections (one per thread): the month's total is
added under its row's lock inside each payment's transaction, so the second sees the first's.
Paying two open unlock checkouts from the wallet at once, each priced at the $1 left under a $3
cap: one is charged $1 and makes the reader a member, the other is lowered to nothing and the
post given. Two one-click unlocks at once: one is charged, the other charges nothing and gives
the post (when it read the price before the first committed, its payment is refused with
PriceLimitPassed inside, nothing moved, and it reads the price again: nil)."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.content.services import post_unlock
from stall.ledger.tests.test_concurrency import in_threads
from stall.memberships.models import CapTotal, Subscription
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.wallets.models import Wallet
from stall.wallets.services import wallet_top_up

from .conftest import make_post

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(store):
    reader = buyer_for_email(email="racer@example.com")
    wallet_top_up(buyer=reader, amount=2000, currency="USD", payment_method="sandbox_visa")
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": 300}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=100) for n in range(4)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    for post in posts[:2]:
        post_unlock(post=post, method="wallet", buyer=reader)
    return reader, tier, posts


def _net(email) -> int:
    return sum(o.amount_total - o.amount_refunded for o in Order.objects.filter(email=email))


def test_two_checkouts_paid_from_the_wallet_at_once_never_pass_the_cap(store):
    reader, tier, posts = _setup(store)
    checkouts = [post_unlock(post=post, method="card", buyer=reader).checkout for post in posts[2:]]
    assert [c.amount_total for c in checkouts] == [100, 100]
    before = Wallet.objects.get(buyer=reader).balance
    results, errors = in_threads(2, lambda i: checkout_confirm(checkout_id=checkouts[i].pk, payment_method="wallet", buyer=reader))
    assert errors == [None, None]
    assert sorted(r.amount_total for r in results) == [0, 100]
    assert all(r.status == "complete" for r in results)
    assert before - Wallet.objects.get(buyer=reader).balance == 100
    assert (_net(reader.email), CapTotal.objects.get(tier=tier).total) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"


def test_two_one_click_unlocks_at_once_never_pass_the_cap(store):
    reader, tier, posts = _setup(store)
    results, errors = in_threads(2, lambda i: post_unlock(post=posts[2 + i], method="wallet", buyer=reader))
    assert errors == [None, None]
    charged = [r.order.amount_total for r in results if r.order is not None]
    assert charged == [100]
    assert [r.member for r in results].count(True) == 1  # the other reads it free
    assert (_net(reader.email), CapTotal.objects.get(tier=tier).total) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"
