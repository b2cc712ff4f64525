"""Arrears invoices: made once at period end, one line per price, paid from the wallet or a card.

The invoice. When an arrears period has ended, its invoice is made once (unique per
subscription and period): the plan's fixed fee, one line per metered price (each rounded once,
half-up), a line per late usage of an earlier period (``late``: "adjustment for <period>") and
a line for an earlier invoice carried forward. Its total is the sum of its lines.

Who pays. The customer's wallet first, under the allowance they gave the store, when the
subscription says so (``wallet_first``, the default) or when there is no saved card; else, or
when the wallet refuses, the saved card pays the whole invoice. One invoice is paid by one
charge, never split between the wallet and the card: a refund, a receipt and the books name one
payment, and an allowance is not drained to leave a card charge of a few cents.

The card. Charged off-session (``payments.saved_methods.payment_charge_saved``: the sandbox's
test card, or Stripe's saved PaymentMethod) in the pattern memberships' renewals and campaigns'
pledges use: the claim (the invoice ``charging``, its ``attempts`` + 1) is committed with the
subscription's row lock held, then the card is charged outside any transaction with the key
``usage:<subscription>:<period start>:card:<attempt>``, then the outcome is recorded under the
lock again. A worker that finds the invoice still ``charging`` (a crash, or Stripe not decided
yet) replays the same key, so the card is charged once per attempt.

A card invoice below the card's minimum charge is not charged: it is carried, whole, to the next
period's invoice as a line of its own (a subscription that is ending has no next invoice, so its
last one stays unpaid and past due).

Dunning. A declined card makes the subscription ``past_due`` (``usage.payment_failed`` once) and
is tried again ``CARD_RETRY_DAYS`` (1, 3 and 7) days after the first failure, then every
``CARD_RETRY_EVERY`` while it stays past due; each try asks the wallet first again when allowed.
``POST /usage_subscriptions/{id}/retry`` tries at once, and so does saving a new card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext_noop

from stall.core.errors import StallError
from stall.payments.errors import PaymentProcessorUnavailable
from stall.payments.models import PaymentStatus
from stall.payments.rails import rail_get
from stall.payments.saved_methods import payment_charge_saved

from .late import late_usage_absorb, quantity_text
from .models import (
    InvoiceStatus,
    LineKind,
    UsageAdjustment,
    UsageInvoice,
    UsageInvoiceLine,
    UsageSubscription,
)
from .periods import failure_record, locked, period_roll, wallet_charge
from .rating import round_half_up
from .selectors import plan_usage_rate

CARD_RETRY_DAYS = (1, 3, 7)
CARD_RETRY_EVERY = timedelta(days=7)


def card_retry_at(*, since: datetime, retries: int) -> datetime:
    """When a declined card is tried again after ``retries`` failed retries since ``since``."""
    if retries < len(CARD_RETRY_DAYS):
        return since + timedelta(days=CARD_RETRY_DAYS[retries])
    return since + timedelta(days=CARD_RETRY_DAYS[-1]) + CARD_RETRY_EVERY * (retries - len(CARD_RETRY_DAYS) + 1)


def _invoice_make(sub: UsageSubscription, *, now: datetime) -> UsageInvoice:
    fixed, usage = plan_usage_rate(plan=sub.plan, customer_id=sub.customer_id, start=sub.period_start, end=sub.period_end)
    late_usage_absorb(sub=sub, now=now)
    lines = []
    if sub.plan.fixed_fee:
        lines.append(UsageInvoiceLine(kind=LineKind.FEE, description=sub.plan.name, quantity=1,
                                      exact=Decimal(sub.plan.fixed_fee), amount=sub.plan.fixed_fee))
    for u in usage:  # each line rounded once, half-up (rating)
        lines.append(UsageInvoiceLine(description=u.meter.name, meter_key=u.meter.key, quantity=u.quantity,
                                      exact=u.exact, amount=round_half_up(u.exact)))
    for a in UsageAdjustment.objects.filter(subscription=sub, billed_in=sub.period_start).order_by("pk"):
        lines.append(UsageInvoiceLine(kind=LineKind.ADJUSTMENT, description=a.meter_name, meter_key=a.meter_key,
                                      quantity=a.quantity, exact=a.exact, amount=round_half_up(a.exact),
                                      adjusts_period=a.period_start))
    carried = list(UsageInvoice.objects.filter(subscription=sub, status=InvoiceStatus.CARRIED, carried_into=None)
                   .order_by("pk"))
    for c in carried:
        lines.append(UsageInvoiceLine(kind=LineKind.CARRIED, description=sub.plan.name, quantity=1,
                                      exact=Decimal(c.amount), amount=c.amount, adjusts_period=c.period_start))
    total = sum(line.amount for line in lines)
    invoice = UsageInvoice.objects.create(
        subscription=sub, period_start=sub.period_start, period_end=sub.period_end, amount=total,
        currency=sub.plan.currency, status=InvoiceStatus.EMPTY if total <= 0 else InvoiceStatus.FAILED,
    )
    for line in lines:
        line.invoice = invoice
    UsageInvoiceLine.objects.bulk_create(lines)
    UsageInvoice.objects.filter(pk__in=[c.pk for c in carried]).update(carried_into=invoice)
    return invoice


def _quantities(invoice: UsageInvoice) -> dict[str, str]:
    """What the invoice billed the period for, per meter (its usage lines)."""
    return {line.meter_key: quantity_text(line.quantity) for line in invoice.lines.filter(kind=LineKind.USAGE)}


def _close(sub: UsageSubscription, invoice: UsageInvoice) -> bool:
    period_roll(sub, quantities=_quantities(invoice), rated_at=invoice.created_at)
    return True


def _card(sub: UsageSubscription):
    saved = sub.saved_method
    return saved if saved is not None and saved.detached_at is None else None


@dataclass(frozen=True)
class CardClaim:
    """An invoice claimed for a card charge, to make once the claim is committed."""

    subscription_id: str
    invoice_id: str
    attempt: int

    def finish(self, *, now: datetime) -> bool:
        return _card_charge(self, now=now)


def invoice_settle(sub: UsageSubscription, *, now: datetime) -> bool | CardClaim:
    """Pay the ended period of an arrears subscription (locked by the caller): True when it is
    paid and the period closed, False when it could not be paid, or the card to charge once the
    caller has committed."""
    invoice = UsageInvoice.objects.select_for_update().filter(subscription=sub, period_start=sub.period_start).first()
    if invoice is None:
        invoice = _invoice_make(sub, now=now)
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.EMPTY, InvoiceStatus.CARRIED):
        return _close(sub, invoice)
    if invoice.status == InvoiceStatus.CHARGING:  # left by a crash or not decided yet: the same charge again
        return CardClaim(subscription_id=sub.pk, invoice_id=invoice.pk, attempt=invoice.attempts)
    card = _card(sub)
    refusal = None
    if sub.wallet_first or card is None:
        charge_id, refusal = wallet_charge(sub, amount=invoice.amount, key=f"usage-invoice:{invoice.pk}",
                                           description=f"{sub.plan.name}: usage invoice")
        if charge_id is not None:
            invoice.status, invoice.charge_id, invoice.paid_with = InvoiceStatus.PAID, charge_id, "wallet"
            invoice.save(update_fields=["status", "charge_id", "paid_with"])
            return _close(sub, invoice)
    if card is None:
        failure_record(sub, code=refusal.code, message=refusal.message, amount=invoice.amount)
        return False
    if invoice.amount < rail_get(card.rail).minimum_charge(invoice.currency) and not sub.ending:
        invoice.status = InvoiceStatus.CARRIED
        invoice.save(update_fields=["status"])
        return _close(sub, invoice)
    invoice.status, invoice.attempts = InvoiceStatus.CHARGING, invoice.attempts + 1
    invoice.save(update_fields=["status", "attempts"])
    return CardClaim(subscription_id=sub.pk, invoice_id=invoice.pk, attempt=invoice.attempts)


def _card_charge(claim: CardClaim, *, now: datetime) -> bool:
    sub = UsageSubscription.objects.select_related("store", "plan", "saved_method").get(pk=claim.subscription_id)
    invoice = UsageInvoice.objects.get(pk=claim.invoice_id)
    card = _card(sub)
    failure: tuple[str, str] | None = None
    payment = None
    if card is None:
        failure = ("card_missing", gettext_noop("There is no saved card to charge."))
    else:
        try:
            payment = payment_charge_saved(
                store=sub.store, saved=card, amount=invoice.amount, currency=invoice.currency,
                description=f"{sub.plan.name}: usage invoice", idempotency_key=(
                    f"usage:{sub.pk}:{invoice.period_start.isoformat()}:card:{claim.attempt}"),
            )
        except PaymentProcessorUnavailable:
            return False  # still charging: the next run replays the same charge
        except StallError as error:  # refused before any charge: test cards off, below the minimum, ...
            failure = (error.code, error.message)
    if payment is not None:
        if payment.status == PaymentStatus.FAILED:
            failure = (payment.failure_code or "card_declined", payment.failure_message or "The card was declined.")
        elif payment.status != PaymentStatus.SUCCEEDED:
            return False  # processing, or the bank wants the customer: the next run asks again
    with transaction.atomic():
        sub = locked(claim.subscription_id)
        invoice = UsageInvoice.objects.select_for_update().get(pk=claim.invoice_id)
        if invoice.status != InvoiceStatus.CHARGING or invoice.attempts != claim.attempt:
            return False  # another worker recorded this attempt
        if failure is None:
            invoice.status, invoice.charge_id, invoice.paid_with = InvoiceStatus.PAID, payment.pk, "card"
            invoice.save(update_fields=["status", "charge_id", "paid_with"])
            return _close(sub, invoice)
        invoice.status = InvoiceStatus.FAILED
        invoice.save(update_fields=["status"])
        if sub.past_due_since is None:
            sub.past_due_since, sub.card_retries = now, 0
        else:
            sub.card_retries += 1
        sub.next_retry_at = card_retry_at(since=sub.past_due_since, retries=sub.card_retries)
        failure_record(sub, code=failure[0], message=failure[1], amount=invoice.amount,
                       fields=("past_due_since", "card_retries", "next_retry_at"))
    return False
