"""Discount codes paid through the real peers (issue #11): a discounted checkout paid by card
through localstripe and by Lightning through LNbits. The processor is asked for exactly the
discounted total, and the code's use is counted once however often the payment's news arrives."""

import pytest
from django.urls import reverse

from stall.checkout.discounts import discount_create
from stall.checkout.models import CheckoutStatus, Discount
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Transfer
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.lightning_services import lightning_open_payment, lightning_payments_reconcile
from stall.payments.models import LightningInvoice, Payment, PaymentStatus
from stall.payments.stripe_services import stripe_payment_refresh
from stall.testing import product_with_file
from stall.wallets.tests.conftest import assert_ledger_balanced, store_balance

from .conftest import BTC_PRICE, VISA, intent_event, signed_delivery


def _discounted_checkout(store, *, amount=1250, code="FRIENDS"):
    """A $12.50 product with a 20% code (a $10.00 total); the checkout and the code."""
    product = product_with_file(store=store, name="Field guide", amount=amount)
    discount = discount_create(store=store, code=code, kind="percent", percent_off=20, max_uses=5)
    checkout = checkout_create(
        store=store, email="fan@example.com", items=[CheckoutItem(product_id=product.pk)], discount_code=code,
    )
    assert (checkout.amount_subtotal, checkout.amount_total) == (amount, 1000)
    return checkout, discount


@pytest.mark.django_db
def test_a_discounted_checkout_paid_by_stripe_card_charges_the_discounted_total_once(
    stripe_store, card, client, localstripe_client,
):
    """Paid with a card through localstripe: the PaymentIntent is for $10.00, not $12.50; the
    order, the sale and the code's count follow. The success arriving again (the webhook, the
    browser coming back) counts the code no second time."""
    checkout, discount = _discounted_checkout(stripe_store)

    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=card(VISA))

    payment = Payment.objects.get(checkout=checkout)
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 1000, "usd")
    assert (checkout.status, payment.amount, payment.status) == (CheckoutStatus.COMPLETE, 1000, PaymentStatus.SUCCEEDED)
    order = Order.objects.get(checkout=checkout)
    assert (order.amount_total, sum(line.amount_discount for line in order.lines.all())) == (1000, 250)
    assert Transfer.objects.get(code="sale", reference=order.pk).amount == 1000
    discount.refresh_from_db()
    assert discount.times_used == 1

    body, header = signed_delivery(intent_event("evt_discounted_paid", "payment_intent.succeeded", intent))
    webhook = client.post(
        f"/webhooks/stripe/{stripe_store.pk}", data=body, content_type="application/json", headers={"Stripe-Signature": header},
    )
    stripe_payment_refresh(payment_id=payment.pk)

    assert webhook.status_code == 200
    assert Discount.objects.get(pk=discount.pk).times_used == 1
    assert Order.objects.filter(checkout=checkout).count() == 1
    assert store_balance(stripe_store) == 1000 - payment.fee
    assert_ledger_balanced()


@pytest.mark.django_db(transaction=True)
def test_a_discounted_checkout_paid_by_lightning_invoices_the_discounted_total_once(client, lightning_store, lnbits):
    """Paid from another LNbits wallet: the invoice is for $10.00 in sats (20,000 at $50,000 a
    bitcoin), not $12.50; the order and the code's count follow, and the status asked again and
    the reconciliation count the code no second time."""
    checkout, discount = _discounted_checkout(lightning_store)

    started = client.post(reverse("checkout:lightning", args=[checkout.pk]), {"action": "start"})
    assert started.status_code == 302
    payment = lightning_open_payment(checkout_id=checkout.pk)
    invoice = LightningInvoice.objects.get(payment=payment)
    assert (payment.amount, invoice.sats) == (1000, 1000 * 100_000_000 // BTC_PRICE // 100)
    assert lnbits.pay(invoice.bolt11).status_code == 201

    for _ in range(2):
        status = client.get(reverse("payments:lightning_status", args=[payment.pk])).json()
        assert status == {"id": payment.pk, "status": "succeeded", "paid": True}
    lightning_payments_reconcile(older_than_seconds=0)

    checkout.refresh_from_db()
    order = Order.objects.get(checkout=checkout)
    assert (checkout.status, order.amount_total) == (CheckoutStatus.COMPLETE, 1000)
    assert Transfer.objects.get(code="sale", reference=order.pk).amount == 1000
    assert Discount.objects.get(pk=discount.pk).times_used == 1
    assert store_balance(lightning_store) == 1000
    wallet = lnbits.http.get("/api/v1/wallet", headers={"X-Api-Key": lightning_store.lnbits["inkey"]}).json()
    assert wallet["balance"] == invoice.sats * 1000
    assert_ledger_balanced()
