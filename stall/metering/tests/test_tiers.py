"""A membership tier carrying a metered plan: a member who joins is put on the plan (arrears,
paid the way they pay the tier), and the usage subscription ends with the membership, its last
period billed. The tier's fixed fee stays with memberships."""

from datetime import timedelta

import pytest
from django.utils import timezone

from stall.memberships.models import Subscription
from stall.memberships.renewals import renewals_run
from stall.memberships.services import subscription_cancel, subscription_join, subscription_pause
from stall.memberships.tiers import tier_create
from stall.metering.billing import periods_close
from stall.metering.errors import PlanInvalid
from stall.metering.models import InvoiceStatus, Plan, UsageInvoice, UsageSubscription
from stall.metering.services import plan_create, plan_update, usage_subscription_create
from stall.testing import StoreFactory

from .conftest import send
from .test_invoicing import DAY, period_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def tier(store):
    return tier_create(store=store, name="Builder", prices=[{"interval": "month", "amount": 500}])


@pytest.fixture
def plan(store, calls, tier):
    return plan_create(store=store, name="Builder usage", tier=tier.pk,
                       prices=[{"meter": "api_calls", "unit_price": "1"}])


def test_joining_a_tier_with_a_plan_puts_the_member_on_it_and_leaving_bills_the_rest(
    store, buyer, customer, allowance, tier, plan
):
    """A wallet member is put on the plan in arrears, wallet first; the $5 tier fee is the
    membership's order, not an invoice line. Cancelling now cuts the usage period short; the
    next run invoices the 30 calls used and the subscription is canceled."""
    joined = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    usage = UsageSubscription.objects.get(customer=customer)
    assert (usage.plan_id, usage.billing, usage.wallet_first, usage.membership_id, usage.status) == (
        plan.pk, "arrears", True, joined.pk, "active")
    usage = period_set(usage, days_ago=3, until_days_ago=-20)
    send(store, customer, n=30, minutes_ago=DAY)

    subscription_cancel(subscription=joined, at_period_end=False)
    usage.refresh_from_db()
    assert usage.ending and usage.status == "active"
    assert periods_close() == 1
    usage.refresh_from_db()
    assert usage.status == "canceled"
    invoice = UsageInvoice.objects.get(subscription=usage)
    assert [(line.description, line.amount) for line in invoice.lines.all()] == [("API calls", 30)]
    assert (invoice.status, invoice.paid_with) == (InvoiceStatus.PAID, "wallet")
    assert periods_close() == 0


def test_a_card_member_is_billed_on_the_card_they_gave_the_tier(store, tier, plan):
    joined = subscription_join(tier=tier, method="card", email="card@example.com", payment_method="sandbox_visa").subscription
    joined = Subscription.objects.get(pk=joined.pk)
    usage = UsageSubscription.objects.get(membership_id=joined.pk)
    assert (usage.saved_method_id, usage.wallet_first) == (joined.saved_method_id, False)
    assert usage.saved_method_id is not None


def test_a_tier_without_a_plan_and_a_customer_with_their_own_plan_are_left_alone(store, buyer, customer, allowance, calls):
    bare = tier_create(store=store, name="Reader", prices=[{"interval": "month", "amount": 300}])
    subscription_join(tier=bare, method="wallet", buyer=buyer)
    assert not UsageSubscription.objects.exists()

    carried = tier_create(store=store, name="Builder", prices=[{"interval": "month", "amount": 500}])
    plan_create(store=store, name="Builder usage", tier=carried.pk, prices=[{"meter": "api_calls", "unit_price": "1"}])
    own = plan_create(store=store, name="Own", prices=[])
    mine = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=own.pk)
    Subscription.objects.all().delete()  # a fresh reader for the other tier
    subscription_join(tier=carried, method="wallet", buyer=buyer)
    assert list(UsageSubscription.objects.values_list("pk", "plan_id")) == [(mine.pk, own.pk)]


def test_attaching_a_plan_to_a_tier_refuses_bad_input(store, tier, plan, calls):
    with pytest.raises(PlanInvalid, match="^No such membership tier.$") as caught:
        plan_create(store=store, name="X", prices=[], tier="tier_nope")
    assert (caught.value.param, caught.value.code) == ("tier", "resource_missing")
    other = StoreFactory()
    foreign = tier_create(store=other, name="Elsewhere", prices=[{"interval": "month", "amount": 100}])
    with pytest.raises(PlanInvalid, match="^No such membership tier.$"):
        plan_create(store=store, name="X", prices=[], tier=foreign.pk)
    with pytest.raises(PlanInvalid, match="already carries the plan 'Builder usage'") as caught:
        plan_create(store=store, name="X", prices=[], tier=tier.pk)
    assert caught.value.code == "tier_taken"
    with pytest.raises(PlanInvalid, match="^No such membership tier.$"):
        plan_create(store=store, name="X", prices=[], tier=7)
    assert Plan.objects.filter(store=store).count() == 1
    assert plan_update(plan=plan, tier="").tier_id == ""
    assert plan_update(plan=plan, tier=tier.pk).tier_id == tier.pk


def test_the_plan_api_reads_and_sets_the_tier(api, store, tier, calls):
    made = api.post("/plans", {"name": "Usage", "tier": tier.pk, "prices": [{"meter": "api_calls", "unit_price": "1"}]})
    assert made.status_code == 200 and made.json()["tier"] == tier.pk
    detached = api.post(f"/plans/{made.json()['id']}", {"tier": ""})
    assert detached.json()["tier"] is None
    bad = api.post("/plans", {"name": "Usage", "tier": "tier_nope", "prices": []})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tier"
    typed = api.post("/plans", {"name": "Usage", "tier": 5, "prices": []})
    assert typed.status_code == 400 and "error" in typed.json()


def test_moving_to_a_tier_with_another_plan_bills_the_old_plan_then_goes_on_with_the_new(
    store, buyer, customer, allowance, tier, plan
):
    """Builder (1¢ a call) to Studio (2¢ a call): the period is cut at the upgrade and billed on
    Builder's plan; the subscription goes on, active, on Studio's plan — one subscription."""
    from stall.memberships.services import subscription_change

    studio = tier_create(store=store, name="Studio", prices=[{"interval": "month", "amount": 900}])
    studio_plan = plan_create(store=store, name="Studio usage", tier=studio.pk,
                              prices=[{"meter": "api_calls", "unit_price": "2"}])
    joined = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    usage = period_set(UsageSubscription.objects.get(customer=customer), days_ago=3, until_days_ago=-20)
    send(store, customer, n=10, minutes_ago=DAY)

    subscription_change(subscription=joined, tier=studio, buyer=buyer)
    usage.refresh_from_db()
    assert (usage.ending, usage.pending_plan_id, usage.plan_id) == (True, studio_plan.pk, plan.pk)
    assert periods_close() == 1
    usage.refresh_from_db()
    assert (usage.status, usage.plan_id, usage.ending, usage.pending_plan_id) == ("active", studio_plan.pk, False, None)
    invoice = UsageInvoice.objects.get(subscription=usage)
    assert [(line.description, line.amount) for line in invoice.lines.all()] == [("API calls", 10)]
    assert UsageSubscription.objects.filter(customer=customer).count() == 1


def test_attaching_a_plan_to_a_tier_puts_its_members_on_it_and_detaching_takes_them_off(
    store, buyer, customer, allowance, tier, calls
):
    """The tier's members at the time the plan is attached are billed as those who join later
    are; detached, the plan stops billing them: their period is cut and billed for what they used."""
    joined = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    plan = plan_create(store=store, name="Builder usage", prices=[{"meter": "api_calls", "unit_price": "1"}])
    assert not UsageSubscription.objects.exists()

    plan_update(plan=plan, tier=tier.pk)
    usage = UsageSubscription.objects.get(customer=customer)
    assert (usage.plan_id, usage.membership_id, usage.status, usage.ending) == (plan.pk, joined.pk, "active", False)

    plan_update(plan=plan, tier="")
    usage.refresh_from_db()
    assert (usage.status, usage.ending) == ("active", True)  # billed for what was used, then canceled
    assert periods_close() == 1
    usage.refresh_from_db()
    assert usage.status == "canceled"


def test_a_plan_made_for_a_tier_puts_its_members_on_it(store, buyer, customer, allowance, tier, calls):
    joined = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    plan = plan_create(store=store, name="Builder usage", tier=tier.pk, prices=[{"meter": "api_calls", "unit_price": "1"}])
    usage = UsageSubscription.objects.get(customer=customer)
    assert (usage.plan_id, usage.membership_id) == (plan.pk, joined.pk)


def test_a_paused_member_is_not_billed_for_usage_until_the_membership_goes_on(
    store, buyer, customer, allowance, tier, plan
):
    """Paused, a member neither reads nor pays: the plan their tier carries stops billing them
    (their period is cut and billed) and starts again with the membership."""
    joined = subscription_join(tier=tier, method="wallet", buyer=buyer).subscription
    subscription_pause(subscription=joined, periods=1)
    _period_over(joined)
    assert renewals_run() == {"paused": 1}
    usage = UsageSubscription.objects.get(customer=customer)
    assert (usage.ending, usage.pending_plan_id) == (True, None)

    _period_over(joined)
    assert renewals_run() == {"renewed": 1}
    usage.refresh_from_db()
    assert (usage.ending, usage.pending_plan_id) == (True, plan.pk)  # its cut period billed, then on again
    assert periods_close() == 1
    usage.refresh_from_db()
    assert (usage.status, usage.plan_id, usage.ending) == ("active", plan.pk, False)


def _period_over(sub: Subscription) -> None:
    """Move the membership's current period into the past, as if its end had come."""
    sub = Subscription.objects.get(pk=sub.pk)
    end = timezone.now() - timedelta(minutes=1)
    Subscription.objects.filter(pk=sub.pk).update(
        current_period_start=end - (sub.current_period_end - sub.current_period_start), current_period_end=end,
        anchor_at=end, anchor_offset=sub.period_number,
    )
