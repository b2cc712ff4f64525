"""Billing usage: live charges from the wallet as cost accrues, and the close of each period.

A live subscription is charged from the customer's wallet, under the allowance they gave the
store (``orders.charging.store_charge``), whenever the period's accrued cost reaches its
threshold, and once more when the period closes; an arrears subscription gets one invoice at
period end, with one line per price, charged the same way. Amounts follow the rounding rule in
``rating`` (exact accrual, rounded half-up once when it becomes a charge, the rest carried).

Each charge runs with the subscription's row locked and an idempotency key naming the
subscription, the period and the charge's number in it, so two workers billing one subscription
at once charge once. A refused charge (no allowance, the allowance's room used up, an empty
wallet) moves no money: the usage stays recorded, the subscription becomes ``past_due`` (live
charging pauses) and the store's integration hears ``usage.payment_failed``. A period closes only
once it is paid: until then the periodic task tries its charge again on each run, and
``usage_subscription_retry`` tries at once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from stall.core.errors import StallError
from stall.integrations.webhooks import event_emit
from stall.orders.charging import store_charge

from .models import (
    BillingMode,
    InvoiceStatus,
    UsageCharge,
    UsageInvoice,
    UsageInvoiceLine,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .rating import live_charge_due, period_after, round_half_up
from .selectors import plan_usage_rate


def _failure_record(sub: UsageSubscription, error: StallError, *, amount: int) -> None:
    was_active = sub.status == UsageSubscriptionStatus.ACTIVE
    sub.status = UsageSubscriptionStatus.PAST_DUE
    sub.failure_message = error.message[:255]
    sub.save(update_fields=["status", "failure_message", "updated_at"])
    if was_active:  # told once, when it falls behind, not on every retry
        event_emit(store_id=sub.store_id, type="usage.payment_failed", data={"object": {
            "id": sub.pk, "object": "usage_subscription", "customer": sub.customer_id, "plan": sub.plan_id,
            "status": sub.status, "amount": amount, "currency": sub.plan.currency,
            "failure_code": error.code, "failure_message": error.message,
        }})


def _charge(sub: UsageSubscription, *, amount: int, key: str, description: str) -> str | None:
    """Charge the wallet; the charge's id, or None after recording the failure."""
    try:
        with transaction.atomic():
            charge = store_charge(
                store=sub.store, customer_id=sub.customer_id, amount=amount, currency=sub.plan.currency,
                description=description[:120], idempotency_key=key,
            )
    except StallError as error:
        _failure_record(sub, error, amount=amount)
        return None
    return charge.pk


def _locked(subscription_id: str) -> UsageSubscription | None:
    return (
        UsageSubscription.objects.select_for_update(of=("self",)).select_related("store", "plan")
        .filter(pk=subscription_id).first()
    )


def _live_charge(sub: UsageSubscription, *, period_end: bool, force: bool = False) -> UsageCharge | None:
    exact, _ = plan_usage_rate(plan=sub.plan, customer_id=sub.customer_id, start=sub.period_start, end=sub.period_end)
    threshold = 1 if force else sub.threshold
    amount = live_charge_due(exact_cost=exact, charged=sub.charged, threshold=threshold, period_end=period_end)
    if amount <= 0:
        return None
    number = sub.charges_made + 1
    key = f"usage:{sub.pk}:{sub.period_start.isoformat()}:{number}"
    charge_id = _charge(sub, amount=amount, key=key, description=f"{sub.plan.name}: usage")
    if charge_id is None:
        return None
    made = UsageCharge.objects.create(
        subscription=sub, period_start=sub.period_start, amount=amount, exact=exact - sub.charged,
        currency=sub.plan.currency, charge_id=charge_id,
    )
    sub.charged += amount
    sub.charges_made = number
    fields = ["charged", "charges_made", "updated_at"]
    if sub.status == UsageSubscriptionStatus.PAST_DUE and force:
        sub.status, sub.failure_message = UsageSubscriptionStatus.ACTIVE, ""
        fields += ["status", "failure_message"]
    sub.save(update_fields=fields)
    return made


def subscription_bill_live(*, subscription_id: str) -> UsageCharge | None:
    """Charge a live subscription what has accrued, if it reached the threshold. Queued after
    each batch of events that gave its customer new usage."""
    with transaction.atomic():
        sub = _locked(subscription_id)
        if sub is None or sub.billing != BillingMode.LIVE or sub.status != UsageSubscriptionStatus.ACTIVE:
            return None
        return _live_charge(sub, period_end=False)


def _invoice(sub: UsageSubscription) -> UsageInvoice | None:
    """The arrears invoice of the subscription's current period, made once; charged if unpaid."""
    invoice = UsageInvoice.objects.filter(subscription=sub, period_start=sub.period_start).first()
    if invoice is None:
        fixed, usage = plan_usage_rate(
            plan=sub.plan, customer_id=sub.customer_id, start=sub.period_start, end=sub.period_end
        )
        lines = []
        if sub.plan.fixed_fee:
            lines.append(UsageInvoiceLine(description=sub.plan.name, quantity=1, exact=Decimal(sub.plan.fixed_fee),
                                          amount=sub.plan.fixed_fee))
        for u in usage:  # each line rounded once, half-up (rating)
            lines.append(UsageInvoiceLine(description=u.meter.name, meter_key=u.meter.key, quantity=u.quantity,
                                          exact=u.exact, amount=round_half_up(u.exact)))
        total = sum(line.amount for line in lines)
        invoice = UsageInvoice.objects.create(
            subscription=sub, period_start=sub.period_start, period_end=sub.period_end, amount=total,
            currency=sub.plan.currency, status=InvoiceStatus.EMPTY if total == 0 else InvoiceStatus.FAILED,
        )
        for line in lines:
            line.invoice = invoice
        UsageInvoiceLine.objects.bulk_create(lines)
    if invoice.status == InvoiceStatus.FAILED:  # not paid yet: charge it (again)
        key = f"usage-invoice:{invoice.pk}"
        charge_id = _charge(sub, amount=invoice.amount, key=key, description=f"{sub.plan.name}: usage invoice")
        if charge_id is None:
            return None
        invoice.status, invoice.charge_id = InvoiceStatus.PAID, charge_id
        invoice.save(update_fields=["status", "charge_id"])
    return invoice


def subscription_period_close(*, subscription_id: str, now: datetime | None = None) -> bool:
    """Settle a subscription's ended period and start the next; False while it cannot be paid."""
    now = now or timezone.now()
    with transaction.atomic():
        sub = _locked(subscription_id)
        if sub is None or sub.status == UsageSubscriptionStatus.CANCELED or sub.period_end > now:
            return False
        if sub.billing == BillingMode.LIVE:
            _live_charge(sub, period_end=True)
            exact, _ = plan_usage_rate(plan=sub.plan, customer_id=sub.customer_id, start=sub.period_start,
                                       end=sub.period_end)
            paid = round_half_up(exact) <= sub.charged
        else:
            paid = _invoice(sub) is not None
        if not paid:
            return False
        sub.period_start = sub.period_end
        sub.period_end = period_after(sub.period_start)
        sub.charged, sub.charges_made = 0, 0
        sub.status, sub.failure_message = UsageSubscriptionStatus.ACTIVE, ""
        sub.save(update_fields=["period_start", "period_end", "charged", "charges_made", "status", "failure_message",
                                "updated_at"])
        return True


def periods_close(*, now: datetime | None = None, limit: int = 500) -> int:
    """Close every subscription's ended period (the periodic task). Returns how many closed."""
    now = now or timezone.now()
    due = list(
        UsageSubscription.objects.filter(period_end__lte=now)
        .exclude(status=UsageSubscriptionStatus.CANCELED).order_by("period_end").values_list("pk", flat=True)[:limit]
    )
    return sum(subscription_period_close(subscription_id=pk, now=now) for pk in due)


def usage_subscription_retry(*, subscription: UsageSubscription, now: datetime | None = None) -> UsageSubscription:
    """Try a past-due subscription's charge now: its ended period, else what has accrued."""
    now = now or timezone.now()
    if subscription.period_end <= now:
        subscription_period_close(subscription_id=subscription.pk, now=now)
    else:
        with transaction.atomic():
            sub = _locked(subscription.pk)
            if sub is not None and sub.status == UsageSubscriptionStatus.PAST_DUE:
                if sub.billing == BillingMode.LIVE:
                    _live_charge(sub, period_end=False, force=True)
                else:
                    sub.status, sub.failure_message = UsageSubscriptionStatus.ACTIVE, ""
                    sub.save(update_fields=["status", "failure_message", "updated_at"])
    return UsageSubscription.objects.select_related("customer", "plan").get(pk=subscription.pk)
