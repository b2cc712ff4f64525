"""Late usage: events accepted for a period already billed are billed once, in the next period's
invoice as an "adjustment" line (arrears) or with the next live charge (live)."""

from decimal import Decimal

import pytest
from django.db.models import F

from stall.metering import ingest, late
from stall.metering.billing import periods_close
from stall.metering.models import (
    BilledPeriod,
    InvoiceStatus,
    LineKind,
    MeteredPrice,
    UsageAdjustment,
    UsageCharge,
    UsageInvoice,
)
from stall.metering.services import meter_create, plan_create, usage_subscription_create

from .conftest import send
from .test_invoicing import DAY, period_set

pytestmark = pytest.mark.django_db


def test_the_late_window_is_ingestions_oldest_accepted_event():
    assert late.OLDEST == ingest.OLDEST


def test_late_usage_of_two_meters_is_listed_by_meter_name(store, customer, buyer, allowance, calls):
    """Late usage of two meters for one period makes two adjustment lines, in the order of the
    meters' names as the usage lines are, whatever the order of their prices' ids (a plan's prices
    are made together, so within that millisecond their ids are in no set order)."""
    meter_create(store=store, key="zebra_calls", name="Zebra calls", event_name="zebra.call")
    plan = plan_create(store=store, name="API", prices=[
        {"meter": "api_calls", "unit_price": "1"}, {"meter": "zebra_calls", "unit_price": "1"}])
    MeteredPrice.objects.filter(plan=plan, meter__key="api_calls").update(id="mprice_" + "z" * 26)  # after the zebra's
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears")
    sub = period_set(sub, days_ago=20, until_days_ago=10)
    send(store, customer, n=5, minutes_ago=15 * DAY)
    send(store, customer, name="zebra.call", n=5, prefix="z", minutes_ago=15 * DAY)
    assert periods_close() == 1

    send(store, customer, n=3, prefix="late", minutes_ago=15 * DAY)
    send(store, customer, name="zebra.call", n=4, prefix="zlate", minutes_ago=15 * DAY)
    sub = period_set(sub, days_ago=10, until_days_ago=5)
    assert periods_close() == 1
    second = UsageInvoice.objects.get(subscription=sub, period_start=sub.period_start)
    lines = [(line.kind, line.description, line.quantity) for line in second.lines.order_by("pk")]
    assert lines == [
        (LineKind.USAGE, "API calls", 0), (LineKind.USAGE, "Zebra calls", 0),
        (LineKind.ADJUSTMENT, "API calls", 3), (LineKind.ADJUSTMENT, "Zebra calls", 4),
    ]

def test_late_arrears_usage_is_an_adjustment_line_of_the_next_invoice_once(store, customer, buyer, allowance, calls):
    """First 100 calls free, then 1¢: period 1 billed 120 calls (20¢). 30 calls arrive late for it:
    the next invoice has its own usage and an adjustment of 30 calls for period 1 (30¢, priced
    where they fall in the tiers); the invoice after has no adjustment again."""
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "model": "tiered", "tiers": [
        {"up_to": 100, "unit_price": "0"}, {"up_to": None, "unit_price": "1"}]}])
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears")
    sub = period_set(sub, days_ago=20, until_days_ago=10)
    first_start = sub.period_start
    send(store, customer, n=120, minutes_ago=15 * DAY)
    assert periods_close() == 1
    billed = BilledPeriod.objects.get(subscription=sub)
    assert (billed.period_start, billed.quantities) == (first_start, {"api_calls": "120"})

    send(store, customer, n=30, prefix="late", minutes_ago=15 * DAY)  # accepted: within 35 days
    sub = period_set(sub, days_ago=10, until_days_ago=5)
    send(store, customer, n=110, prefix="b", minutes_ago=7 * DAY)
    assert periods_close() == 1
    second = UsageInvoice.objects.get(subscription=sub, period_start=sub.period_start)
    lines = [(line.kind, line.quantity, line.amount, line.adjusts_period) for line in second.lines.order_by("pk")]
    assert lines == [(LineKind.USAGE, 110, 10, None), (LineKind.ADJUSTMENT, 30, 30, first_start)]
    assert (second.amount, second.status) == (40, InvoiceStatus.PAID)
    billed.refresh_from_db()
    assert billed.quantities == {"api_calls": "150"}

    sub = period_set(sub, days_ago=5)
    assert periods_close() == 1
    third = UsageInvoice.objects.filter(subscription=sub).order_by("-pk").first()
    assert [line.kind for line in third.lines.all()] == [LineKind.USAGE]
    assert UsageAdjustment.objects.filter(subscription=sub).count() == 1


def test_late_live_usage_is_charged_with_the_next_live_charge_once(store, customer, buyer, allowance, calls):
    """0.2¢ a call, charged every 10¢: period 1 paid 10¢ for 50 calls. 50 more arrive late for it:
    the next live charge (after the next batch) charges them, 10¢, and never again."""
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "0.2"}])
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=10)
    sub = period_set(sub, days_ago=20, until_days_ago=10)
    send(store, customer, n=50, minutes_ago=15 * DAY)
    assert periods_close() == 1
    sub.refresh_from_db()
    assert UsageCharge.objects.filter(subscription=sub).count() == 1
    period_set(sub, days_ago=10, until_days_ago=-20)  # the current period: open

    send(store, customer, n=50, prefix="late", minutes_ago=15 * DAY)
    sub.refresh_from_db()
    assert not UsageAdjustment.objects.exists()  # looked for at most every ten minutes
    BilledPeriod.objects.update(checked_at=F("checked_at") - late.LIVE_LOOK_EVERY)  # ten minutes later
    send(store, customer, n=1, prefix="next", minutes_ago=DAY)  # the next batch's live charge bills them
    sub.refresh_from_db()
    adjustment = UsageAdjustment.objects.get(subscription=sub)
    assert (adjustment.quantity, adjustment.exact, adjustment.billed_in) == (50, Decimal("10.0"), sub.period_start)
    charges = list(UsageCharge.objects.filter(subscription=sub).order_by("pk").values_list("amount", "period_start"))
    assert charges[-1] == (10, sub.period_start) and len(charges) == 2
    assert sub.charged == 10

    BilledPeriod.objects.update(checked_at=F("checked_at") - late.LIVE_LOOK_EVERY)
    send(store, customer, n=1, prefix="now", minutes_ago=DAY)  # another batch: nothing late is billed twice
    assert UsageAdjustment.objects.filter(subscription=sub).count() == 1
    sub.refresh_from_db()
    assert sub.charged == 10  # 0.4¢ accrued, under the threshold
    sub = period_set(sub, days_ago=10)
    assert periods_close() == 1
    assert sum(UsageCharge.objects.filter(subscription=sub).values_list("amount", flat=True)) == 20  # 20.4¢ → 20¢


def test_late_usage_that_lowers_a_period_is_not_credited(store, customer, buyer, allowance):
    """A ``max`` meter billed at 8 seats; a late event of 3 for the same period leaves the
    period's quantity at 8: nothing is billed or credited."""
    from stall.metering.services import meter_create

    meter_create(store=store, key="seats", name="Seats", event_name="seats", aggregation="max", property="n")
    plan = plan_create(store=store, name="Seats", prices=[{"meter": "seats", "unit_price": "100"}])
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears")
    sub = period_set(sub, days_ago=20, until_days_ago=10)
    first_start = sub.period_start
    send(store, customer, name="seats", n=1, properties={"n": 8}, minutes_ago=15 * DAY)
    assert periods_close() == 1
    send(store, customer, name="seats", n=1, prefix="late", properties={"n": 3}, minutes_ago=16 * DAY)
    sub = period_set(sub, days_ago=10)
    assert periods_close() == 1
    assert not UsageAdjustment.objects.exists()
    assert BilledPeriod.objects.get(subscription=sub, period_start=first_start).quantities == {"seats": "8"}
