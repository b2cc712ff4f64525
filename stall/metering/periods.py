"""What every way of billing a period shares: the subscription locked, a wallet charge, a
failure recorded (past due, and the store told once), and the paid period closed."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from stall.core.errors import StallError
from stall.integrations.webhooks import event_emit
from stall.orders.charging import store_charge

from .late import billed_period_record
from .models import UsageSubscription, UsageSubscriptionStatus
from .rating import period_after


def failure_record(sub: UsageSubscription, *, code: str, message: str, amount: int, fields: tuple = ()) -> None:
    """The subscription could not be paid: past due, and the store told once when it falls
    behind (not on every retry). ``fields`` are more fields of ``sub`` to save with it."""
    was_active = sub.status == UsageSubscriptionStatus.ACTIVE
    sub.status = UsageSubscriptionStatus.PAST_DUE
    sub.failure_message = message[:255]
    sub.save(update_fields=["status", "failure_message", "updated_at", *fields])
    if was_active:
        event_emit(store_id=sub.store_id, type="usage.payment_failed", data={"object": {
            "id": sub.pk, "object": "usage_subscription", "customer": sub.customer_id, "plan": sub.plan_id,
            "status": sub.status, "amount": amount, "currency": sub.plan.currency,
            "failure_code": code, "failure_message": message,
        }})


def wallet_charge(sub: UsageSubscription, *, amount: int, key: str, description: str) -> tuple[str | None, StallError | None]:
    """Charge the wallet under the allowance: (the charge's id, None), or (None, the refusal)."""
    try:
        with transaction.atomic():
            charge = store_charge(
                store=sub.store, customer_id=sub.customer_id, amount=amount, currency=sub.plan.currency,
                description=description[:120], idempotency_key=key,
            )
    except StallError as error:
        return None, error
    return charge.pk, None


def locked(subscription_id: str) -> UsageSubscription | None:
    return (
        UsageSubscription.objects.select_for_update(of=("self",)).select_related("store", "plan", "saved_method")
        .filter(pk=subscription_id).first()
    )


def period_roll(sub: UsageSubscription, *, quantities: dict[str, str], rated_at: datetime) -> None:
    """The paid period is closed: keep what it billed, then start the next period — on the
    pending plan, if the member moved tiers — or, for a subscription ending (its membership
    ended), cancel it. Call with the subscription locked."""
    billed_period_record(sub=sub, quantities=quantities, rated_at=rated_at)
    fields = ["period_start", "period_end", "charged", "charges_made", "status", "failure_message", "past_due_since",
              "card_retries", "next_retry_at", "updated_at"]
    if sub.ending and sub.pending_plan_id is None:
        sub.status = UsageSubscriptionStatus.CANCELED
    else:
        if sub.pending_plan_id is not None:  # goes on, on the plan of the member's new tier
            sub.plan_id, sub.pending_plan_id, sub.ending = sub.pending_plan_id, None, False
            fields += ["plan", "pending_plan", "ending"]
        sub.period_start = sub.period_end
        sub.period_end = period_after(sub.period_start)
        sub.charged, sub.charges_made = 0, 0
        sub.status = UsageSubscriptionStatus.ACTIVE
    sub.failure_message = ""
    sub.past_due_since, sub.card_retries, sub.next_retry_at = None, 0, None
    sub.save(update_fields=fields)
