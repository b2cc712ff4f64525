"""Paying for checkouts on the sandbox rail, the money that moves, refunds and receipts."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from stall.catalog.models import PriceType
from stall.checkout.errors import AmountTooSmall, CheckoutExpired, CheckoutInvalid
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.money import InvalidAmount
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.errors import OrderNotFound
from stall.orders.models import Entitlement, Order
from stall.orders.refunds import refund_create
from stall.payments.errors import (
    PaymentDeclined,
    PaymentNotAwaitingAction,
    PaymentNotFound,
    RefundInvalid,
)
from stall.payments.models import Payment, Refund
from stall.payments.rails import UnknownPaymentMethod
from stall.payments.services import checkouts_expire_due, payment_confirm_action, payment_succeed
from stall.testing import ProductFactory, StoreFactory, buy, product_with_file

pytestmark = pytest.mark.django_db

# 2.9% of $3.00 is 8.7¢, rounded half up to 9¢, plus the 30¢ fixed fee.
FEE_300 = 39


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def balance_of(kind: str, owner: str, currency: str = "USD") -> int:
    account = Account.objects.filter(kind=kind, owner=owner, currency=currency).first()
    return account.balance if account else 0


def ledger_of(store) -> dict[str, int]:
    """What the ledger says: the store's balance, the processor's clearing and fees, the platform's fees."""
    return {
        "store": balance_of(AccountKind.STORE_BALANCE, store.pk),
        "clearing": balance_of(AccountKind.PROCESSOR_CLEARING, "sandbox"),
        "processor_fees": balance_of(AccountKind.PROCESSOR_FEES, "sandbox"),
        "platform_fees": balance_of(AccountKind.PLATFORM_FEES, "platform"),
    }


NO_MONEY = {"store": 0, "clearing": 0, "processor_fees": 0, "platform_fees": 0}


def assert_ledger_consistent():
    """Every account equals the sum of its transfers, and debits equal credits."""
    accounts = list(Account.objects.all())
    for account in accounts:
        assert account_sums_from_transfers(account=account) == {
            "debits_posted": account.debits_posted, "credits_posted": account.credits_posted,
            "debits_pending": account.debits_pending, "credits_pending": account.credits_pending,
        }
    assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)


def open_checkout(store, product, amount=None, email="buyer@example.com") -> Checkout:
    return checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk, amount=amount)])


@pytest.fixture
def pwyw(store):
    return ProductFactory(store=store, name="Tip", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=0)


# --- paying -----------------------------------------------------------------------------------


def test_card_payment_makes_a_paid_order_and_moves_the_money(store, product):
    """sandbox_visa: the order is paid, the store gets the amount less the card fee, the processor keeps the fee."""
    checkout = checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method="sandbox_visa")
    assert checkout.status == CheckoutStatus.COMPLETE
    order = Order.objects.get(checkout=checkout)
    payment = order.payment
    assert (order.status, order.amount_total, order.fee, order.platform_fee, order.currency) == ("paid", 300, FEE_300, 0, "USD")
    assert order.amount_net == 300 - FEE_300
    assert (payment.status, payment.rail, payment.amount, payment.fee) == ("succeeded", "sandbox", 300, FEE_300)
    assert payment.rail_reference == "sbx_" + payment.pk.removeprefix("pay_")
    assert ledger_of(store) == {"store": 300 - FEE_300, "clearing": 300, "processor_fees": FEE_300, "platform_fees": 0}
    assert sorted(Transfer.objects.values_list("code", "amount", "reference")) == [
        ("processor_fee", FEE_300, order.pk), ("sale", 300, order.pk),
    ]
    assert [(e.product_id, e.email, e.download_limit, e.active) for e in order.entitlements.all()] == [
        (product.pk, "buyer@example.com", 3, True)
    ]
    assert_ledger_consistent()


def test_fee_rounds_half_up(store, pwyw):
    """2.9% of $15.50 is 44.95¢: the fee is 45¢ + 30¢."""
    order = buy(store=store, product=pwyw, amount=1550)
    assert order.fee == 75
    assert ledger_of(store)["store"] == 1550 - 75


def test_platform_fee_goes_to_the_platform(store, pwyw, settings):
    """With STALL_PLATFORM_FEE_BPS, the platform's share (rounded half up) moves from the store to the platform."""
    settings.STALL_PLATFORM_FEE_BPS = 500  # 5% of $15.50 is 77.5¢ → 78¢
    order = buy(store=store, product=pwyw, amount=1550)
    assert (order.fee, order.platform_fee) == (75, 78)
    assert order.amount_net == 1550 - 75 - 78
    assert ledger_of(store) == {"store": 1550 - 75 - 78, "clearing": 1550, "processor_fees": 75, "platform_fees": 78}
    assert Transfer.objects.get(code="platform_fee").amount == 78
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("method", "code", "message"),
    [
        ("sandbox_declined", "card_declined", "Your card was declined."),
        ("sandbox_insufficient_funds", "insufficient_funds", "Your card has insufficient funds."),
    ],
)
def test_declined_card_leaves_the_checkout_open_and_moves_nothing(store, product, method, code, message):
    """A declined card raises PaymentDeclined with the rail's code; the checkout stays open for another card."""
    checkout = open_checkout(store, product)
    with pytest.raises(PaymentDeclined, match=exactly(message)) as caught:
        checkout_confirm(checkout_id=checkout.pk, payment_method=method)
    assert (caught.value.code, caught.value.status) == (code, 402)
    checkout.refresh_from_db()
    assert (checkout.status, checkout.last_error_code, checkout.last_error_message) == ("open", code, message)
    assert list(Payment.objects.values_list("status", "failure_code")) == [("failed", code)]
    assert Order.objects.count() == 0
    assert Transfer.objects.count() == 0

    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert (checkout.status, checkout.last_error_code, checkout.last_error_message) == ("complete", "", "")
    assert sorted(Payment.objects.values_list("status", flat=True)) == ["failed", "succeeded"]
    assert ledger_of(store)["store"] == 300 - FEE_300


def test_3ds_payment_waits_for_the_buyer_then_pays(store, product):
    """sandbox_3ds returns the checkout awaiting action; approving on the bank page completes it."""
    checkout = checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method="sandbox_3ds")
    assert checkout.status == CheckoutStatus.OPEN
    payment = Payment.objects.get(checkout=checkout)
    assert payment.status == "requires_action"
    assert Transfer.objects.count() == 0

    # Confirming again while the bank waits starts no second payment.
    assert checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa").status == CheckoutStatus.OPEN
    assert Payment.objects.count() == 1

    checkout = payment_confirm_action(payment_id=payment.pk, approve=True)
    assert checkout.status == CheckoutStatus.COMPLETE
    payment.refresh_from_db()
    assert (payment.status, payment.fee) == ("succeeded", FEE_300)
    assert ledger_of(store)["store"] == 300 - FEE_300
    # The bank's page submitted twice: the second answer changes nothing.
    assert payment_confirm_action(payment_id=payment.pk, approve=True).pk == checkout.pk
    assert Order.objects.count() == 1
    assert Transfer.objects.filter(code="sale").count() == 1


def test_3ds_declined_fails_the_payment_and_keeps_the_checkout_open(store, product):
    """Cancelling 3-D Secure fails the payment with authentication_failed; another card can still pay."""
    checkout = checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method="sandbox_3ds")
    payment = Payment.objects.get(checkout=checkout)
    with pytest.raises(PaymentDeclined, match=exactly("The card's 3-D Secure check was not completed.")) as caught:
        payment_confirm_action(payment_id=payment.pk, approve=False)
    assert caught.value.code == "authentication_failed"
    payment.refresh_from_db()
    checkout.refresh_from_db()
    assert (payment.status, checkout.status, checkout.last_error_code) == ("failed", "open", "authentication_failed")
    assert Transfer.objects.count() == 0
    with pytest.raises(PaymentNotAwaitingAction, match=exactly("This payment is not waiting for confirmation.")):
        payment_confirm_action(payment_id=payment.pk, approve=True)
    assert checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa").status == CheckoutStatus.COMPLETE


def test_confirm_action_for_an_unknown_payment_is_not_found():
    """An unknown payment id is PaymentNotFound."""
    with pytest.raises(PaymentNotFound, match=exactly("No such payment.")):
        payment_confirm_action(payment_id="pay_nothing", approve=True)


def test_amount_below_the_card_minimum_is_refused_before_charging(store, pwyw):
    """A 25¢ card charge is refused (cards take at least 50¢); no payment is attempted."""
    checkout = open_checkout(store, pwyw, amount=25)
    with pytest.raises(AmountTooSmall, match=exactly("Card payments must be at least $0.50.")) as caught:
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert caught.value.param == "amount"
    assert Payment.objects.count() == 0
    checkout.refresh_from_db()
    assert checkout.status == "open"
    assert checkout_confirm(checkout_id=open_checkout(store, pwyw, amount=50).pk, payment_method="sandbox_visa").status == "complete"


def test_card_minimum_is_per_currency(creator):
    """In KRW the card minimum is ₩700."""
    store = StoreFactory(owner=creator, currency="KRW")
    cheap = ProductFactory(store=store, amount=500)
    with pytest.raises(AmountTooSmall, match=exactly("Card payments must be at least ₩700.")):
        buy(store=store, product=cheap)


@pytest.mark.parametrize(
    ("method", "message"),
    [("", "Choose a payment method."), ("bitcoin", "Unknown payment method “bitcoin”.")],
)
def test_unknown_payment_method_is_refused(store, product, method, message):
    """Only the rails' own payment methods are accepted."""
    with pytest.raises(UnknownPaymentMethod, match=exactly(message)) as caught:
        checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method=method)
    assert (caught.value.code, caught.value.param) == ("invalid_payment_method", "payment_method")
    assert Payment.objects.count() == 0


def test_free_checkout_completes_without_a_payment(store):
    """A free product needs no card: the order is made with no payment and no money moves."""
    free = ProductFactory(store=store, amount=0)
    checkout = checkout_confirm(checkout_id=open_checkout(store, free).pk)
    assert checkout.status == CheckoutStatus.COMPLETE
    order = Order.objects.get(checkout=checkout)
    assert (order.payment, order.amount_total, order.fee) == (None, 0, 0)
    assert order.entitlements.count() == 1
    assert Payment.objects.count() == 0
    assert Transfer.objects.count() == 0


def test_confirming_twice_charges_once(store, product):
    """A double click: the second confirm returns the completed checkout; one payment, one order."""
    checkout = open_checkout(store, product)
    first = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    second = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert (first.pk, second.pk, second.status) == (checkout.pk, checkout.pk, "complete")
    assert Payment.objects.count() == 1
    assert Order.objects.count() == 1
    assert Transfer.objects.filter(code="sale").count() == 1


def test_payment_succeed_is_idempotent(store, product):
    """A rail reporting the same success twice (redirect and webhook) makes one order and moves money once."""
    checkout = checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method="sandbox_visa")
    payment = Payment.objects.get(checkout=checkout)
    order = payment_succeed(payment_id=payment.pk, reference=payment.rail_reference, fee=FEE_300)
    assert order.pk == Order.objects.get().pk
    assert Transfer.objects.count() == 2
    assert ledger_of(store)["store"] == 300 - FEE_300


def test_late_success_of_a_replaced_payment_is_refused(store, product):
    """A failed payment reported successful after another paid the checkout is refused, not a second order."""
    checkout = open_checkout(store, product)
    with pytest.raises(PaymentDeclined):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_declined")
    failed = Payment.objects.get(checkout=checkout)
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    with pytest.raises(CheckoutInvalid, match=exactly("This checkout was already paid.")) as caught:
        payment_succeed(payment_id=failed.pk, fee=FEE_300)
    assert caught.value.code == "checkout_complete"
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert Order.objects.count() == 1
    assert Transfer.objects.filter(code="sale").count() == 1


def test_expired_checkout_cannot_be_paid(store, product):
    """Past its expiry a checkout raises CheckoutExpired and charges nothing; the sweep marks it expired."""
    checkout = open_checkout(store, product)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(CheckoutExpired, match=exactly("This checkout has expired; start again from the product page.")):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert Payment.objects.count() == 0
    assert checkouts_expire_due() == 1
    checkout.refresh_from_db()
    assert checkout.status == CheckoutStatus.EXPIRED
    with pytest.raises(CheckoutExpired):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert Payment.objects.count() == 0
    assert Transfer.objects.count() == 0


def test_expiry_cancels_a_payment_waiting_for_3ds(store, product):
    """An abandoned 3-D Secure payment is cancelled when its checkout expires."""
    checkout = checkout_confirm(checkout_id=open_checkout(store, product).pk, payment_method="sandbox_3ds")
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert checkouts_expire_due() == 1
    assert list(Payment.objects.values_list("status", "failure_code")) == [("canceled", "checkout_expired")]
    with pytest.raises(PaymentNotAwaitingAction):
        payment_confirm_action(payment_id=Payment.objects.get().pk, approve=True)
    assert Order.objects.count() == 0


# --- refunds ----------------------------------------------------------------------------------


def test_full_refund_returns_the_money_and_revokes_downloads(store, product):
    """A full refund: order refunded, downloads revoked, the store back to minus the card fee it paid."""
    order = buy(store=store, product=product)
    refund = refund_create(store=store, order_id=order.pk, reason="  changed my mind ")
    assert (refund.status, refund.amount, refund.currency, refund.reason) == ("succeeded", 300, "USD", "changed my mind")
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("refunded", 300)
    assert Payment.objects.get().amount_refunded == 300
    assert [e.active for e in Entitlement.objects.filter(order=order)] == [False]
    # The processor keeps its fee, so the store is out exactly that fee.
    assert ledger_of(store) == {"store": -FEE_300, "clearing": 0, "processor_fees": FEE_300, "platform_fees": 0}
    assert_ledger_consistent()


def test_partial_refunds_add_up_to_a_full_refund(store, product):
    """$1 then $2 back on a $3 order: partially refunded, then refunded; balances add up exactly."""
    order = buy(store=store, product=product)
    refund_create(store=store, order_id=order.pk, amount=100)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("partially_refunded", 100)
    assert Entitlement.objects.get(order=order).active
    assert ledger_of(store)["store"] == 300 - FEE_300 - 100

    refund_create(store=store, order_id=order.pk, amount=200)
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("refunded", 300)
    assert not Entitlement.objects.get(order=order).active
    assert ledger_of(store) == {"store": -FEE_300, "clearing": 0, "processor_fees": FEE_300, "platform_fees": 0}
    assert_ledger_consistent()


def test_partial_refunds_return_the_platform_fee_in_proportion(store, pwyw, settings):
    """The platform's fee comes back in proportion, and in full, to the cent, once the order is fully refunded."""
    settings.STALL_PLATFORM_FEE_BPS = 500
    order = buy(store=store, product=pwyw, amount=1550)  # fee 75, platform fee 78
    refund_create(store=store, order_id=order.pk, amount=500)
    assert ledger_of(store)["platform_fees"] == 78 - 25  # 78 × 500 / 1550 = 25.16 → 25
    refund_create(store=store, order_id=order.pk)
    assert ledger_of(store) == {"store": -75, "clearing": 0, "processor_fees": 75, "platform_fees": 0}
    assert_ledger_consistent()


def test_refund_above_what_is_left_is_refused_and_moves_nothing(store, product):
    """More than the refundable amount is refused with the maximum in the message; nothing moves."""
    order = buy(store=store, product=product)
    before = ledger_of(store)
    with pytest.raises(RefundInvalid, match=exactly("At most $3.00 of this order can be refunded.")) as caught:
        refund_create(store=store, order_id=order.pk, amount=301)
    assert (caught.value.code, caught.value.param) == ("amount_too_large", "amount")
    refund_create(store=store, order_id=order.pk, amount=100)
    with pytest.raises(RefundInvalid, match=exactly("At most $2.00 of this order can be refunded.")):
        refund_create(store=store, order_id=order.pk, amount=201)
    refund_create(store=store, order_id=order.pk)
    with pytest.raises(RefundInvalid, match=exactly("This order has been refunded in full.")) as caught:
        refund_create(store=store, order_id=order.pk, amount=1)
    assert caught.value.code == "charge_already_refunded"
    assert Refund.objects.count() == 2
    assert ledger_of(store) == {**before, "store": -FEE_300, "clearing": 0}


def test_refund_of_zero_is_refused(store, product):
    """A refund moves a positive amount."""
    order = buy(store=store, product=product)
    with pytest.raises(InvalidAmount, match=exactly("Amount must be greater than zero.")):
        refund_create(store=store, order_id=order.pk, amount=0)
    assert Refund.objects.count() == 0


def test_free_order_cannot_be_refunded(store):
    """A free order took no money, so there is nothing to refund."""
    order = buy(store=store, product=ProductFactory(store=store, amount=0))
    with pytest.raises(RefundInvalid, match=exactly("A free order has nothing to refund.")) as caught:
        refund_create(store=store, order_id=order.pk)
    assert caught.value.param == "order"
    assert Refund.objects.count() == 0


def test_another_stores_order_cannot_be_refunded(store, product):
    """Store B cannot refund store A's order: it is not found."""
    order = buy(store=store, product=product)
    with pytest.raises(OrderNotFound, match=exactly("No such order.")):
        refund_create(store=StoreFactory(), order_id=order.pk)
    assert Refund.objects.count() == 0


# --- receipts ---------------------------------------------------------------------------------


def test_receipt_is_emailed_once_with_a_working_library_link(store, client, django_capture_on_commit_callbacks):
    """After the purchase commits, the buyer gets one receipt whose link opens their library."""
    product = product_with_file(store=store, name="Zine", amount=300)
    with django_capture_on_commit_callbacks(execute=True):
        order = buy(store=store, product=product, email="reader@example.com")
    assert len(mail.outbox) == 1
    receipt = mail.outbox[0]
    assert receipt.to == ["reader@example.com"]
    assert receipt.subject == f"Your receipt from {store.name}"
    assert f"Order {order.pk}" in receipt.body
    assert "Zine  $3.00\nTotal: $3.00" in receipt.body
    link = re.search(r"^(http://\S+/library/enter/\S+/)$", receipt.body, re.M).group(1)
    html = receipt.alternatives[0][0]
    assert f'href="{link}"' in html

    response = client.get(urlsplit(link).path, follow=True)
    assert response.redirect_chain == [("/library/", 302)]
    assert "Bought with reader@example.com" in response.content.decode()
    assert "Zine" in response.content.decode()


def test_receipt_is_not_sent_before_the_purchase_commits(store, product, django_capture_on_commit_callbacks):
    """The receipt is queued on commit: nothing is sent while the transaction is still open."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        buy(store=store, product=product)
    assert mail.outbox == []
    for callback in callbacks:  # the commit: the receipt, and the order.paid event's deliveries
        callback()
    assert [m.subject for m in mail.outbox] == [f"Your receipt from {store.name}"]


def test_full_refund_emails_the_buyer(store, product, django_capture_on_commit_callbacks):
    """A full refund sends the buyer one email saying so and that downloads were withdrawn."""
    order = buy(store=store, product=product)
    with django_capture_on_commit_callbacks(execute=True):
        refund_create(store=store, order_id=order.pk)
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    assert notice.to == ["buyer@example.com"]
    assert notice.subject == f"Refund from {store.name}"
    assert f"{store.name} refunded $3.00 of order {order.pk}.\n" in notice.body
    assert "The order was refunded in full, so its downloads are no longer available." in notice.body


def test_partial_refund_email_does_not_claim_downloads_were_withdrawn(store, product, django_capture_on_commit_callbacks):
    """A partial refund's email states the amount and leaves out the withdrawal sentence."""
    order = buy(store=store, product=product)
    with django_capture_on_commit_callbacks(execute=True):
        refund_create(store=store, order_id=order.pk, amount=100)
    assert len(mail.outbox) == 1
    assert f"refunded $1.00 of order {order.pk}." in mail.outbox[0].body
    assert "no longer available" not in mail.outbox[0].body
