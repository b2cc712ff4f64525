"""Arrears invoices charged to a card saved on Stripe (the store's own account, on localstripe):
one PaymentIntent off-session per attempt, a decline handled as on the sandbox."""

import pytest

from stall.metering.billing import periods_close
from stall.metering.models import InvoiceStatus, UsageInvoice
from stall.metering.services import plan_create
from stall.payments.models import OffSessionCharge, Payment, PaymentStatus
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    DECLINED_ON_CHARGE,
    VISA,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)

from .conftest import send
from .test_invoicing import DAY, period_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(stripe_store, calls):
    return plan_create(store=stripe_store, name="API", prices=[{"meter": "api_calls", "unit_price": "2"}])


def _intents_for(localstripe_client, payment_id):
    intents = localstripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return [i for i in intents if i.metadata.to_dict().get("stall_payment") == payment_id]


def test_a_stripe_card_saved_through_the_api_pays_the_invoice_off_session_once(
    api, stripe_store, customer, plan, card, localstripe_client
):
    made = api.post("/usage_subscriptions", {"customer": customer.pk, "plan": plan.pk, "billing": "arrears",
                                             "payment_method": card(VISA), "wallet_first": False})
    assert made.status_code == 200, made.json()
    from stall.metering.models import UsageSubscription

    sub = period_set(UsageSubscription.objects.get(pk=made.json()["id"]), days_ago=10)
    assert sub.saved_method.rail == "stripe" and sub.saved_method.customer_ref.startswith("cus_")
    send(stripe_store, customer, n=40, minutes_ago=DAY)
    assert periods_close() == 1
    assert periods_close() == 0
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (invoice.status, invoice.paid_with, invoice.amount) == (InvoiceStatus.PAID, "card", 80)
    payment = Payment.objects.get(pk=invoice.charge_id)
    assert (payment.rail, payment.status) == ("stripe", PaymentStatus.SUCCEEDED)
    intents = _intents_for(localstripe_client, payment.pk)
    assert [(i.amount, i.status, i.customer, i.payment_method) for i in intents] == [
        (80, "succeeded", sub.saved_method.customer_ref, sub.saved_method.method_ref)]


def test_a_stripe_card_declined_off_session_leaves_the_subscription_past_due(
    api, stripe_store, customer, plan, card, localstripe_client
):
    made = api.post("/usage_subscriptions", {"customer": customer.pk, "plan": plan.pk, "billing": "arrears",
                                             "payment_method": card(DECLINED_ON_CHARGE)}).json()
    from stall.metering.models import UsageSubscription

    sub = period_set(UsageSubscription.objects.get(pk=made["id"]), days_ago=10)
    send(stripe_store, customer, n=40, minutes_ago=DAY)  # no allowance: the wallet refuses, the card is tried
    assert periods_close() == 0
    sub.refresh_from_db()
    invoice = UsageInvoice.objects.get(subscription=sub)
    assert (sub.status, invoice.status, invoice.attempts) == ("past_due", InvoiceStatus.FAILED, 1)
    assert sub.next_retry_at is not None
    payment = OffSessionCharge.objects.get().payment
    assert payment.status == PaymentStatus.FAILED and payment.failure_code
    retried = api.post(f"/usage_subscriptions/{sub.pk}/payment_method", {"payment_method": card(VISA)}).json()
    assert retried["status"] == "active" and retried["next_retry_at"] is None
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempts, invoice.paid_with) == (InvoiceStatus.PAID, 2, "card")
