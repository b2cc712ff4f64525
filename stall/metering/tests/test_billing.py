"""Live billing from the wallet under the allowance, its stop when money runs out, and arrears
invoices at period end."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from stall.integrations.models import Event
from stall.metering.billing import periods_close, usage_subscription_retry
from stall.metering.models import (
    InvoiceStatus,
    UsageCharge,
    UsageEvent,
    UsageInvoice,
    UsageSubscriptionStatus,
)
from stall.metering.services import plan_create, usage_subscription_create
from stall.wallets.models import Charge

from .conftest import send

pytestmark = pytest.mark.django_db


def _wallet(buyer):
    from stall.wallets.selectors import wallet_get

    return wallet_get(buyer=buyer, currency="USD").account.balance


@pytest.fixture
def plan(store, calls):
    return plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "0.2"}])


def test_live_billing_charges_whole_cents_each_time_ten_cents_accrue(store, customer, buyer, allowance, plan):
    """40 calls at 0.2¢ have paid 8¢ with a 1¢ threshold; with 10¢, 49 calls (9.8¢) pay nothing
    yet and the 50th charges 10¢."""
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=10)
    send(store, customer, n=49)
    sub.refresh_from_db()
    assert sub.charged == 0 and _wallet(buyer) == 2000
    send(store, customer, n=1, start=49)
    sub.refresh_from_db()
    assert (sub.charged, _wallet(buyer)) == (10, 1990)
    charge = UsageCharge.objects.get(subscription=sub)
    assert (charge.amount, charge.exact) == (10, Decimal("10.0"))
    assert Charge.objects.get(pk=charge.charge_id).amount == 10  # a wallet charge under the allowance


def test_the_period_end_charges_the_remainder_rounded_once_and_starts_the_next(store, customer, buyer, allowance, plan):
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=10)
    send(store, customer, n=57)  # 11.4¢: 11¢ charged live, 0.4¢ carried
    sub.refresh_from_db()
    assert sub.charged == 11
    send(store, customer, n=3, start=57)  # 12.0¢ accrued in all: 1¢ left, under the threshold
    end = sub.period_end
    assert periods_close(now=end + timedelta(seconds=1)) == 1
    sub.refresh_from_db()
    assert _wallet(buyer) == 2000 - 12
    assert (sub.charged, sub.period_start, sub.status) == (0, end, "active")
    assert sum(UsageCharge.objects.filter(subscription=sub).values_list("amount", flat=True)) == 12


def test_live_billing_stops_cleanly_when_the_allowance_runs_out(store, customer, buyer, plan):
    """A 10¢ allowance: the first 50 calls pay 10¢, the next 10¢ is refused — usage still
    recorded, the subscription past due, usage.payment_failed emitted once, no money moved."""
    from stall.wallets.allowances import allowance_grant

    allowance_grant(buyer=buyer, store=store, amount=10, period="month")
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=10)
    send(store, customer, n=50)
    send(store, customer, n=50, start=50)
    sub.refresh_from_db()
    assert sub.status == UsageSubscriptionStatus.PAST_DUE
    assert "allowance" in sub.failure_message
    assert (sub.charged, _wallet(buyer)) == (10, 1990)
    assert UsageEvent.objects.filter(customer=customer).count() == 100
    failed = Event.objects.get(store=store, type="usage.payment_failed")
    assert failed.data["object"]["id"] == sub.pk and failed.data["object"]["amount"] == 10
    send(store, customer, n=50, start=100)  # past due: recorded, not charged, not told again
    assert UsageEvent.objects.filter(customer=customer).count() == 150
    assert Event.objects.filter(type="usage.payment_failed").count() == 1
    # The customer raises the allowance; a retry charges what accrued (20¢) and reactivates.
    allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
    sub = usage_subscription_retry(subscription=sub)
    assert (sub.status, sub.charged, _wallet(buyer)) == ("active", 30, 1970)


def test_live_billing_stops_when_the_wallet_is_empty(store, customer, buyer, plan):
    from stall.metering.services import plan_update
    from stall.wallets.allowances import allowance_grant

    allowance_grant(buyer=buyer, store=store, amount=100_000, period="month")

    plan_update(plan=plan, prices=[{"meter": "api_calls", "unit_price": "150"}])  # $1.50 a call
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=100)
    send(store, customer, n=5)  # $7.50 of the $20 in the wallet
    assert _wallet(buyer) == 1250
    send(store, customer, n=10, start=5)  # $15 more: more than the wallet holds
    sub.refresh_from_db()
    assert sub.status == "past_due" and "wallet" in sub.failure_message
    assert _wallet(buyer) == 1250


def test_arrears_invoice_at_period_end_one_line_per_meter(store, customer, buyer, allowance, calls):
    """Tiered calls (first 100 free, then 0.1¢), tokens per package of 1,000 at 5¢, and a 30¢
    fee: 250 calls and 2,500 tokens make lines of 30¢, 15¢ and 15¢, paid from the wallet."""
    from stall.metering.services import meter_create

    meter_create(store=store, key="tokens", name="Tokens", event_name="llm", aggregation="sum", property="tokens")
    plan = plan_create(store=store, name="Pro", fixed_fee=30, prices=[
        {"meter": "api_calls", "model": "tiered",
         "tiers": [{"up_to": 100, "unit_price": "0"}, {"up_to": None, "unit_price": "0.1"}]},
        {"meter": "tokens", "model": "package", "package_size": 1000, "unit_price": "5"},
    ])
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears")
    send(store, customer, n=250)
    send(store, customer, name="llm", prefix="t", n=5, properties={"tokens": 500})
    assert _wallet(buyer) == 2000  # arrears: nothing charged during the period
    assert periods_close(now=sub.period_end + timedelta(minutes=1)) == 1
    invoice = UsageInvoice.objects.get(subscription=sub)
    lines = [(line.description, line.quantity, line.amount) for line in invoice.lines.order_by("pk")]
    assert lines == [("Pro", 1, 30), ("API calls", 250, 15), ("Tokens", 2500, 15)]
    assert (invoice.amount, invoice.status, _wallet(buyer)) == (60, InvoiceStatus.PAID, 1940)
    assert periods_close(now=sub.period_end + timedelta(minutes=2)) == 0  # closed once


def test_an_unpaid_arrears_period_stays_open_and_is_retried(store, customer, buyer, calls):
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "1"}])
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears")
    send(store, customer, n=30)
    later = sub.period_end + timedelta(minutes=1)
    assert periods_close(now=later) == 0  # no allowance: refused
    assert periods_close(now=later + timedelta(minutes=5)) == 0  # the periodic task's next try
    sub.refresh_from_db()
    assert sub.status == "past_due"
    failed = Event.objects.filter(store=store, type="usage.payment_failed")
    assert [e.data["object"]["amount"] for e in failed] == [30]  # told once, not on every retry
    assert UsageInvoice.objects.get(subscription=sub).status == InvoiceStatus.FAILED
    from stall.wallets.allowances import allowance_grant

    allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
    assert periods_close(now=later + timedelta(minutes=10)) == 1
    assert UsageInvoice.objects.get(subscription=sub).status == InvoiceStatus.PAID
    assert _wallet(buyer) == 1970
    assert timezone.now() < sub.period_end + timedelta(days=40)
