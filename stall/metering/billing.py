"""Billing usage: live charges from the wallet as cost accrues, and the close of each period.

A live subscription is charged from the customer's wallet, under the allowance they gave the
store (``orders.charging.store_charge``), whenever the period's accrued cost reaches its
threshold, and once more when the period closes. An arrears subscription gets one invoice at
period end, with one line per price, paid as ``invoicing`` says: the wallet first when the
customer allowed it, else (or when the wallet refuses) their saved card. Amounts follow the
rounding rule in ``rating`` (exact accrual, rounded half-up once when it becomes a charge, the
rest carried). Usage that arrives late for a closed period is billed once in a later one
(``late``).

Each wallet charge runs with the subscription's row locked and an idempotency key naming the
subscription, the period and the charge's number in it, so two workers billing one subscription
at once charge once. A refused charge (no allowance, the allowance's room used up, an empty
wallet, a declined card) moves no money: the usage stays recorded, the subscription becomes
``past_due`` (live charging pauses) and the store's integration hears ``usage.payment_failed``
once. A period closes only once it is paid: until then the periodic task tries its charge again
(the wallet on each run, a declined card on the schedule in ``invoicing``), and
``usage_subscription_retry`` tries at once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .invoicing import CardClaim, invoice_settle
from .late import LIVE_LOOK_EVERY, adjustments_exact, late_usage_absorb, quantity_text
from .models import (
    BillingMode,
    UsageCharge,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .periods import failure_record, locked, period_roll, wallet_charge
from .rating import live_charge_due, round_half_up
from .selectors import plan_usage_rate


def _charge(sub: UsageSubscription, *, amount: int, key: str, description: str) -> str | None:
    """Charge the wallet; the charge's id, or None after recording the failure."""
    charge_id, error = wallet_charge(sub, amount=amount, key=key, description=description)
    if error is not None:
        failure_record(sub, code=error.code, message=error.message, amount=amount)
    return charge_id


def _live_exact(sub: UsageSubscription):
    """The current period's exact cost so far, late usage of closed periods included, and its usage."""
    exact, usage = plan_usage_rate(plan=sub.plan, customer_id=sub.customer_id, start=sub.period_start, end=sub.period_end)
    return exact + adjustments_exact(sub=sub), usage


def _live_charge(sub: UsageSubscription, *, period_end: bool, force: bool = False, now: datetime | None = None) -> UsageCharge | None:
    late_usage_absorb(sub=sub, now=now or timezone.now(), every=None if period_end or force else LIVE_LOOK_EVERY)
    exact, _ = _live_exact(sub)
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
        sub = locked(subscription_id)
        if sub is None or sub.billing != BillingMode.LIVE or sub.status != UsageSubscriptionStatus.ACTIVE:
            return None
        return _live_charge(sub, period_end=False)


def subscription_period_close(*, subscription_id: str, now: datetime | None = None, force: bool = False) -> bool:
    """Settle a subscription's ended period and start the next; False while it cannot be paid.
    A declined card waits for its next retry unless ``force`` (a retry asked for now)."""
    now = now or timezone.now()
    with transaction.atomic():
        sub = locked(subscription_id)
        if sub is None or sub.status == UsageSubscriptionStatus.CANCELED or sub.period_end > now:
            return False
        if not force and sub.next_retry_at is not None and sub.next_retry_at > now:
            return False
        if sub.billing == BillingMode.LIVE:
            _live_charge(sub, period_end=True, now=now)
            exact, usage = _live_exact(sub)
            if round_half_up(exact) > sub.charged:
                return False
            period_roll(sub, quantities={u.meter.key: quantity_text(u.quantity) for u in usage}, rated_at=timezone.now())
            return True
        settled = invoice_settle(sub, now=now)
    # Committed: an arrears invoice's card is charged outside any transaction (the rail may take
    # seconds), its claim already saved so that a second worker replays the same charge.
    return settled.finish(now=now) if isinstance(settled, CardClaim) else settled


def periods_close(*, now: datetime | None = None, limit: int = 500) -> int:
    """Close every subscription's ended period (the periodic task). Returns how many closed."""
    now = now or timezone.now()
    due = list(
        UsageSubscription.objects.filter(period_end__lte=now)
        .exclude(status=UsageSubscriptionStatus.CANCELED).exclude(next_retry_at__gt=now)
        .order_by("period_end").values_list("pk", flat=True)[:limit]
    )
    return sum(subscription_period_close(subscription_id=pk, now=now) for pk in due)


def usage_subscription_retry(*, subscription: UsageSubscription, now: datetime | None = None) -> UsageSubscription:
    """Try a past-due subscription's charge now: its ended period, else what has accrued."""
    now = now or timezone.now()
    if subscription.period_end <= now:
        subscription_period_close(subscription_id=subscription.pk, now=now, force=True)
    else:
        with transaction.atomic():
            sub = locked(subscription.pk)
            if sub is not None and sub.status == UsageSubscriptionStatus.PAST_DUE:
                if sub.billing == BillingMode.LIVE:
                    _live_charge(sub, period_end=False, force=True, now=now)
                else:
                    sub.status, sub.failure_message = UsageSubscriptionStatus.ACTIVE, ""
                    sub.save(update_fields=["status", "failure_message", "updated_at"])
    return UsageSubscription.objects.select_related("customer", "plan").get(pk=subscription.pk)
