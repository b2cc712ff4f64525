"""Cap-to-subscribe when a price goes stale: a checkout priced under the cap is paid after the cap
was reached by other unlocks. From the wallet (the pay page's "Pay from wallet"), the payment
finds it under the wallet's lock, the checkout is lowered to what is left and paid (the reader
gets the post, free once the cap is reached); by card (a Stripe page confirmed in the browser, a
sandbox 3-D Secure check approved later), the money is taken and the excess is refunded. Either
way no reader pays more than the cap in a month."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from stall.accounts.services import buyer_for_email
from stall.checkout.errors import CheckoutNotFound
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.content.services import post_unlock
from stall.memberships.cap_refunds import CAP_REFUND_REASON, cap_excess_refund, cap_excess_sweep
from stall.memberships.models import CapExcess, CapTotal, Subscription
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.errors import PriceChanged
from stall.orders.models import Order
from stall.orders.pricing import checkout_reprice
from stall.payments.models import Payment, PaymentStatus, Refund
from stall.payments.services import payment_confirm_action
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    VISA,
    buyer_browser,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)
from stall.wallets.models import Wallet
from stall.wallets.services import wallet_top_up

from .conftest import make_post
from .test_pages import sign_in, words

pytestmark = pytest.mark.django_db

MARCH = datetime(2027, 3, 10, 12, tzinfo=UTC)


def _capped(store, *, cap=300, price=100, count=4):
    tier = tier_create(store=store, name="All posts", prices=[{"interval": "month", "amount": cap}], cap_to_subscribe=True)
    posts = [make_post(store, title=f"Post {n}", amount=price) for n in range(count)]
    tier_gates_set(tier=tier, product_ids=[p.product_id for p in posts])
    return tier, posts


def _net(email) -> int:
    """What the reader paid for posts, less what was given back."""
    orders = Order.objects.filter(email=email, lines__product__kind="post").distinct()
    return sum(o.amount_total - o.amount_refunded for o in orders)


def _wallet(buyer) -> int:
    return Wallet.objects.get(buyer=buyer).balance


def _cap_total(tier, email) -> int:
    return CapTotal.objects.get(tier=tier, email=email).total


# --- The wallet on the pay page ------------------------------------------------------------------


def test_the_pay_pages_wallet_gives_the_post_free_once_the_cap_was_reached_since(client, store, reader):
    """$1 posts under a $3 cap: the pay page of a card unlock is opened with $1 left, the cap is
    reached by a one-click unlock, then "Pay from wallet" on the old page: the post is the
    reader's, nothing more is charged, and the page says why."""
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        sign_in(client, reader)
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
        assert checkout.amount_total == 100
        assert client.get(reverse("checkout:pay", args=[checkout.pk])).status_code == 200
        post_unlock(post=posts[2], method="wallet", buyer=reader)  # the cap: a member now
        balance = _wallet(reader)

        response = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("checkout:complete", args=[checkout.pk])
    assert "You reached this month's cap for these posts, so this one is yours at no charge." in words(response)
    order = Order.objects.get(checkout_id=checkout.pk)
    assert (order.amount_total, order.payment_id) == (0, None)
    assert order.entitlements.get().product_id == posts[3].product_id
    assert _wallet(reader) == balance
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"


def test_the_pay_pages_wallet_charges_only_what_is_left_under_the_cap(client, store, reader):
    """$1.20 posts under a $3 cap: a checkout priced at $1.20 (with $1.80 left), then a one-click
    unlock leaves 60¢: paying the old checkout from the wallet charges 60¢ and makes a member."""
    tier, posts = _capped(store, price=120, count=3)
    with time_machine.travel(MARCH, tick=False):
        sign_in(client, reader)
        post_unlock(post=posts[0], method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[2], method="card", buyer=reader).checkout
        assert checkout.amount_total == 120
        post_unlock(post=posts[1], method="wallet", buyer=reader)
        balance = _wallet(reader)
        response = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet"}, follow=True)
    assert "you paid only $0.60, what was left under it." in words(response)
    order = Order.objects.get(checkout_id=checkout.pk)
    assert (order.amount_total, order.lines.get().unit_amount) == (60, 60)
    assert Checkout.objects.get(pk=checkout.pk).amount_total == 60
    assert balance - _wallet(reader) == 60
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"


def test_a_checkout_paid_from_the_tab_past_the_cap_is_lowered_too(store, reader):
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
        post_unlock(post=posts[2], method="wallet", buyer=reader)
        paid = checkout_confirm(checkout_id=checkout.pk, payment_method="tab", buyer=reader)
    assert (paid.status, paid.amount_total) == ("complete", 0)
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)


def test_a_checkout_under_the_cap_is_paid_as_priced(client, store, reader):
    """Nothing stale: the pay page's wallet charges the checkout's price, no message."""
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        sign_in(client, reader)
        checkout = post_unlock(post=posts[0], method="card", buyer=reader).checkout
        response = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet"}, follow=True)
    assert "You reached" not in words(response)
    assert Order.objects.get(checkout_id=checkout.pk).amount_total == 100
    assert _cap_total(tier, reader.email) == 100


def test_a_checkout_of_two_capped_posts_past_the_cap_is_refused_with_nothing_charged(client, store, reader):
    """Limits are per post and do not add up across lines: a checkout holding two capped posts
    (the API can make one) is not lowered but refused, with a clear message and nothing moved."""
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        sign_in(client, reader)
        post_unlock(post=posts[0], method="wallet", buyer=reader)
        checkout = checkout_create(store=store, email=reader.email, items=[
            CheckoutItem(product_id=posts[1].product_id), CheckoutItem(product_id=posts[2].product_id),
        ])
        post_unlock(post=posts[3], method="wallet", buyer=reader)  # $2 paid: $1 left, the checkout is $2
        balance = _wallet(reader)
        response = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "wallet"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("checkout:pay", args=[checkout.pk])
    assert "The price of this checkout has changed since it was made" in words(response)
    assert _wallet(reader) == balance
    assert Checkout.objects.get(pk=checkout.pk).status == "open"
    assert not Order.objects.filter(checkout_id=checkout.pk).exists()
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (200, 200)


def test_the_pay_pages_wallet_refuses_bad_input_with_nothing_charged(client, store, reader):
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        sign_in(client, reader)
        checkout = post_unlock(post=posts[0], method="card", buyer=reader).checkout
        balance = _wallet(reader)
        bad = client.post(reverse("wallets:pay", args=[checkout.pk]), {"payment_method": "card"}, follow=True)
        assert "Choose your wallet or your tab." in words(bad)
        assert client.post(reverse("wallets:pay", args=["chk_nope"]), {"payment_method": "wallet"}).status_code == 404
        assert client.get(reverse("wallets:pay", args=[checkout.pk])).status_code == 405
    assert _wallet(reader) == balance
    assert not Order.objects.filter(checkout_id=checkout.pk).exists()


# --- A card charged past the cap ----------------------------------------------------------------


def test_a_stripe_page_paid_after_the_cap_was_reached_elsewhere_is_refunded_the_excess(
    client, stripe_store, card, buyer_browser, localstripe_client, django_capture_on_commit_callbacks,
):
    """The Stripe page of a card unlock is opened with $1 left under a $3 cap; the cap is reached
    by a wallet unlock in another tab, and the reader then pays the open page (Stripe.js confirms
    in the browser: nothing of ours can stop it). The order is made, counts only what keeps the
    reader at the cap, and the excess goes back to the card through the refund path."""
    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=1000, currency="USD", payment_method=card(VISA), store=stripe_store)
    tier, posts = _capped(stripe_store)
    for post in posts[:2]:
        post_unlock(post=post, method="wallet", buyer=reader)
    checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
    assert client.get(reverse("checkout:pay", args=[checkout.pk])).context["client_secret"]
    payment = Payment.objects.get(checkout=checkout)
    post_unlock(post=posts[2], method="wallet", buyer=reader)  # the cap: a member now

    assert buyer_browser.pay(payment.rail_reference, VISA)["status"] == "succeeded"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(reverse("checkout:stripe_return", args=[checkout.pk]), {"payment_intent": payment.rail_reference})
    assert response["Location"] == reverse("checkout:complete", args=[checkout.pk])
    order = Order.objects.get(checkout_id=checkout.pk)
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.status, refund.reason) == (100, "succeeded", CAP_REFUND_REASON)
    assert (order.amount_total, order.amount_refunded, order.status) == (100, 100, "refunded")
    stripe_refunds = localstripe_client.v1.refunds.list(params={"payment_intent": payment.rail_reference}).data
    assert [r.amount for r in stripe_refunds] == [100]
    assert (_net(reader.email), CapTotal.objects.get(tier=tier).total) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"
    # The refund revoked the order's entitlement; the membership still lets the reader read it.
    assert post_unlock(post=posts[3], method="wallet", buyer=reader).member


def test_a_3ds_card_approved_after_the_cap_was_reached_is_refunded_the_excess(
    client, store, reader, django_capture_on_commit_callbacks,
):
    """Sandbox: a card unlock started under the cap waits for 3-D Secure; the cap is reached by
    wallet unlocks; the reader approves at the bank. The charge stands, the excess is refunded."""
    tier, posts = _capped(store, price=120, count=3)
    with time_machine.travel(MARCH, tick=False):
        post_unlock(post=posts[0], method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[2], method="card", buyer=reader).checkout
        assert checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_3ds").status == "open"
        post_unlock(post=posts[1], method="wallet", buyer=reader)  # 60¢ left under the cap now
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("checkout:authenticate", args=[checkout.pk]), {"decision": "approve"})
    assert response["Location"] == reverse("checkout:complete", args=[checkout.pk])
    order = Order.objects.get(checkout_id=checkout.pk)
    assert (order.amount_total, order.amount_refunded, order.status) == (120, 60, "partially_refunded")
    assert Refund.objects.get(order=order).status == "succeeded"
    assert Payment.objects.get(checkout=checkout).status == PaymentStatus.SUCCEEDED
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)
    assert Subscription.objects.get(email=reader.email).origin == "cap"
    assert order.entitlements.get().revoked_at is None  # partly refunded: the post stays theirs


def _card_at_the_bank_past_the_cap(posts, reader):
    """A $1.20 card unlock waits on 3-D Secure while wallet unlocks leave 60¢ under the $3 cap:
    approved now, it pays 60¢ past it. Returns its checkout and payment."""
    post_unlock(post=posts[0], method="wallet", buyer=reader)
    checkout = post_unlock(post=posts[2], method="card", buyer=reader).checkout
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_3ds")
    post_unlock(post=posts[1], method="wallet", buyer=reader)
    return checkout, Payment.objects.get(checkout=checkout)


def test_the_excess_refund_is_given_once(store, reader, django_capture_on_commit_callbacks):
    """A retried refund task (or a second call) gives the excess back once."""
    tier, posts = _capped(store, price=120, count=3)
    with time_machine.travel(MARCH, tick=False):
        checkout, payment = _card_at_the_bank_past_the_cap(posts, reader)
        with django_capture_on_commit_callbacks(execute=True):
            payment_confirm_action(payment_id=payment.pk, approve=True)
    order = Order.objects.get(checkout_id=checkout.pk)
    assert CapExcess.objects.get(order=order).settled_at is not None  # the task settled it
    assert cap_excess_refund(order_id=order.pk, amount=60) is None
    assert cap_excess_refund(order_id="ord_nope", amount=60) is None
    assert Refund.objects.filter(order=order).count() == 1
    assert _net(reader.email) == 300


def test_an_excess_whose_refund_task_was_lost_is_given_back_by_the_sweep_once(store, reader, django_capture_on_commit_callbacks):
    """The process stops between the order's commit and queueing its refund (the on-commit hook
    never runs): what is owed was written with the order, and the sweep gives it back — once,
    and only after the task had its chance."""
    tier, posts = _capped(store, price=120, count=3)
    with time_machine.travel(MARCH, tick=False):
        checkout, payment = _card_at_the_bank_past_the_cap(posts, reader)
        with django_capture_on_commit_callbacks(execute=False) as lost:
            payment_confirm_action(payment_id=payment.pk, approve=True)
        assert lost  # the refund's queueing, never run
        order = Order.objects.get(checkout_id=checkout.pk)
        assert (CapExcess.objects.get(order=order).amount, CapExcess.objects.get(order=order).settled_at) == (60, None)
        assert cap_excess_sweep() == 0  # too soon: the task may still come
        assert not Refund.objects.filter(order=order).exists()
    with time_machine.travel(datetime(2027, 3, 10, 12, 11, tzinfo=UTC), tick=False):
        assert cap_excess_sweep() == 1
        assert cap_excess_sweep() == 0
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.status, refund.reason) == (60, "succeeded", CAP_REFUND_REASON)
    assert CapExcess.objects.get(order=order).settled_at is not None
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)


def test_a_sandbox_card_checkout_is_still_refused_before_charging_past_the_cap(client, store, reader):
    """The pay page's test card asks the cap before charging: refused, nothing charged (the
    refund is only for a card the page could not stop)."""
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        for post in posts[:2]:
            post_unlock(post=post, method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[3], method="card", buyer=reader).checkout
        post_unlock(post=posts[2], method="wallet", buyer=reader)
        response = client.post(reverse("checkout:pay", args=[checkout.pk]), {"payment_method": "sandbox_visa"})
    assert response.status_code == 400
    assert "The price of this checkout has changed since it was made" in words(response)
    assert not Payment.objects.filter(checkout=checkout).exists()
    assert not Refund.objects.exists()
    assert _net(reader.email) == 300


def test_a_checkout_is_lowered_only_when_open_and_above_its_limit(store, reader):
    """Bad input at the service: a checkout that is not open is not lowered (nothing changes)."""
    tier, posts = _capped(store)
    with time_machine.travel(MARCH, tick=False):
        checkout = post_unlock(post=posts[0], method="card", buyer=reader).checkout
        with pytest.raises(PriceChanged):  # nothing above its limit: nothing to lower
            checkout_reprice(checkout_id=checkout.pk)
        checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader)
        assert checkout_reprice(checkout_id=checkout.pk) is False  # complete: left as it is
    with pytest.raises(CheckoutNotFound):
        checkout_reprice(checkout_id="chk_nope")
    assert Checkout.objects.get(pk=checkout.pk).amount_total == 100
