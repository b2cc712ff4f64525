"""Lightning through a real LNbits: a checkout and a wallet top-up paid from a second LNbits wallet,
invoices that stay open and expire, forged webhooks, and a creator's bad LNbits settings."""

import time

import pytest
from django.urls import reverse

from stall.checkout.models import CheckoutStatus
from stall.orders.models import Order
from stall.payments.errors import LightningAccountInvalid
from stall.payments.lightning_services import (
    lightning_account_set,
    lightning_checkout_start,
    lightning_open_payment,
    lightning_payment_cancel,
    lightning_payments_reconcile,
)
from stall.payments.models import LightningAccount, LightningInvoice, Payment, PaymentStatus
from stall.payments.services import checkout_payment_start
from stall.wallets.models import Wallet
from stall.wallets.tests.conftest import (
    alerts,
    assert_ledger_balanced,
    sign_in,
    store_balance,
    words,
)

from .conftest import BTC_PRICE, open_checkout

pytestmark = pytest.mark.django_db(transaction=True)


def _start(client, checkout):
    """The buyer presses "Pay with Lightning" on the hosted page; the invoice page it lands on."""
    response = client.post(reverse("checkout:lightning", args=[checkout.pk]), {"action": "start"})
    assert response.status_code == 302 and response["Location"] == reverse("checkout:lightning", args=[checkout.pk])
    return client.get(response["Location"])


def test_checkout_paid_from_another_lnbits_wallet_makes_the_order(client, lightning_store, lnbits):
    checkout = open_checkout(lightning_store, amount=300)
    assert "Pay with Lightning" in words(client.get(reverse("checkout:pay", args=[checkout.pk])))

    page = _start(client, checkout)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    invoice = LightningInvoice.objects.get(payment=payment)
    # $3.00 at LNbits' rate ($50,000 a bitcoin) is 6,000 sats; the invoice says so and is shown.
    assert (invoice.sats, invoice.rate) == (300 * 100_000_000 // BTC_PRICE // 100, 2000)
    html = page.content.decode()
    assert '<svg' in html and f'href="lightning:{invoice.bolt11}"' in html and invoice.bolt11 in html
    assert "6000 sats" in words(page)

    assert lnbits.pay(invoice.bolt11).status_code == 201
    status = client.get(reverse("payments:lightning_status", args=[payment.pk])).json()
    assert status == {"id": payment.pk, "status": "succeeded", "paid": True}

    checkout.refresh_from_db()
    payment.refresh_from_db()
    assert checkout.status == CheckoutStatus.COMPLETE and payment.fee == 0
    assert Order.objects.get(checkout=checkout).amount_total == 300
    assert store_balance(lightning_store) == 300  # no fee taken out
    # The store's LNbits wallet holds the sats.
    wallet = lnbits.http.get("/api/v1/wallet", headers={"X-Api-Key": lightning_store.lnbits["inkey"]}).json()
    assert wallet["balance"] == invoice.sats * 1000
    assert_ledger_balanced()


def test_the_check_button_finds_the_payment_without_script(client, lightning_store, lnbits):
    checkout = open_checkout(lightning_store, amount=150)
    _start(client, checkout)
    url = reverse("checkout:lightning", args=[checkout.pk])
    not_yet = client.post(url, {"action": "check"}, follow=True)
    assert "Not paid yet" in words(not_yet) and not Order.objects.filter(checkout=checkout).exists()

    lnbits.pay(lightning_open_payment(checkout_id=checkout.pk).lightning_invoice.bolt11)
    paid = client.post(url, {"action": "check"})
    assert paid["Location"] == reverse("checkout:complete", args=[checkout.pk])
    assert Order.objects.filter(checkout=checkout).count() == 1


def test_a_top_up_paid_by_lightning_lands_in_the_wallet(client, lightning_store, lnbits):
    from stall.accounts.services import buyer_for_email

    buyer = buyer_for_email(email="reader@example.com")
    sign_in(client, buyer)
    wallet_url = reverse("wallets:wallet") + f"?store={lightning_store.slug}"
    assert "Lightning" in words(client.get(wallet_url))
    response = client.post(wallet_url, {
        "action": "top_up", "currency": lightning_store.currency, "store": lightning_store.slug,
        "amount": "5.00", "payment_method": "lightning",
    })
    payment = Payment.objects.get(buyer=buyer, rail="lightning")
    assert response.status_code == 302 and response["Location"].startswith(reverse("wallets:lightning", args=[payment.pk]))
    page = client.get(response["Location"])
    assert payment.lightning_invoice.bolt11 in page.content.decode()

    assert lnbits.pay(payment.lightning_invoice.bolt11).status_code == 201
    done = client.post(response["Location"], {"action": "check"}, follow=True)
    assert "Added $5.00 to your wallet" in words(done)
    assert Wallet.objects.get(buyer=buyer, currency=lightning_store.currency).balance == 500
    payment.refresh_from_db()
    assert payment.fee == 0
    assert_ledger_balanced()


def test_an_unpaid_invoice_stays_open_then_expires(client, lightning_store, lnbits, settings):
    settings.STALL_LIGHTNING_INVOICE_EXPIRY_SECONDS = 2
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)

    assert lightning_payments_reconcile(older_than_seconds=0) == 0
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REQUIRES_ACTION

    while time.time() <= payment.lightning_invoice.expires_at.timestamp() + 0.5:
        time.sleep(0.2)
    assert lightning_payments_reconcile(older_than_seconds=0) == 1
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "expired")
    # The expired invoice cannot be paid any more; the checkout stays open for another try.
    # (LNbits answers 201 with the outgoing payment "failed": nothing moves.)
    assert lnbits.pay(payment.lightning_invoice.bolt11).json()["status"] == "failed"
    assert lightning_payments_reconcile(older_than_seconds=0) == 0
    checkout.refresh_from_db()
    assert checkout.status == CheckoutStatus.OPEN and not Order.objects.filter(checkout=checkout).exists()
    page = client.get(reverse("checkout:pay", args=[checkout.pk]))
    assert page.status_code == 200 and "Pay with Lightning" in words(page)


def test_a_forged_webhook_for_an_unpaid_invoice_changes_nothing(client, lightning_store, lnbits):
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    url = reverse("payments:lightning_webhook", args=[payment.pk])
    forged = {"payment_hash": payment.rail_reference, "status": "success", "paid": True, "amount": 6_000_000}

    response = client.post(url, forged, content_type="application/json")
    assert response.json()["paid"] is False
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REQUIRES_ACTION and not Order.objects.filter(checkout=checkout).exists()
    assert client.post(reverse("payments:lightning_webhook", args=["pay_nosuch"]), forged, content_type="application/json").status_code == 404

    # Once LNbits has it paid, the same call (LNbits' own) makes the order, once.
    lnbits.pay(payment.lightning_invoice.bolt11)
    assert client.post(url, b"", content_type="application/json").json()["paid"] is True
    assert client.post(url, b"", content_type="application/json").json()["paid"] is True
    assert Order.objects.filter(checkout=checkout).count() == 1


def test_an_invoice_paid_while_the_page_was_closed_is_found_by_the_reconciliation(lightning_store, lnbits):
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    lnbits.pay(payment.lightning_invoice.bolt11)
    assert lightning_payments_reconcile(older_than_seconds=3600) == 0  # not due yet
    assert lightning_payments_reconcile(older_than_seconds=0) == 1
    assert Order.objects.filter(checkout=checkout).count() == 1


def test_an_lnbits_that_refuses_the_webhook_address_still_makes_an_invoice(lightning_store, lnbits, settings):
    settings.BASE_URL = "http://127.0.0.1:9"  # LNbits' default rules refuse private addresses
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    details = lnbits.http.get(
        f"/api/v1/payments/{payment.rail_reference}", headers={"X-Api-Key": lightning_store.lnbits["inkey"]}
    ).json()["details"]
    assert details["webhook"] is None and payment.status == PaymentStatus.REQUIRES_ACTION


def test_the_invoice_keeps_its_key_when_the_store_changes_its_wallet(lightning_store, lnbits):
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    other = lnbits.wallet("another wallet")
    lightning_account_set(store=lightning_store, url=lnbits.url, invoice_key=other["inkey"])
    lnbits.pay(payment.lightning_invoice.bolt11)
    assert lightning_payments_reconcile(older_than_seconds=0) == 1
    assert Order.objects.filter(checkout=checkout).count() == 1


@pytest.mark.parametrize("case", ["wrong key", "admin key", "unreachable", "not lnbits", "private"])
def test_bad_lnbits_settings_are_refused_with_a_reason(store, lnbits, settings, closed_port_url, case):
    settings.STALL_LNBITS_ALLOW_PRIVATE = case != "private"
    wallet = lnbits.wallet("settings")
    url, key, reason = {
        "wrong key": (lnbits.url, "0" * 32, "LNbits did not accept this key."),
        "admin key": (lnbits.url, wallet["adminkey"], "This is the wallet's admin key"),
        "unreachable": (closed_port_url, wallet["inkey"], f"Stall could not reach LNbits at {closed_port_url}"),
        "not lnbits": (f"{lnbits.url}/static", wallet["inkey"], "did not answer like an LNbits server"),
        "private": (lnbits.url, wallet["inkey"], "An LNbits on a private address is not allowed"),
    }[case]
    with pytest.raises(LightningAccountInvalid) as refused:
        lightning_account_set(store=store, url=url, invoice_key=key)
    assert reason in refused.value.message
    assert not LightningAccount.objects.filter(store=store).exists()


def test_the_creator_connects_and_removes_lnbits_on_the_dashboard(client, store, lnbits, settings):
    settings.STALL_LNBITS_ALLOW_PRIVATE = True
    client.force_login(store.owner)
    url = reverse("dashboard:payments", args=[store.slug])
    wallet = lnbits.wallet("dashboard")
    refused = client.post(url, {"action": "lightning", "url": lnbits.url, "invoice_key": "nope"})
    assert refused.status_code == 400 and "LNbits did not accept this key." in words(refused)
    saved = client.post(url, {"action": "lightning", "url": lnbits.url, "invoice_key": wallet["inkey"]}, follow=True)
    assert "Lightning is connected" in words(saved) and "“dashboard”" in words(saved)
    assert LightningAccount.objects.get(store=store).invoice_key == wallet["inkey"]
    removed = client.post(reverse("dashboard:payments_remove_lightning", args=[store.slug]), follow=True)
    assert "no longer offers Lightning" in words(removed) and not LightningAccount.objects.filter(store=store).exists()
    assert alerts(removed) == []


def test_a_store_without_lnbits_offers_no_lightning(client, store):
    checkout = open_checkout(store)
    assert "Pay with Lightning" not in words(client.get(reverse("checkout:pay", args=[checkout.pk])))
    response = client.post(reverse("checkout:lightning", args=[checkout.pk]), {"action": "start"}, follow=True)
    assert "does not take Lightning payments" in words(response)
    assert not Payment.objects.filter(checkout=checkout).exists()


def test_the_invoice_pages_script_speaks_the_buyers_language(client, lightning_store, lnbits):
    """The words the page's script writes (copied, paid) come translated from the page."""
    checkout = open_checkout(lightning_store, amount=150)
    client.post(reverse("checkout:lightning", args=[checkout.pk]), {"action": "start"})
    html = client.get(reverse("checkout:lightning", args=[checkout.pk]), headers={"accept-language": "ko"}).content.decode()
    assert 'data-copied="복사했습니다"' in html and 'data-paid="결제되었습니다. 잠시만 기다려 주세요…"' in html


def test_an_invoice_paid_after_the_buyer_gave_it_up_still_makes_the_order(lightning_store, lnbits):
    """Lightning cannot withdraw an invoice: a buyer who chose "pay another way" can still pay it.
    The money is not kept without an order: reconciliation finds it and the checkout completes."""
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    assert lightning_payment_cancel(payment_id=payment.pk).status == PaymentStatus.CANCELED
    assert lightning_payments_reconcile(older_than_seconds=0) == 0  # given up, not paid: nothing
    lnbits.pay(payment.lightning_invoice.bolt11)
    assert lightning_payments_reconcile(older_than_seconds=0) == 1
    payment.refresh_from_db()
    checkout.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and checkout.status == CheckoutStatus.COMPLETE
    assert Order.objects.filter(checkout=checkout).count() == 1
    assert store_balance(lightning_store) == checkout.amount_total
    assert lightning_payments_reconcile(older_than_seconds=0) == 0  # decided once
    assert_ledger_balanced()


def test_an_invoice_paid_after_the_checkout_was_paid_another_way_is_marked_for_the_creator(lightning_store, lnbits):
    """Given up, the checkout paid by card, then the invoice paid too: the buyer paid twice. Stall
    cannot refund over Lightning, so the payment says so for the creator, and no second order or
    money is made up."""
    checkout = open_checkout(lightning_store)
    lightning_checkout_start(checkout_id=checkout.pk)
    payment = lightning_open_payment(checkout_id=checkout.pk)
    lightning_payment_cancel(payment_id=payment.pk)
    checkout_payment_start(checkout_id=checkout.pk, payment_method="sandbox_visa")
    lnbits.pay(payment.lightning_invoice.bolt11)
    assert lightning_payments_reconcile(older_than_seconds=0) == 1
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.CANCELED, "paid_after_cancel")
    assert "pay the buyer back" in payment.failure_message
    (order,) = Order.objects.filter(checkout=checkout)
    assert store_balance(lightning_store) == order.amount_total - order.fee  # the card sale's, nothing more
    assert_ledger_balanced()
