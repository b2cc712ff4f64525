"""Confirming a checkout: the one entry point that pays it on any rail and makes its order.

A free checkout becomes an order at once. A card (the sandbox, Stripe) is charged through
``payments.services.checkout_payment_start`` — lock and reserve, call the rail with no transaction
open, finalize — and the order is made when the rail reports success (``payment_succeed`` calls
``orders.services.checkout_payment_succeeded``, registered for the checkout purpose). The wallet
and the tab pay inside one short transaction here, so a refused spend leaves nothing behind.
"""

from django.db import connection, transaction
from django.utils import timezone

from stall.catalog.models import ProductKind
from stall.checkout.discounts import discount_claim
from stall.checkout.models import Checkout, CheckoutStatus
from stall.checkout.services import CheckoutItem, checkout_create, checkout_lock_open
from stall.payments.errors import BuyerRequired
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails import rail_for, sandbox_admit, test_money_check
from stall.payments.rails.wallet import wallet_get
from stall.payments.services import (
    checkout_card_payments_abandon,
    checkout_payment_start,
    payment_succeed,
)

from .errors import PriceLimitPassed
from .models import Order
from .pricing import checkout_prices_check, checkout_reprice
from .services import order_create_for_checkout
from .spend import IN_LEDGER_METHODS, SpendLine, order_spend, spend_read


def checkout_confirm(*, checkout_id: str, payment_method: str = "", buyer=None, checkout: Checkout | None = None) -> Checkout:
    """Pay for a checkout. Returns the checkout, complete or awaiting the buyer's action.

    A free checkout completes with no payment. A checkout already complete, or with a payment
    already under way, is returned as it is: a double click or a replayed request charges once.
    A card payment left processing by a crash is resumed (see ``checkout_payment_start``).
    A declined payment raises PaymentDeclined and leaves the checkout open for another try.
    The wallet and the tab need the signed-in ``buyer``; they pay in this one transaction, and
    a refusal (InsufficientFunds, LimitExceeded) rolls it back with no money moved. ``checkout``,
    when the caller has loaded it already, saves reading it again (its lines are read with the
    wallet in any case).

    A checkout with a discount code claims its use under the checkout's lock before any money
    moves (``discount_claim``, here or in ``checkout_payment_start``): a code that expired, was
    switched off or used up since the checkout was priced is refused with DiscountRefused.

    A checkout priced before a membership's cap was reached (a card unlock's, opened on the pay
    page, then the cap reached by other unlocks) and paid from the wallet or the tab is paid at
    what a one-click unlock would charge now: the payment's own transaction finds it over the
    limit under the buyer's lock (``PriceLimitPassed``, nothing moved), the checkout is lowered
    (``orders.pricing.checkout_reprice``; to nothing once the cap is reached, and the reader gets
    the post free) and paid again. A card is asked the limits before it is charged, and refused
    with PriceChanged; one charged past them anyway (a Stripe page confirmed in the browser) is
    refunded the excess by the limit's owner.
    """
    if payment_method not in IN_LEDGER_METHODS:
        return _checkout_confirm(checkout_id=checkout_id, payment_method=payment_method, buyer=buyer, checkout=checkout)
    for _ in range(_PRICE_TRIES):
        try:
            return _checkout_confirm(checkout_id=checkout_id, payment_method=payment_method, buyer=buyer, checkout=checkout)
        except PriceLimitPassed:
            # A card payment of the old price must not go through after the checkout is lowered.
            checkout_card_payments_abandon(checkout_id=checkout_id)
            checkout_reprice(checkout_id=checkout_id)
            checkout = None
    raise PriceLimitPassed()


# Lowering and paying again: a second lowering needs another payment reaching the cap in between.
_PRICE_TRIES = 3


def _checkout_confirm(*, checkout_id: str, payment_method: str, buyer, checkout: Checkout | None) -> Checkout:
    if payment_method in IN_LEDGER_METHODS:
        if buyer is None:
            raise BuyerRequired()
        paid = _checkout_pay_lean(checkout_id=checkout_id, method=payment_method, buyer=buyer, checkout=checkout)
        if paid is not None:
            return paid
        checkout_card_payments_abandon(checkout_id=checkout_id)
    else:
        # A card is charged at the prices the checkout was made with: ask the limits again
        # (a membership's cap may have been reached since, by a wallet unlock).
        checkout_prices_check(checkout_id=checkout_id)
    if payment_method not in IN_LEDGER_METHODS and checkout is not None and checkout.amount_total > 0:
        # A card for a checkout that costs something (its total never changes): payments locks
        # it and charges, with no write transaction of ours first.
        return checkout_payment_start(checkout_id=checkout_id, payment_method=payment_method)
    with transaction.atomic():
        checkout = checkout_lock_open(checkout_id=checkout_id)
        if checkout.status == CheckoutStatus.COMPLETE:
            return checkout
        discount_claim(checkout=checkout, buyer=buyer)
        if checkout.amount_total == 0:
            order_create_for_checkout(checkout=checkout, payment=None)
            return Checkout.objects.get(pk=checkout.pk)
        if payment_method in IN_LEDGER_METHODS:
            # The lean path stood aside (a card payment was under way): the general one.
            if checkout.payments.filter(status__in=[PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION]).exists():
                return checkout  # a card payment its rail still has under way, asked just above
            rail = rail_for(store=checkout.store, payment_method=payment_method)
            return _checkout_pay_in_ledger(checkout=checkout, rail=rail, payment_method=payment_method, buyer=buyer)
    # A card, or a card payment already under way: payments charges it, or returns the checkout
    # as it is, or resumes a payment that a crash left processing.
    return checkout_payment_start(checkout_id=checkout_id, payment_method=payment_method)


def _checkout_pay_in_ledger(*, checkout: Checkout, rail, payment_method: str, buyer) -> Checkout:
    if buyer is None:
        raise BuyerRequired()
    livemode = True  # the tab carries real purchases only
    if rail.name == "wallet":
        wallet = wallet_get(buyer=buyer, currency=checkout.currency)
        livemode = wallet is None or wallet.livemode
    if not livemode:
        test_money_check(store_id=checkout.store_id)
    payment = Payment.objects.create(
        store_id=checkout.store_id, checkout=checkout, buyer=buyer, rail=rail.name, payment_method=payment_method,
        amount=checkout.amount_total, currency=checkout.currency, livemode=livemode,
    )
    result = rail.ledger_charge(payment=payment)
    payment_succeed(payment_id=payment.pk, reference=result.reference, fee=result.fee)
    return Checkout.objects.get(pk=checkout.pk)


# The checkout and its lines, with what the lean spend reads about the buyer (one row per line).
_CHECKOUT_COLUMNS = (
    "k.status, k.expires_at, k.amount_total, "
    "(SELECT COUNT(*) FROM payments_payment pp WHERE pp.checkout_id = k.id "
    "AND pp.status IN ('processing', 'requires_action')), "
    "l.product_id, l.name, l.unit_amount, l.quantity, pr.kind, pr.download_limit"
)
_CHECKOUT_JOINS = (
    "LEFT JOIN checkout_checkout k ON k.id = %s LEFT JOIN checkout_checkoutline l ON l.checkout_id = k.id "
    "LEFT JOIN catalog_product pr ON pr.id = l.product_id"
)


def _checkout_pay_lean(*, checkout_id: str, method: str, buyer, checkout: Checkout | None) -> Checkout | None:
    """Pay a checkout from the wallet or the tab with the lean spend. Returns the completed checkout,
    or None when it needs the general path (a card payment of it is under way, it is free, or it is
    no longer open), which then finds out what to do."""
    if checkout is None:
        checkout = Checkout.objects.filter(pk=checkout_id).first()
        if checkout is None:
            return None
    if checkout.discount_id is not None:
        # The lean spend charges its lines' full prices; a discounted checkout takes the general path.
        return None
    with transaction.atomic():
        read = spend_read(
            buyer=buyer, store_id=checkout.store_id, currency=checkout.currency, extra_columns=_CHECKOUT_COLUMNS,
            extra_joins=_CHECKOUT_JOINS, extra_join_params=[checkout.pk],
        )
        status, _, amount_total, card_payments = read.extra[0][:4]
        if status != CheckoutStatus.OPEN or card_payments or not amount_total or read.extra[0][4] is None:
            return None
        if any(r[8] == ProductKind.BUNDLE for r in read.extra):
            return None  # a bundle grants its parts: the general path's fulfilment does that
        lines = [
            SpendLine(product_id=r[4], name=r[5], unit_amount=r[6], quantity=r[7], kind=r[8], download_limit=r[9])
            for r in read.extra
        ]
        now = timezone.now()

        def complete() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE checkout_checkout SET status = %s, completed_at = %s, last_error_code = '', "
                    "last_error_message = '' WHERE id = %s AND status = %s AND expires_at > %s",
                    [CheckoutStatus.COMPLETE, connection.ops.adapt_datetimefield_value(now), checkout.pk,
                     CheckoutStatus.OPEN, connection.ops.adapt_datetimefield_value(now)],
                )
                if cursor.rowcount != 1:
                    raise _NotOpen()

        try:
            order = order_spend(
                store_id=checkout.store_id, buyer=buyer, method=method, currency=checkout.currency, lines=lines,
                read=read, checkout_id=checkout.pk, before_debit=complete,
            )
        except _NotOpen:
            return None
    checkout.status, checkout.completed_at = CheckoutStatus.COMPLETE, now
    checkout.last_error_code = checkout.last_error_message = ""
    Checkout.order.related.set_cached_value(checkout, order)
    return checkout


class _NotOpen(Exception):
    """The checkout was completed or expired since it was read: the general path says which."""


def checkout_test_purchase(*, product, email: str) -> Order:
    """Buy ``product`` for ``email`` with the sandbox's test Visa: the creator walks the path their
    buyers take (checkout, payment, order, receipt, download) without a second browser. Refused
    with ``sandbox_disabled`` where test cards are off for the store, before any checkout exists;
    the order is a test order wherever the sandbox is test money (``rail_livemode``)."""
    sandbox_admit(store_id=product.store_id)
    checkout = checkout_create(store=product.store, email=email, items=[CheckoutItem(product_id=product.pk)])
    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa", checkout=checkout)
    return Order.objects.get(checkout_id=checkout.pk)
