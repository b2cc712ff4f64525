"""Payments a crash left processing: finished by the periodic reconciliation, or resumed by the
buyer's next confirm (issue #7, "A crash can wedge a checkout").

A crash between the transaction that reserves a payment and the one that records the rail's
answer leaves the payment ``processing`` with no order. ``crashed_payment`` makes that state with
the very reserving step ``checkout_payment_start`` runs, then ages it as the clock would.
"""

import dataclasses
import datetime

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import CheckoutItem, checkout_create, checkout_lock_open
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.errors import PaymentProcessorUnavailable
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus, StripeAccount
from stall.payments.rails import RailResult, SandboxRail, rail_get
from stall.payments.rails.wallet import fee_pool_for, wallet_for
from stall.payments.services import (
    _checkout_payment_reserve,
    payments_reconcile,
    payments_reconcile_due,
)
from stall.payments.tasks import payments_reconcile_task
from stall.wallets.models import AutoTopUp
from stall.wallets.services import wallet_auto_top_up_set, wallet_top_up

from .conftest import VISA
from .conftest import open_checkout as stripe_checkout

pytestmark = pytest.mark.django_db

FEE_300 = 39  # 2.9% of $3.00 rounded half up (9¢) + 30¢


def open_checkout(store, product) -> Checkout:
    return checkout_create(
        store=store, email="buyer@example.com", items=[CheckoutItem(product_id=product.pk)]
    )


def age(payment: Payment, seconds: int) -> None:
    Payment.objects.filter(pk=payment.pk).update(
        updated_at=timezone.now() - datetime.timedelta(seconds=seconds)
    )


def crashed_payment(checkout: Checkout, method: str, seconds_ago: int = 180) -> Payment:
    """The payment a crash leaves behind: reserved and committed, the rail's answer never
    recorded."""
    with transaction.atomic():
        payment = _checkout_payment_reserve(
            checkout=checkout_lock_open(checkout_id=checkout.pk), payment_method=method
        )
    age(payment, seconds_ago)
    return payment


def assert_ledger_balanced() -> None:
    """Every account equals the sum of its transfers, and debits equal credits."""
    accounts = list(Account.objects.all())
    for account in accounts:
        assert account_sums_from_transfers(account=account) == {
            "debits_posted": account.debits_posted,
            "credits_posted": account.credits_posted,
            "debits_pending": account.debits_pending,
            "credits_pending": account.credits_pending,
        }
    assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)


def store_balance(store) -> int:
    return Account.objects.get(
        kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD"
    ).balance


# --- the sandbox rail answers what it answered ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("sandbox_visa", RailResult("succeeded", reference="sbx_{id}", fee=FEE_300)),
        ("sandbox_3ds", RailResult("requires_action", reference="sbx_{id}")),
        (
            "sandbox_declined",
            RailResult(
                "failed",
                "sbx_{id}",
                failure_code="card_declined",
                failure_message="Your card was declined.",
            ),
        ),
        (
            "sandbox_insufficient_funds",
            RailResult(
                "failed",
                "sbx_{id}",
                failure_code="insufficient_funds",
                failure_message="Your card has insufficient funds.",
            ),
        ),
    ],
)
def test_the_sandbox_retrieves_what_it_would_have_answered(store, product, method, expected):
    """payment_retrieve answers from the test card, the same as payment_start, each time it is
    asked, and records nothing."""
    payment = crashed_payment(open_checkout(store, product), method)
    want = dataclasses.replace(expected, reference=f"sbx_{payment.pk.removeprefix('pay_')}")

    assert SandboxRail().payment_retrieve(payment_id=payment.pk) == want
    assert SandboxRail().payment_retrieve(payment_id=payment.pk) == want
    assert (
        Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING
    )  # asking records nothing


def test_the_in_ledger_rails_have_nothing_to_retrieve():
    """The wallet and the tab pay in one transaction, so no payment of theirs is ever left
    processing: there is nothing to ask them."""
    for name in ("wallet", "tab"):
        with pytest.raises(
            RuntimeError, match=f"^the {name} rail never leaves a payment processing"
        ):
            rail_get(name).payment_retrieve(payment_id="pay_1")


# --- reconciliation -----------------------------------------------------------------------------


def test_reconciliation_finishes_a_checkout_a_crash_left_processing_once(
    store, product, django_capture_on_commit_callbacks
):
    """A sandbox_visa payment left processing for three minutes is asked about and succeeds: the
    checkout completes with one order, one receipt and the sale in the ledger. Running the
    reconciliation again changes nothing."""
    checkout = open_checkout(store, product)
    payment = crashed_payment(checkout, "sandbox_visa")

    with django_capture_on_commit_callbacks(execute=True):
        assert payments_reconcile() == 1

    payment.refresh_from_db()
    assert (payment.status, payment.fee, payment.rail_reference) == (
        PaymentStatus.SUCCEEDED,
        FEE_300,
        f"sbx_{payment.pk.removeprefix('pay_')}",
    )
    order = Order.objects.get(checkout=checkout)
    assert (order.payment_id, order.amount_total, order.fee, order.status) == (
        payment.pk,
        300,
        FEE_300,
        "paid",
    )
    assert Checkout.objects.get(pk=checkout.pk).status == CheckoutStatus.COMPLETE
    assert [m.subject for m in mail.outbox] == [f"Your receipt from {store.name}"]
    assert store_balance(store) == 300 - FEE_300
    transfers = sorted(Transfer.objects.values_list("code", "amount"))
    assert transfers == [("processor_fee", FEE_300), ("sale", 300)]

    with django_capture_on_commit_callbacks(execute=True):
        assert payments_reconcile(older_than_seconds=0) == 0

    assert Order.objects.filter(checkout=checkout).count() == 1
    assert len(mail.outbox) == 1
    assert sorted(Transfer.objects.values_list("code", "amount")) == transfers
    assert_ledger_balanced()


def test_reconciliation_leaves_payments_younger_than_its_threshold(store, product, settings):
    """A payment processing for less than STALL_PAYMENT_RECONCILE_AFTER_SECONDS may still be with
    its rail; it is left alone until it is older."""
    settings.STALL_PAYMENT_RECONCILE_AFTER_SECONDS = 120
    payment = crashed_payment(open_checkout(store, product), "sandbox_visa", seconds_ago=60)

    assert payments_reconcile() == 0
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING

    age(payment, 121)
    assert payments_reconcile() == 1
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("method", "status", "code", "message"),
    [
        ("sandbox_declined", PaymentStatus.FAILED, "card_declined", "Your card was declined."),
        (
            "sandbox_insufficient_funds",
            PaymentStatus.FAILED,
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        ("sandbox_3ds", PaymentStatus.REQUIRES_ACTION, "", ""),
    ],
)
def test_reconciliation_records_a_decline_or_a_bank_check(
    store, product, method, status, code, message
):
    """A declined card's payment fails with its reason on the checkout, which stays open for another
    try; a 3-D Secure card's waits for the buyer. No order, no money moved."""
    checkout = open_checkout(store, product)
    payment = crashed_payment(checkout, method)

    assert payments_reconcile() == 1

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_message) == (
        status,
        code,
        message,
    )
    checkout.refresh_from_db()
    assert (checkout.status, checkout.last_error_code, checkout.last_error_message) == (
        "open",
        code,
        message,
    )
    assert not Order.objects.exists()
    assert not Transfer.objects.exists()


def test_reconciliation_leaves_stripe_to_its_own_task(store, product):
    """Stripe's payments are reconciled by stripe_payments_reconcile (its own threshold, refunds,
    late successes): this reconciliation does not ask Stripe about them."""
    checkout = open_checkout(store, product)
    payment = Payment.objects.create(
        store=store,
        checkout=checkout,
        rail="stripe",
        payment_method="pm_card_visa",
        amount=300,
        currency="USD",
    )
    age(payment, 3600)

    assert payments_reconcile() == 0
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PROCESSING


def _stalled_top_up(buyer, payment_method: str, amount: int, *, age_seconds: int = 180) -> Payment:
    """A card top-up a crash left processing, ``age_seconds`` old (0: the caller ages it)."""
    payment = Payment.objects.create(
        purpose=PaymentPurpose.TOP_UP, buyer=buyer, rail="sandbox", payment_method=payment_method,
        amount=amount, currency="USD",
    )
    if age_seconds:
        age(payment, age_seconds)
    return payment


def test_reconciliation_fills_a_wallet_whose_top_up_was_interrupted():
    """A card top-up a crash left processing is finished like a checkout's: the wallet gets the
    $10.00 and its fee pool the 59¢ fee, once."""
    buyer = buyer_for_email(email="reader@example.com")
    wallet = wallet_for(buyer=buyer, currency="USD")
    payment = _stalled_top_up(buyer, "sandbox_visa", 1000)

    assert payments_reconcile() == 1
    assert payments_reconcile(older_than_seconds=0) == 0

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert Account.objects.get(pk=wallet.account_id).balance == 1000
    assert fee_pool_for(wallet).balance == 59
    assert Transfer.objects.filter(code="top_up").count() == 1
    assert_ledger_balanced()


def test_an_interrupted_automatic_top_up_with_a_3ds_card_fails_as_it_would_have():
    """An automatic top-up charges a saved card with the buyer away; a saved sandbox_3ds card
    would have failed with authentication_required, so the reconciled payment fails that way
    (not left waiting for a buyer who is not there) and auto top-up pauses."""
    buyer = buyer_for_email(email="reader@example.com")
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet = wallet_auto_top_up_set(
        wallet=wallet, payment_method="sandbox_3ds", below=100, amount=500
    )
    payment = _stalled_top_up(buyer, "sandbox_3ds", 500, age_seconds=0)
    AutoTopUp.objects.create(wallet=wallet, trigger="in:0:crashed", payment=payment)
    age(payment, 180)

    assert payments_reconcile() == 1

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "authentication_required")
    wallet.refresh_from_db()
    assert (
        wallet.auto_top_up_failure == "The card's bank asks the cardholder to confirm this payment."
    )


def test_a_hand_made_3ds_top_up_interrupted_waits_for_the_buyer():
    """A top-up the buyer started with sandbox_3ds (no saved card) is left waiting for their
    bank check."""
    buyer = buyer_for_email(email="reader@example.com")
    payment = _stalled_top_up(buyer, "sandbox_3ds", 1000)

    assert payments_reconcile() == 1
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.REQUIRES_ACTION


def test_the_reconciliation_task_runs_every_two_minutes(store, product):
    """The periodic task is scheduled at every even minute and finishes what is due."""
    payment = crashed_payment(open_checkout(store, product), "sandbox_visa")
    schedule = payments_reconcile_task.task_class().validate_datetime
    assert [schedule(datetime.datetime(2030, 1, 1, 9, m)) for m in (0, 1, 2, 59)] == [
        True,
        False,
        True,
        False,
    ]

    assert payments_reconcile_task.call_local() == 1

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


# --- the buyer's next confirm resumes -----------------------------------------------------------


def test_confirming_again_completes_a_checkout_whose_payment_a_crash_left_processing(
    store, product, django_capture_on_commit_callbacks
):
    """The stalled sandbox_visa payment is asked about and succeeds: the confirm returns the
    checkout complete with its order, charged once (no second payment), one receipt."""
    checkout = open_checkout(store, product)
    payment = crashed_payment(checkout, "sandbox_visa", seconds_ago=10)

    with django_capture_on_commit_callbacks(execute=True):
        result = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    with django_capture_on_commit_callbacks(execute=True):
        again = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")

    assert (result.status, again.status) == (CheckoutStatus.COMPLETE, CheckoutStatus.COMPLETE)
    assert list(Payment.objects.values_list("pk", "status")) == [(payment.pk, "succeeded")]
    assert Order.objects.get(checkout=checkout).payment_id == payment.pk
    assert len(mail.outbox) == 1
    assert store_balance(store) == 300 - FEE_300
    assert_ledger_balanced()


def test_a_confirm_resumes_a_stripe_payment_that_never_heard_back(
    stripe_store, card, closed_port_url, settings, localstripe_client
):
    """A pm_… confirm that could not reach Stripe leaves its payment processing with no intent on
    record. Once Stripe answers, confirming again sends the create again under the same
    idempotency key: the checkout completes with that one payment, its intent succeeded."""
    visa = card(VISA)
    checkout = stripe_checkout(stripe_store)
    localstripe_base = StripeAccount.objects.get(store=stripe_store).api_base
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    StripeAccount.objects.filter(store=stripe_store).update(api_base=closed_port_url)
    with pytest.raises(PaymentProcessorUnavailable):
        checkout_confirm(checkout_id=checkout.pk, payment_method=visa)
    payment = Payment.objects.get(checkout=checkout)
    assert (payment.status, payment.rail_reference) == (PaymentStatus.PROCESSING, "")

    StripeAccount.objects.filter(store=stripe_store).update(api_base=localstripe_base)
    age(payment, 10)
    result = checkout_confirm(checkout_id=checkout.pk, payment_method=visa)

    assert result.status == CheckoutStatus.COMPLETE
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert list(Payment.objects.filter(checkout=checkout).values_list("pk", flat=True)) == [
        payment.pk
    ]
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["status"], intent["amount"], intent["metadata"]["stall_payment"]) == (
        "succeeded",
        300,
        payment.pk,
    )
    assert Order.objects.get(checkout=checkout).payment_id == payment.pk


def test_a_payment_still_with_its_rail_is_not_resumed(store, product, settings):
    """A payment processing for less than STALL_PAYMENT_RESUME_AFTER_SECONDS may be a double click's
    first request, still talking to the rail: the confirm returns the checkout as it is."""
    settings.STALL_PAYMENT_RESUME_AFTER_SECONDS = 5
    checkout = open_checkout(store, product)
    payment = crashed_payment(checkout, "sandbox_visa", seconds_ago=1)

    result = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")

    assert result.status == CheckoutStatus.OPEN
    assert list(Payment.objects.values_list("pk", "status")) == [(payment.pk, "processing")]
    assert not Order.objects.exists()


def test_a_stalled_payment_that_failed_lets_the_buyer_pay_with_another_card(store, product):
    """The stalled payment was a declined card: it is recorded as failed and this confirm charges
    the card now chosen, completing the checkout."""
    checkout = open_checkout(store, product)
    stalled = crashed_payment(checkout, "sandbox_declined", seconds_ago=10)

    result = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")

    assert result.status == CheckoutStatus.COMPLETE
    payments = list(
        Payment.objects.order_by("created_at").values_list(
            "pk", "payment_method", "status", "failure_code"
        )
    )
    assert payments[0] == (stalled.pk, "sandbox_declined", "failed", "card_declined")
    assert payments[1][1:] == ("sandbox_visa", "succeeded", "")
    assert len(payments) == 2
    assert Order.objects.get(checkout=checkout).payment_id == payments[1][0]


def test_paying_from_the_wallet_keeps_a_stalled_card_payment_that_went_through(store, product):
    """The buyer turns to their wallet while a sandbox_visa payment sits processing: the card
    payment stands (the sandbox took it), completes the checkout, and the wallet is not
    charged."""
    buyer = buyer_for_email(email="buyer@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    checkout = open_checkout(store, product)
    stalled = crashed_payment(checkout, "sandbox_visa", seconds_ago=10)

    result = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=buyer)

    assert result.status == CheckoutStatus.COMPLETE
    assert list(Payment.objects.filter(checkout=checkout).values_list("pk", "status")) == [
        (stalled.pk, "succeeded")
    ]
    assert wallet_for(buyer=buyer, currency="USD").balance == 1000


def test_the_api_confirm_answers_the_completed_checkout_instead_of_open_forever(
    api, store, product
):
    """POST /checkouts/{id}/confirm on a checkout a crash left with a processing payment answers
    200 complete with its order — with a new Idempotency-Key or none — and charges once."""
    checkout = open_checkout(store, product)
    payment = crashed_payment(checkout, "sandbox_visa", seconds_ago=10)

    first = api.post(
        f"/checkouts/{checkout.pk}/confirm",
        {"payment_method": "sandbox_visa"},
        idempotency_key="k-2",
    )
    second = api.post(f"/checkouts/{checkout.pk}/confirm", {"payment_method": "sandbox_visa"})

    order = Order.objects.get(checkout=checkout)
    for response in (first, second):
        assert response.status_code == 200, response.content
        body = response.json()
        assert (
            body["status"],
            body["order"],
            body["payment"]["id"],
            body["payment"]["status"],
        ) == ("complete", order.pk, payment.pk, "succeeded")
    assert Payment.objects.count() == 1


def test_the_pay_page_completes_a_stalled_payment_and_says_when_one_is_still_processing(
    client, store, product
):
    """On the hosted page, Pay on a checkout with a stalled payment shows the completed purchase. A
    payment still with its rail is named on the page (no silent re-render), and Pay leaves it be."""
    stalled = open_checkout(store, product)
    crashed_payment(stalled, "sandbox_visa", seconds_ago=10)

    response = client.post(f"/checkout/{stalled.pk}/", {"payment_method": "sandbox_visa"})

    assert (response.status_code, response.url) == (302, f"/checkout/{stalled.pk}/complete/")
    assert Checkout.objects.get(pk=stalled.pk).status == CheckoutStatus.COMPLETE

    busy = open_checkout(store, product)
    crashed_payment(busy, "sandbox_visa", seconds_ago=0)
    notice = (
        "Your payment is being processed. Press Pay again in a few seconds to see how it went; "
        "you will not be charged twice."
    )

    page = client.get(f"/checkout/{busy.pk}/")
    assert notice in page.content.decode()
    response = client.post(f"/checkout/{busy.pk}/", {"payment_method": "sandbox_visa"})
    assert (response.status_code, response.url) == (302, f"/checkout/{busy.pk}/")
    assert notice in client.get(response.url).content.decode()
    assert Payment.objects.get(checkout=busy).status == PaymentStatus.PROCESSING

    fresh = open_checkout(store, product)
    assert notice not in client.get(f"/checkout/{fresh.pk}/").content.decode()


def test_the_reconciliation_scan_is_served_by_the_partial_index(db):
    """The reconciliation's query can use payments_processing_by_updated, which holds only the
    payments still processing: its scan does not grow with every spend's succeeded payment. (On
    PostgreSQL, sequential scans are turned off for the EXPLAIN, as a near-empty table would
    otherwise be read whole: what is checked is that the index's condition fits the query.)"""
    due = payments_reconcile_due(cutoff=timezone.now())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
        plan = due.explain()
    assert "payments_processing_by_updated" in plan, plan
