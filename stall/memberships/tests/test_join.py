"""Joining a tier: from the wallet (the lean spend), by card (hosted page or a given card), with a
trial, or a free tier; refusals charge nothing."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.checkout.models import Checkout
from stall.integrations.models import Event
from stall.memberships.errors import (
    AlreadyMember,
    MemberLimitReached,
    SubscriptionInvalid,
    TierArchived,
)
from stall.memberships.models import PeriodStatus, Subscription, SubscriptionPeriod
from stall.memberships.services import subscription_join
from stall.memberships.tiers import tier_archive, tier_create, tier_update
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.errors import PaymentDeclined, WalletEmpty
from stall.payments.models import Payment
from stall.payments.rails.wallet import wallet_get
from stall.testing import buy

pytestmark = pytest.mark.django_db


def _wallet(buyer) -> int:
    return wallet_get(buyer=buyer, currency="USD").account.balance


def test_joining_from_the_wallet_pays_an_order_of_kind_membership(store, tier, reader):
    """$3 from the wallet: one order with the tier's product, a subscription for a month, period 0 paid."""
    join = subscription_join(tier=tier, method="wallet", buyer=reader)
    sub = join.subscription
    order = Order.objects.get(store=store, email=reader.email)
    line = order.lines.select_related("product").get()
    assert (order.amount_total, order.payment.rail, line.product.kind) == (300, "wallet", "membership")
    assert (sub.status, sub.pay_with, sub.price.amount, sub.email) == ("active", "wallet", 300, "reader@example.com")
    assert (sub.current_period_end - sub.current_period_start).days in (28, 29, 30, 31)
    period = SubscriptionPeriod.objects.get(subscription=sub)
    assert (period.number, period.status, period.order_id, period.paid_with) == (0, PeriodStatus.PAID, order.pk, "wallet")
    assert _wallet(reader) == 1700
    assert "subscription.created" in set(Event.objects.filter(store=store).values_list("type", flat=True))


def test_an_empty_wallet_joins_nothing(store, tier):
    broke = buyer_for_email(email="broke@example.com")
    with pytest.raises(WalletEmpty):
        subscription_join(tier=tier, method="wallet", buyer=broke)
    assert not Subscription.objects.exists() and not Order.objects.exists()


def test_a_card_join_on_the_hosted_page_starts_the_membership_and_saves_the_card(store, tier):
    """The checkout of the tier's product, paid by a sandbox card: the order's fulfilment makes
    the subscription, paid by card, with the card kept for renewals."""
    join = subscription_join(tier=tier, method="card", email="fan@example.com")
    assert join.subscription is None and join.checkout.amount_total == 300
    checkout_confirm(checkout_id=join.checkout.pk, payment_method="sandbox_visa")
    sub = Subscription.objects.get(email="fan@example.com")
    assert (sub.status, sub.pay_with, sub.saved_method.method_ref) == ("active", "card", "sandbox_visa")
    assert SubscriptionPeriod.objects.get(subscription=sub).order.checkout_id == join.checkout.pk


def test_a_card_join_with_a_card_charges_it_now(store, tier):
    join = subscription_join(tier=tier, method="card", email="fan@example.com", payment_method="sandbox_visa")
    sub = join.subscription
    assert (sub.status, sub.pay_with) == ("active", "card")
    assert Order.objects.get(email="fan@example.com").amount_total == 300


def test_a_declined_card_joins_nothing(store, tier):
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        subscription_join(tier=tier, method="card", email="fan@example.com", payment_method="sandbox_declined")
    assert not Subscription.objects.exists() and not Order.objects.exists()


def test_a_trial_charges_nothing_until_it_ends(store, tier, reader):
    tier_update(tier=tier, trial_days=14)
    sub = subscription_join(tier=tier, method="wallet", buyer=reader).subscription
    assert (sub.status, (sub.trial_end - sub.current_period_start).days) == ("trialing", 14)
    assert not Order.objects.exists() and _wallet(reader) == 2000


def test_a_free_tier_never_charges(store, reader):
    free = tier_create(store=store, name="Newsletter")
    sub = subscription_join(tier=free, method="wallet", buyer=reader).subscription
    assert (sub.status, sub.pay_with, sub.current_period_end) == ("active", "none", None)
    assert not Order.objects.exists()


def test_an_archived_tier_takes_no_members(store, tier, reader):
    tier_archive(tier=tier)
    with pytest.raises(TierArchived, match="This tier is archived: it takes no new members."):
        subscription_join(tier=tier, method="wallet", buyer=reader)
    assert not Order.objects.exists() and _wallet(reader) == 2000


def test_a_full_tier_takes_no_more_members(store, tier, reader):
    tier_update(tier=tier, member_limit=1)
    subscription_join(tier=tier, method="card", email="first@example.com", payment_method="sandbox_visa")
    with pytest.raises(MemberLimitReached, match="This tier is full"):
        subscription_join(tier=tier, method="wallet", buyer=reader)
    assert _wallet(reader) == 2000 and Order.objects.count() == 1


def test_a_member_cannot_join_twice(store, tier, reader):
    subscription_join(tier=tier, method="wallet", buyer=reader)
    with pytest.raises(AlreadyMember):
        subscription_join(tier=tier, method="wallet", buyer=reader)
    assert Order.objects.count() == 1 and _wallet(reader) == 1700


def test_an_interval_the_tier_does_not_offer_is_refused(store, tier, reader):
    with pytest.raises(SubscriptionInvalid, match="This tier has no yearly price.") as caught:
        subscription_join(tier=tier, method="wallet", buyer=reader, interval="year")
    assert caught.value.code == "invalid_interval"
    with pytest.raises(SubscriptionInvalid, match="Unknown interval “daily”"):
        subscription_join(tier=tier, method="wallet", buyer=reader, interval="daily")
    assert not Order.objects.exists()


def test_buying_the_tiers_product_at_checkout_joins_too(store, tier):
    """A plain checkout of the tier's product (a payment link) makes its buyer a member."""
    buy(store=store, product=tier.prices.get().product, email="link@example.com")
    sub = Subscription.objects.get(email="link@example.com")
    assert (sub.status, sub.pay_with) == ("active", "card")
    assert Payment.objects.count() == 1 and Checkout.objects.count() == 1


def test_a_join_paid_from_the_wallet_on_the_hosted_page_renews_from_the_wallet(store, tier, reader):
    """"Pay by card" chosen on the join page, then the wallet chosen on the pay page: the member
    renews from the wallet (found by the page journey: such a member used to lapse)."""
    join = subscription_join(tier=tier, method="card", email=reader.email)
    checkout_confirm(checkout_id=join.checkout.pk, payment_method="wallet", buyer=reader)
    sub = Subscription.objects.get(email=reader.email)
    assert (sub.status, sub.pay_with, sub.saved_method) == ("active", "wallet", None)
    assert _wallet(reader) == 1700


def test_a_complimentary_membership_takes_the_readers_newest_known_language(store, tier, reader):
    """Nothing at this store but a wallet opened on a Korean page: Korean. Then a membership
    joined here from a Portuguese page, newer than anything else: Portuguese."""
    from datetime import timedelta

    from django.utils import timezone, translation

    from stall.memberships.services import subscription_cancel, subscription_complimentary_create
    from stall.memberships.tiers import tier_create
    from stall.payments.models import Wallet

    Wallet.objects.filter(buyer=reader).update(language="ko")
    ends = timezone.now() + timedelta(days=10)
    gift = subscription_complimentary_create(tier=tier, email=reader.email, ends_at=ends)
    assert gift.language == "ko"
    subscription_cancel(subscription=gift, at_period_end=False)
    other = tier_create(store=store, name="Patron", prices=[{"interval": "month", "amount": 500}])
    with translation.override("pt-br"):
        joined = subscription_join(tier=other, method="wallet", buyer=reader).subscription
    subscription_cancel(subscription=joined, at_period_end=False)
    # The checkout of the wallet join (if any) and the membership: both Portuguese, the newest.
    with translation.override("en"):
        again = subscription_complimentary_create(tier=tier, email=reader.email, ends_at=ends)
    assert again.language == "pt-br"
