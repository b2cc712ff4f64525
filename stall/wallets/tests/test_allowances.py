import threading
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.catalog.models import Product, ProductKind
from stall.core.errors import InvalidRequest
from stall.core.money import InvalidAmount, InvalidCurrency
from stall.ledger.models import Account, Transfer
from stall.ledger.selectors import account_balance, account_sums_from_transfers
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.rails.wallet import fee_pool_for, wallet_for
from stall.testing import StoreFactory
from stall.wallets import allowances
from stall.wallets.allowances import (
    AllowanceExceeded,
    AllowanceExpired,
    AllowanceInvalid,
    AllowanceMissing,
    AllowanceNotFound,
    AllowanceRevoked,
    ChargeCurrencyMismatch,
    CustomerNotFound,
    allowance_grant,
    allowance_revoke,
    allowance_used,
    charge_create,
    period_bounds,
)
from stall.wallets.errors import WalletEmpty
from stall.wallets.models import Allowance, Charge
from stall.wallets.services import wallet_top_up

UTC = dt_timezone.utc


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def clock(moment: datetime):
    """Every timezone.now() in Stall (and auto_now_add) answers ``moment``."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


def store_balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.pk, currency=store.currency).amount


def money_state(store, buyer) -> tuple:
    """Everything a charge could move: balances, the ledger's transfers and their sum, orders and charges."""
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet.account.refresh_from_db()
    return (
        wallet.account.balance, fee_pool_for(wallet).balance, store_balance(store),
        Transfer.objects.count(), Transfer.objects.aggregate(s=Sum("amount"))["s"],
        Order.objects.count(), Charge.objects.count(),
    )


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


@pytest.fixture
def buyer(db):
    return buyer_for_email(email="player@example.com")


@pytest.fixture
def funded(buyer):
    """The buyer's wallet holds $10.00 (the 59¢ card fee waits in its pool)."""
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


def customer_of(store, buyer) -> Customer:
    return Customer.objects.get(store=store, email=buyer.email)


# --- Periods --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", at(2025, 3, 12, 23, 59, 59), at(2025, 3, 12), at(2025, 3, 13)),
        ("week", at(2025, 3, 12, 9), at(2025, 3, 10), at(2025, 3, 17)),  # a Wednesday: the week began Monday
        ("week", at(2025, 3, 10, 0, 0), at(2025, 3, 10), at(2025, 3, 17)),
        ("week", at(2025, 3, 16, 23, 59), at(2025, 3, 10), at(2025, 3, 17)),  # Sunday night is the same week
        ("month", at(2025, 2, 28, 12), at(2025, 2, 1), at(2025, 3, 1)),
        ("month", at(2025, 12, 31, 23), at(2025, 12, 1), at(2026, 1, 1)),
    ],
)
def test_periods_are_calendar_periods_in_utc_with_weeks_starting_monday(period, now, start, end):
    """A day starts at 00:00 UTC, a week on Monday, a month on the 1st; December rolls into January."""
    assert period_bounds(period=period, now=now) == (start, end)


def test_a_period_is_read_in_utc_whatever_the_offset_of_now():
    """23:30 on the 12th at UTC-5 is the 13th in UTC, so it falls in the 13th's day."""
    now = datetime(2025, 3, 12, 23, 30, tzinfo=dt_timezone(timedelta(hours=-5)))
    assert period_bounds(period="day", now=now) == (at(2025, 3, 13), at(2025, 3, 14))


# --- Granting and revoking ------------------------------------------------------------------


def test_granting_an_allowance_gives_the_store_a_customer_for_the_buyer(store, buyer):
    """The grant records amount, period, currency and expiry; the store gets a cus_ id to charge."""
    expires = timezone.now() + timedelta(days=30)
    allowance = allowance_grant(buyer=buyer, store=store, amount=500, period="day", expires_at=expires)
    assert (allowance.amount, allowance.period, allowance.currency, allowance.expires_at, allowance.revoked_at) == (
        500, "day", "USD", expires, None
    )
    assert customer_of(store, buyer).pk.startswith("cus_")


def test_granting_again_replaces_the_live_allowance(store, buyer):
    """A second grant to the same store revokes the first; exactly one stays live."""
    first = allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    second = allowance_grant(buyer=buyer, store=store, amount=2000, period="month")
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert list(Allowance.objects.filter(revoked_at__isnull=True).values_list("pk", "amount")) == [(second.pk, 2000)]
    assert Customer.objects.filter(store=store).count() == 1


def test_allowances_for_two_stores_live_side_by_side(store, buyer):
    other = StoreFactory()
    allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    allowance_grant(buyer=buyer, store=other, amount=100, period="week")
    assert Allowance.objects.filter(revoked_at__isnull=True).count() == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message", "param"),
    [
        ({"amount": 0}, InvalidAmount, "Amount must be greater than zero.", "amount"),
        ({"amount": -100}, InvalidAmount, "Amount cannot be negative.", "amount"),
        ({"amount": "5"}, InvalidAmount, "Amount must be a whole number of minor units.", "amount"),
        ({"period": "year"}, AllowanceInvalid, "Period must be one of: day, week, month.", "period"),
        ({"expires_at": "past"}, AllowanceInvalid, "The end date must be in the future.", "expires_at"),
    ],
)
def test_a_bad_grant_is_refused_and_nothing_is_granted(store, buyer, kwargs, error, message, param):
    """A zero, negative or non-integer amount, an unknown period or a past end date is refused."""
    args = {"amount": 500, "period": "day", "expires_at": None, **kwargs}
    if args["expires_at"] == "past":
        args["expires_at"] = timezone.now() - timedelta(minutes=1)
    with pytest.raises(error, match=message) as exc:
        allowance_grant(buyer=buyer, store=store, **args)
    assert exc.value.param == param
    assert Allowance.objects.count() == 0


def test_revoking_is_idempotent_and_only_for_the_buyer_who_granted(store, buyer):
    """Another buyer cannot revoke (not found); revoking twice keeps the first revocation time."""
    allowance = allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    stranger = buyer_for_email(email="stranger@example.com")
    with pytest.raises(AllowanceNotFound):
        allowance_revoke(buyer=stranger, allowance_id=allowance.pk)
    first = allowance_revoke(buyer=buyer, allowance_id=allowance.pk).revoked_at
    assert first is not None
    assert allowance_revoke(buyer=buyer, allowance_id=allowance.pk).revoked_at == first


# --- Charging -------------------------------------------------------------------------------


def test_a_charge_takes_the_amount_from_the_wallet_and_pays_the_store(store, funded):
    """A 25¢ charge: the wallet gives 25¢, the store keeps 25¢ less the charge's 1¢ share of the top-up
    fee; the order line is named by the description and the store's "API charges" product is made."""
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge = charge_create(
        store=store, customer_id=customer_of(store, funded).pk, amount=25, currency="usd", description="10 gems"
    )
    order = charge.order
    assert (charge.amount, charge.currency, charge.description, charge.pk[:3]) == (25, "USD", "10 gems", "ch_")
    assert (order.amount_total, order.fee, order.email, order.payment.rail) == (25, 1, funded.email, "wallet")
    assert [(line.name, line.unit_amount) for line in order.lines.all()] == [("10 gems", 25)]
    assert wallet_for(buyer=funded, currency="USD").account.balance == 975
    assert store_balance(store) == 24
    product = Product.objects.get(store=store, kind=ProductKind.CHARGE)
    assert (product.name, product.status, product.price_type, product.amount) == (
        "API charges", "published", "pay_what_you_want", 1
    )
    assert allowance_used(allowance=charge.allowance) == 25
    assert_ledger_balanced()


def test_a_charge_without_a_description_is_named_after_the_product(store, funded):
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge = charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=10, currency="USD")
    assert [line.name for line in charge.order.lines.all()] == ["API charges"]
    # The second charge reuses the store's product.
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=10, currency="USD")
    assert Product.objects.filter(store=store, kind=ProductKind.CHARGE).count() == 1


def test_the_charge_product_takes_another_address_when_api_charges_is_taken(store, funded):
    from stall.testing import ProductFactory

    ProductFactory(store=store, slug="api-charges", name="My API charges zine")
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=10, currency="USD")
    product = Product.objects.get(store=store, kind=ProductKind.CHARGE)
    assert product.slug.startswith("api-charges-") and product.name == "API charges"


def _refused(store, buyer, error, match, **kwargs):
    before = money_state(store, buyer)
    args = {"store": store, "customer_id": customer_of(store, buyer).pk, "amount": 100, "currency": "USD", **kwargs}
    with pytest.raises(error, match=match) as exc:
        charge_create(**args)
    assert money_state(store, buyer) == before
    assert_ledger_balanced()
    return exc.value


def test_a_charge_with_no_allowance_is_refused_and_moves_no_money(store, funded):
    """A customer who bought but never granted an allowance: allowance_missing (403)."""
    from stall.testing import ProductFactory, buy

    buy(store=store, product=ProductFactory(store=store), email=funded.email)
    exc = _refused(store, funded, AllowanceMissing, "has not allowed your store")
    assert (exc.code, exc.status) == ("allowance_missing", 403)


def test_a_charge_to_a_customer_with_no_buyer_account_is_refused_as_missing(store, funded):
    """A customer known only by email (no buyer, so no wallet) has no allowance either."""
    customer = Customer.objects.create(store=store, email="nobody@example.com")
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    before = money_state(store, funded)
    with pytest.raises(AllowanceMissing):
        charge_create(store=store, customer_id=customer.pk, amount=100, currency="USD")
    assert money_state(store, funded) == before


def test_a_charge_against_a_revoked_allowance_is_refused_and_moves_no_money(store, funded):
    allowance = allowance_grant(buyer=funded, store=store, amount=500, period="day")
    allowance_revoke(buyer=funded, allowance_id=allowance.pk)
    exc = _refused(store, funded, AllowanceRevoked, "revoked your store's allowance")
    assert (exc.code, exc.status) == ("allowance_revoked", 403)


def test_a_charge_against_an_expired_allowance_is_refused_and_moves_no_money(store, funded):
    expires = timezone.now() + timedelta(hours=1)
    allowance_grant(buyer=funded, store=store, amount=500, period="day", expires_at=expires)
    with clock(expires):
        exc = _refused(store, funded, AllowanceExpired, "allowance for your store has expired")
    assert (exc.code, exc.status) == ("allowance_expired", 403)


def test_a_charge_over_what_is_left_this_period_is_refused_and_moves_no_money(store, funded):
    """$5.00 a day, $4.00 charged: a $1.01 charge is refused, naming the $1.00 left; $1.00 goes through."""
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=400, currency="USD")
    exc = _refused(store, funded, AllowanceExceeded, r"more than the \$1\.00 left of the customer's allowance this day",
                   amount=101)
    assert (exc.code, exc.status, exc.param) == ("allowance_exceeded", 402, "amount")
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=100, currency="USD")


def test_a_charge_over_the_wallet_balance_is_refused_and_moves_no_money(store, funded):
    """$20 a day allowed, $10 in the wallet: a $10.01 charge is refused with insufficient_funds."""
    allowance_grant(buyer=funded, store=store, amount=2000, period="day")
    exc = _refused(store, funded, WalletEmpty, "The customer's wallet does not hold enough", amount=1001)
    assert (exc.code, exc.status) == ("insufficient_funds", 402)


def test_a_charge_to_a_buyer_with_no_wallet_at_all_is_refused_as_insufficient_funds(store, buyer):
    from stall.wallets.models import Wallet

    allowance_grant(buyer=buyer, store=store, amount=2000, period="day")
    with pytest.raises(WalletEmpty) as exc:
        charge_create(store=store, customer_id=customer_of(store, buyer).pk, amount=1, currency="USD")
    assert exc.value.code == "insufficient_funds"
    assert (Wallet.objects.count(), Transfer.objects.count(), Order.objects.count(), Charge.objects.count()) == (0, 0, 0, 0)


def test_a_charge_in_another_currency_is_refused_and_moves_no_money(store, funded):
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    exc = _refused(store, funded, ChargeCurrencyMismatch, "This store charges in USD.", currency="EUR")
    assert (exc.code, exc.param) == ("currency_mismatch", "currency")
    exc = _refused(store, funded, InvalidCurrency, "Unknown currency: ZZZ.", currency="ZZZ")
    assert exc.code == "invalid_currency"


@pytest.mark.parametrize(
    ("amount", "message"),
    [(0, "greater than zero"), (-25, "cannot be negative"), ("25", "whole number"), (2.5, "whole number"),
     (True, "whole number"), (10**12, "too large")],
)
def test_a_charge_of_a_bad_amount_is_refused_and_moves_no_money(store, funded, amount, message):
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    exc = _refused(store, funded, InvalidAmount, message, amount=amount)
    assert (exc.code, exc.param) == ("invalid_amount", "amount")


def test_a_charge_with_a_too_long_description_is_refused(store, funded):
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    exc = _refused(store, funded, InvalidRequest, "at most 120 characters", description="x" * 121)
    assert (exc.code, exc.param) == ("invalid_request", "description")


def test_a_charge_to_another_stores_customer_is_not_found(store, funded):
    """The customer id of store B means nothing at store A, even with an allowance at B."""
    other = StoreFactory()
    allowance_grant(buyer=funded, store=other, amount=500, period="day")
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    before = money_state(store, funded)
    with pytest.raises(CustomerNotFound):
        charge_create(store=store, customer_id=customer_of(other, funded).pk, amount=100, currency="USD")
    assert money_state(store, funded) == before


def test_the_allowance_room_comes_back_when_the_period_rolls_over(store, funded):
    """$1.00 a day used up on the 12th; at 23:59 it is still refused, at 00:00 UTC on the 13th it goes through."""
    with clock(at(2031, 5, 12, 9)):
        allowance_grant(buyer=funded, store=store, amount=100, period="day")
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=100, currency="USD")
    with clock(at(2031, 5, 12, 23, 59, 59)), pytest.raises(AllowanceExceeded):
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=1, currency="USD")
    with clock(at(2031, 5, 13, 0, 0)):
        charge = charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=100, currency="USD")
        assert allowance_used(allowance=charge.allowance) == 100
    assert Charge.objects.count() == 2


def test_a_weekly_allowance_rolls_over_on_monday(store, funded):
    with clock(at(2031, 5, 11, 12)):  # a Sunday
        allowance_grant(buyer=funded, store=store, amount=100, period="week")
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=100, currency="USD")
    with clock(at(2031, 5, 12, 0, 0, 1)):  # Monday
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=100, currency="USD")
    with clock(at(2031, 5, 18, 23, 59)), pytest.raises(AllowanceExceeded):  # still that week on Sunday
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=1, currency="USD")


def test_replacing_an_allowance_mid_period_keeps_what_the_period_used(store, funded):
    """$3 used of $5 a day; raising it to $6 a day leaves $3, not $6."""
    old = allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=300, currency="USD")
    new = allowance_grant(buyer=funded, store=store, amount=600, period="day")
    assert allowance_used(allowance=new) == allowance_used(allowance=old) == 300
    with pytest.raises(AllowanceExceeded, match=r"\$3\.00 left"):
        charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=301, currency="USD")


def test_a_refunded_charge_gives_its_room_back_and_its_money_back_to_the_wallet(store, funded):
    allowance = allowance_grant(buyer=funded, store=store, amount=500, period="day")
    charge = charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=500, currency="USD")
    refund_create(store=store, order_id=charge.order_id, amount=200)
    assert allowance_used(allowance=allowance) == 300
    assert wallet_for(buyer=funded, currency="USD").account.balance == 700
    charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=200, currency="USD")
    assert_ledger_balanced()


def test_a_repeated_idempotency_key_charges_once(store, funded):
    """The same key and charge returns the first charge; the same key with another charge is a conflict."""
    allowance_grant(buyer=funded, store=store, amount=500, period="day")
    customer = customer_of(store, funded).pk
    first = charge_create(store=store, customer_id=customer, amount=50, currency="USD", idempotency_key="k1")
    again = charge_create(store=store, customer_id=customer, amount=50, currency="USD", idempotency_key="k1")
    assert again.pk == first.pk
    assert Charge.objects.count() == 1
    assert wallet_for(buyer=funded, currency="USD").account.balance == 950
    with pytest.raises(Exception, match="used with a different charge") as exc:
        charge_create(store=store, customer_id=customer, amount=60, currency="USD", idempotency_key="k1")
    assert (exc.value.code, exc.value.status) == ("idempotency_key_reused", 409)
    # A refused charge does not use up its key: once the buyer tops up, the retry goes through.
    allowance_grant(buyer=funded, store=store, amount=5000, period="day")
    with pytest.raises(WalletEmpty):
        charge_create(store=store, customer_id=customer, amount=2000, currency="USD", idempotency_key="k2")
    wallet_top_up(buyer=funded, amount=2000, currency="USD", payment_method="sandbox_visa")
    assert charge_create(store=store, customer_id=customer, amount=2000, currency="USD", idempotency_key="k2").amount == 2000


def test_the_same_idempotency_key_at_two_stores_is_two_charges(store, funded):
    other = StoreFactory()
    for s in (store, other):
        allowance_grant(buyer=funded, store=s, amount=500, period="day")
    a = charge_create(store=store, customer_id=customer_of(store, funded).pk, amount=50, currency="USD", idempotency_key="k")
    b = charge_create(store=other, customer_id=customer_of(other, funded).pk, amount=50, currency="USD", idempotency_key="k")
    assert a.pk != b.pk and Charge.objects.count() == 2


def test_a_charge_is_sent_to_webhook_endpoints_as_charge_succeeded(store, funded, settings, django_capture_on_commit_callbacks):
    """charge.succeeded carries the charge as the API shows it, signed like every event."""
    from standardwebhooks.webhooks import Webhook

    from stall.integrations import webhooks
    from stall.integrations.tests.test_webhooks import Receiver

    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    receiver = Receiver()
    try:
        endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["charge.succeeded"])
        allowance_grant(buyer=funded, store=store, amount=500, period="day")
        with django_capture_on_commit_callbacks(execute=True):
            charge = charge_create(
                store=store, customer_id=customer_of(store, funded).pk, amount=25, currency="USD", description="1 call"
            )
        headers, body = receiver.requests[0]
    finally:
        receiver.close()
    event = Webhook(endpoint.secret).verify(body, headers)
    assert event["type"] == "charge.succeeded"
    assert event["data"]["object"] == {
        "id": charge.pk, "object": "charge", "customer": customer_of(store, funded).pk, "amount": 25, "currency": "USD",
        "description": "1 call", "order": charge.order_id, "allowance": charge.allowance_id, "fee": 1,
        "fee_refunded": 0, "fee_net": 1, "livemode": True,
        "created": int(charge.created_at.timestamp()),
    }


@pytest.mark.django_db(transaction=True)
def test_eight_parallel_charges_against_an_allowance_with_room_for_five_succeed_exactly_five_times():
    """Eight $1.00 charges race on a $5.00-a-day allowance while the wallet holds $10.00: five succeed,
    three are refused with allowance_exceeded, and the period's usage ends at exactly $5.00."""
    store = StoreFactory()
    buyer = buyer_for_email(email="racer@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    allowance = allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    customer_id = customer_of(store, buyer).pk
    allowances.charge_product_for(store=store)  # made once, up front: the race is about the allowance
    results, barrier = [], threading.Barrier(8)

    def attempt(i):
        barrier.wait()
        try:
            charge_create(store=store, customer_id=customer_id, amount=100, currency="USD", description=f"call {i}")
            results.append("ok")
        except AllowanceExceeded:
            results.append("exceeded")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exceeded"] * 3 + ["ok"] * 5
    assert allowance_used(allowance=allowance) == 500
    assert Charge.objects.count() == Order.objects.count() == 5
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 500
    assert_ledger_balanced()
