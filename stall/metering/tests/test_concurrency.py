"""Senders racing on real connections (one per thread): overlapping batches count each id once,
and live billing of one subscription from several workers charges each cent once."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.ledger.tests.test_concurrency import in_threads
from stall.metering.billing import subscription_bill_live
from stall.metering.ingest import events_ingest
from stall.metering.models import UsageCharge, UsageEvent
from stall.metering.services import meter_create, plan_create, usage_subscription_create
from stall.orders.services import customer_for_email
from stall.wallets.allowances import allowance_grant
from stall.wallets.models import Charge
from stall.wallets.services import wallet_top_up

from .conftest import stamp

pytestmark = pytest.mark.django_db(transaction=True)

SENDERS = 4


def test_concurrent_overlapping_batches_count_each_id_once(store):
    meter_create(store=store, key="api_calls", name="Calls", event_name="api.call")
    customer = customer_for_email(store_id=store.pk, email="race@example.com")
    when = stamp()

    def batch(i):
        # Sender i sends ids i*50 … i*50+149: each id is in up to three senders' batches.
        events = [{"id": f"e{n}", "customer": customer.pk, "name": "api.call", "timestamp": when}
                  for n in range(i * 50, i * 50 + 150)]
        return events_ingest(store=store, events=events)

    results, errors = in_threads(SENDERS, batch)
    assert errors == [None] * SENDERS
    distinct = (SENDERS - 1) * 50 + 150
    assert UsageEvent.objects.filter(store=store).count() == distinct
    assert sum(r.accepted for r in results) == distinct  # each id accepted by exactly one sender
    assert sum(r.duplicates for r in results) == SENDERS * 150 - distinct


def test_workers_billing_one_subscription_at_once_charge_once(store):
    meter_create(store=store, key="api_calls", name="Calls", event_name="api.call")
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "0.2"}])
    buyer = buyer_for_email(email="w@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    allowance_grant(buyer=buyer, store=store, amount=1000, period="month")
    customer = customer_for_email(store_id=store.pk, email=buyer.email)
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, threshold=10)
    events_ingest(store=store, events=[
        {"id": f"e{n}", "customer": customer.pk, "name": "api.call", "timestamp": stamp(0)} for n in range(60)
    ])  # 12¢: already charged once by the task queued after the commit
    UsageCharge.objects.all().delete()  # forget it, as if the task had not run yet
    type(sub).objects.filter(pk=sub.pk).update(charged=0, charges_made=0)
    Charge.objects.all().update(idempotency_key=None)  # and let the charge be made again

    results, errors = in_threads(SENDERS, lambda i: subscription_bill_live(subscription_id=sub.pk))
    assert errors == [None] * SENDERS
    assert sum(r is not None for r in results) == 1
    assert UsageCharge.objects.get(subscription=sub).amount == 12


def test_workers_closing_one_card_invoice_at_once_charge_the_card_once(store):
    """Four workers close the same ended arrears period paid by card: one invoice, one claim,
    one off-session charge; the others find it claimed or paid."""
    from datetime import timedelta

    from django.utils import timezone

    from stall.metering.billing import subscription_period_close
    from stall.metering.models import InvoiceStatus, UsageInvoice, UsageSubscription
    from stall.payments.models import OffSessionCharge, PaymentStatus

    meter_create(store=store, key="api_calls", name="Calls", event_name="api.call")
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "2"}])
    customer = customer_for_email(store_id=store.pk, email="card@example.com")
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears",
                                    payment_method="sandbox_visa", wallet_first=False)
    now = timezone.now()
    UsageSubscription.objects.filter(pk=sub.pk).update(period_start=now - timedelta(days=3), period_end=now)
    events_ingest(store=store, events=[
        {"id": f"e{n}", "customer": customer.pk, "name": "api.call", "timestamp": stamp(60)} for n in range(40)
    ])
    later = now + timedelta(seconds=1)

    results, errors = in_threads(SENDERS, lambda i: subscription_period_close(subscription_id=sub.pk, now=later))
    assert errors == [None] * SENDERS
    assert sum(results) == 1
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (invoice.status, invoice.attempts, invoice.amount) == (InvoiceStatus.PAID, 1, 80)
    charges = OffSessionCharge.objects.filter(store=store)
    assert [c.payment.status for c in charges] == [PaymentStatus.SUCCEEDED]
