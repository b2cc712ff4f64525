import threading

import pytest
from django.db import connection

from stall.accounts.services import buyer_for_email
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Account
from stall.ledger.selectors import account_balance, account_sums_from_transfers
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.models import Payment
from stall.payments.rails.wallet import fee_pool_for, wallet_for
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.errors import TabLimitReached, WalletEmpty
from stall.wallets.models import Tab, TabStatus
from stall.wallets.services import tab_settle, wallet_top_up


def store_balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.pk, currency="USD").amount


def spend(*, store, product, buyer, method="wallet"):
    checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk)])
    return checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer).order


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


@pytest.fixture
def buyer(db):
    return buyer_for_email(email="reader@example.com")


@pytest.fixture
def post(store):
    return ProductFactory(store=store, name="A 25¢ post", amount=25)


def test_a_top_up_fills_the_wallet_and_its_fee_waits_in_the_pool(buyer):
    """$10 on sandbox_visa puts $10.00 in the wallet; the 59¢ card fee is owed by the spends to come."""
    payment = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet.account.refresh_from_db()
    assert (payment.status, payment.fee) == ("succeeded", 59)
    assert wallet.account.balance == 1000
    assert fee_pool_for(wallet).balance == 59
    assert_ledger_balanced()


def test_spends_pay_the_top_up_fee_pro_rata_and_the_last_one_pays_what_is_left(store, post, buyer):
    """Forty 25¢ spends empty a $10 wallet; their fee shares add up to exactly the 59¢ the card cost."""
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    orders = [spend(store=store, product=post, buyer=buyer) for _ in range(40)]
    fees = [o.fee for o in orders]
    assert sum(fees) == 59
    assert set(fees) <= {1, 2}
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 0
    assert fee_pool_for(wallet_for(buyer=buyer, currency="USD")).balance == 0
    assert store_balance(store) == 1000 - 59
    assert_ledger_balanced()


def test_a_spend_above_the_balance_is_refused_and_moves_nothing(store, post, buyer):
    """With 20¢ in the wallet a 25¢ spend raises WalletEmpty; no payment, order or transfer is left."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    big = ProductFactory(store=store, name="Almost all", amount=480)
    spend(store=store, product=big, buyer=buyer)
    before = (Payment.objects.count(), Order.objects.count(), store_balance(store))
    with pytest.raises(WalletEmpty, match="Your wallet does not hold enough"):
        spend(store=store, product=post, buyer=buyer)
    assert (Payment.objects.count(), Order.objects.count(), store_balance(store)) == before
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 20
    assert_ledger_balanced()


def test_refund_of_a_wallet_sale_restores_the_wallet_and_returns_the_fee_share(store, post, buyer):
    """A refunded unlock puts its 25¢ back in the wallet and its fee share back in the pool, to the cent."""
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    order = spend(store=store, product=post, buyer=buyer)
    wallet = wallet_for(buyer=buyer, currency="USD")
    balance_before, pool_before = store_balance(store), fee_pool_for(wallet).balance
    refund_create(store=store, order_id=order.pk)
    wallet.account.refresh_from_db()
    assert wallet.account.balance == 1000
    assert fee_pool_for(wallet).balance == pool_before + order.fee == 59
    assert store_balance(store) == balance_before - 25 + order.fee == 0
    order.refresh_from_db()
    assert (order.fee_refunded, order.fee_net, order.amount_net) == (order.fee, 0, 0)
    from stall.insights.economics import store_economics

    assert store_economics(store=store).fees == 0  # a refunded wallet sale no longer counts as a cost
    assert_ledger_balanced()


def test_tab_takes_purchases_up_to_its_first_limit_then_settles_with_one_charge(store, post, buyer):
    """A first tab holds $1.00; the fifth 25¢ purchase is refused; settling charges $1.00 once and shares the fee."""
    orders = [spend(store=store, product=post, buyer=buyer, method="tab") for _ in range(4)]
    with pytest.raises(TabLimitReached):
        spend(store=store, product=post, buyer=buyer, method="tab")
    assert store_balance(store) == 100
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
    assert (payment.amount, payment.status, payment.fee) == (100, "succeeded", 33)
    tab = Tab.objects.get(buyer=buyer)
    assert tab.status == TabStatus.SETTLED and tab.account.balance == 0
    fees = [Order.objects.get(pk=o.pk).fee for o in orders]
    assert sum(fees) == 33
    assert store_balance(store) == 100 - 33
    # The next tab may run to $5.00.
    spend(store=store, product=post, buyer=buyer, method="tab")
    assert Tab.objects.get(buyer=buyer, status=TabStatus.OPEN).limit == 500
    assert_ledger_balanced()


def test_the_wallet_needs_a_signed_in_buyer(store, post):
    """Without a buyer, paying from a wallet is refused with buyer_required."""
    from stall.payments.errors import BuyerRequired

    checkout = checkout_create(store=store, email="x@example.com", items=[CheckoutItem(product_id=post.pk)])
    with pytest.raises(BuyerRequired) as exc:
        checkout_confirm(checkout_id=checkout.pk, payment_method="wallet")
    assert exc.value.code == "buyer_required"


@pytest.mark.django_db(transaction=True)
def test_eight_parallel_spends_against_a_wallet_holding_five_succeed_exactly_five_times():
    """Eight one-click spends race on a wallet that holds exactly five: five succeed, three are refused,
    the wallet ends at zero and never went below it."""
    store = StoreFactory()
    product = ProductFactory(store=store, amount=100)
    buyer = buyer_for_email(email="racer@example.com")
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    checkouts = [checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk)]) for _ in range(8)]
    results, barrier = [], threading.Barrier(8)

    def attempt(checkout_id):
        barrier.wait()
        try:
            checkout_confirm(checkout_id=checkout_id, payment_method="wallet", buyer=buyer)
            results.append("ok")
        except WalletEmpty:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(c.pk,)) for c in checkouts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] * 5 + ["refused"] * 3
    wallet = wallet_for(buyer=buyer, currency="USD")
    assert wallet.account.balance == 0
    assert Order.objects.count() == 5
    assert store_balance(store) == 500 - 45  # less the top-up fee, shared out exactly
    assert_ledger_balanced()
