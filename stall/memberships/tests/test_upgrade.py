"""Upgrading by the saved card: the prorated difference is charged to it at once as an order of
the new tier's product, and the member moves to the new tier; a declined card changes nothing."""

from datetime import UTC, datetime

import pytest
import time_machine

from stall.memberships.models import Subscription
from stall.memberships.renewals import renewals_run
from stall.memberships.services import (
    subscription_change,
    subscription_join,
    subscription_pay_with_set,
)
from stall.memberships.tiers import tier_create
from stall.orders.models import Order
from stall.payments.errors import PaymentDeclined
from stall.payments.models import Payment

pytestmark = pytest.mark.django_db


def at(y, m, d, h=12):
    return datetime(y, m, d, h, 0, tzinfo=UTC)


@pytest.fixture
def tiers(store):
    return (tier_create(store=store, name="Mid", prices=[{"interval": "month", "amount": 600}]),
            tier_create(store=store, name="High", prices=[{"interval": "month", "amount": 900}]))


def test_an_upgrade_charges_the_prorated_difference_to_the_saved_sandbox_card(store, tiers):
    mid, high = tiers
    with time_machine.travel(at(2027, 4, 1), tick=False) as clock:
        sub = subscription_join(tier=mid, method="card", email="card@example.com", payment_method="sandbox_visa").subscription
        clock.move_to(at(2027, 4, 16))  # half of April's 30 days left: (9 - 6) / 2 = $1.50
        upgraded = subscription_change(subscription=sub, tier=high)
        assert (upgraded.tier_id, upgraded.price.amount, upgraded.pay_with) == (high.pk, 900, "card")
        order = Order.objects.filter(email="card@example.com").latest("created_at")
        line = order.lines.select_related("product").get()
        assert (order.amount_total, order.payment.rail, order.payment.payment_method) == (150, "sandbox", "sandbox_visa")
        assert (line.product_id, line.product.kind) == (high.prices.get().product_id, "membership")
        clock.move_to(at(2027, 5, 1, 13))
        assert renewals_run() == {"renewed": 1}
    assert Order.objects.filter(email="card@example.com").latest("created_at").amount_total == 900
    assert Subscription.objects.get(pk=sub.pk).current_period_end == at(2027, 6, 1)


def test_a_declined_saved_card_leaves_the_member_where_they_were(store, tiers):
    mid, high = tiers
    with time_machine.travel(at(2027, 4, 1), tick=False) as clock:
        sub = subscription_join(tier=mid, method="card", email="card@example.com", payment_method="sandbox_visa").subscription
        subscription_pay_with_set(subscription=sub, pay_with="card", payment_method="sandbox_declined")
        clock.move_to(at(2027, 4, 16))
        with pytest.raises(PaymentDeclined, match="Your card was declined."):
            subscription_change(subscription=sub, tier=high)
    after = Subscription.objects.get(pk=sub.pk)
    assert (after.tier_id, after.price.amount, after.pending_price_id) == (mid.pk, 600, None)
    assert Order.objects.filter(email="card@example.com").count() == 1
    assert Payment.objects.filter(status="failed", amount=150).count() == 1
