"""An order's net is what the ledger moved into its store's balance, and every place that shows it
agrees (hypothesis).

A random history of sales and refunds runs through the real services on every rail Stall pays
with here: the sandbox card (a plain charge and a 3-D Secure one), the wallet and the tab by the
lean spend (an unlock, a tip, a checkout, an API charge against an allowance) and by the general
path (a checkout whose 3-D Secure card payment was abandoned for the wallet or the tab), tab
settlements in between (which share the card fee into the tab's orders), settle-and-buy, and full,
partial and repeated refunds, chargebacks of card orders (opened, withdrawn, won or lost, replayed,
out of order), with and without a platform fee. After every step each store's
balance is the sum of its orders' nets as the order rows have them; after the history, each
order's columns equal the ledger's own figures for it, the API's ``/api/v1/orders`` adds up to the
balance, and the dashboard's processing fees are the sum of the orders' net fees. Each history
runs inside a savepoint that is rolled back, so histories are independent.
"""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from stall.accounts.services import buyer_for_email
from stall.catalog.models import PriceType
from stall.checkout.services import CheckoutItem, checkout_create
from stall.content.services import post_create, post_unlock, tip_jar_update, tip_send
from stall.insights.economics import order_processing_cost, store_economics
from stall.integrations.services import api_key_create
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_balance
from stall.ledger.services import account_ids_forget
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import ORDER_FEE_NET, ORDER_NET, Order
from stall.orders.refunds import refund_create
from stall.orders.selectors import order_ledger_totals
from stall.orders.services import customer_for_email
from stall.payments.disputes import DisputeNews, dispute_record
from stall.payments.errors import RefundInvalid, TabLimitReached, WalletEmpty
from stall.payments.services import payment_confirm_action
from stall.testing import ApiClient, ProductFactory, StoreFactory
from stall.wallets.allowances import allowance_grant, charge_create
from stall.wallets.errors import TopUpInvalid
from stall.wallets.services import tab_settle, tab_settle_and_buy, wallet_top_up

pytestmark = pytest.mark.django_db

STORES, BUYERS = 2, 2
PRICES = (25, 30, 99, 250)  # the fixed-price products (and posts) of each store
IN_LEDGER = st.sampled_from(["wallet", "tab"])
store_i = st.integers(0, STORES - 1)
buyer_i = st.integers(0, BUYERS - 1)
price_i = st.integers(0, len(PRICES) - 1)

card = st.tuples(
    st.just("card"), store_i, st.integers(50, 3000),
    st.sampled_from(["sandbox_visa", "sandbox_3ds"]),
)
top_up = st.tuples(st.just("top_up"), buyer_i, st.sampled_from([500, 1000, 2000]))
unlock = st.tuples(st.just("unlock"), store_i, buyer_i, price_i, IN_LEDGER)
tip = st.tuples(st.just("tip"), store_i, buyer_i, st.integers(1, 300), IN_LEDGER)
buy = st.tuples(st.just("buy"), store_i, buyer_i, price_i, IN_LEDGER)
buy_after_3ds = st.tuples(
    st.just("buy_after_3ds"), store_i, buyer_i, st.integers(2, len(PRICES) - 1), IN_LEDGER
)
charge = st.tuples(st.just("charge"), store_i, buyer_i, st.integers(1, 300))
settle = st.tuples(st.just("settle"), buyer_i)
settle_and_buy = st.tuples(st.just("settle_and_buy"), store_i, buyer_i, price_i)
# Which order (counted from the newest), and how much: None refunds what is left, k refunds k
# tenths of it (at least 1 minor unit).
refund = st.tuples(st.just("refund"), st.integers(0, 30), st.one_of(st.none(), st.integers(1, 9)))
# A chargeback of a card order (which, counted from the newest; k tenths of its payment), told as
# a processor's events would tell it: statuses in turn, a funds event after some. A second dispute
# step on the same order continues (or replays) the same dispute.
dispute = st.tuples(
    st.just("dispute"), st.integers(0, 30), st.integers(1, 10),
    st.lists(
        st.tuples(
            st.sampled_from(["needs_response", "under_review", "won", "lost", "warning_needs_response", "warning_closed"]),
            st.sampled_from(["", "withdrawn", "reinstated"]),
        ),
        min_size=1, max_size=4,
    ),
)
# One step of a history: (what, arguments...). A strategy named twice is drawn twice as often:
# refunds and in-ledger spends are where the fee shares move.
steps = st.one_of(
    refund, refund, refund, dispute, dispute, unlock, unlock, buy, tip, charge, buy_after_3ds, card, settle, settle,
    settle_and_buy, top_up,
)
# Refusals a history may run into; each moves nothing (the checks after the step say so).
REFUSALS = (WalletEmpty, TabLimitReached, RefundInvalid, TopUpInvalid)


class Shop:
    """Two stores with products, posts, a tip jar and an API key; two buyers with money in their
    wallets and an allowance for each store."""

    def __init__(self):
        self.stores = [StoreFactory() for _ in range(STORES)]
        self.buyers = [buyer_for_email(email=f"reader{i}@example.com") for i in range(BUYERS)]
        self.products = [[ProductFactory(store=s, amount=p) for p in PRICES] for s in self.stores]
        self.pwyw = [
            ProductFactory(store=s, price_type=PriceType.PAY_WHAT_YOU_WANT, amount=0)
            for s in self.stores
        ]
        self.posts = [
            [post_create(store=s, title=f"Post {p}", amount=p, status="published") for p in PRICES]
            for s in self.stores
        ]
        for store in self.stores:
            tip_jar_update(store=store, enabled=True, minimum=1)
        for buyer in self.buyers:
            for store in self.stores:
                allowance_grant(buyer=buyer, store=store, amount=1_000_000, period="month")
        self.secrets = [api_key_create(store=s, name="net")[1] for s in self.stores]
        for buyer in self.buyers:  # $20.00 each, a 88¢ card fee in each wallet's pool
            wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")

    def run(self, step) -> None:
        what, *args = step
        getattr(self, f"do_{what}")(*args)

    def _checkout(self, store, email, product, amount=None):
        return checkout_create(
            store=store, email=email, items=[CheckoutItem(product_id=product.pk, amount=amount)]
        )

    def do_card(self, s, amount, method):
        store = self.stores[s]
        checkout = checkout_confirm(
            checkout_id=self._checkout(store, "card@example.com", self.pwyw[s], amount).pk,
            payment_method=method,
        )
        if method == "sandbox_3ds":
            payment_confirm_action(payment_id=checkout.payments.get().pk, approve=True)

    def do_top_up(self, b, amount):
        wallet_top_up(
            buyer=self.buyers[b], amount=amount, currency="USD", payment_method="sandbox_visa"
        )

    def do_unlock(self, s, b, p, method):
        post_unlock(post=self.posts[s][p], method=method, buyer=self.buyers[b], confirmed=True)

    def do_tip(self, s, b, amount, method):
        tip_send(
            store=self.stores[s], amount=amount, method=method, buyer=self.buyers[b], confirmed=True
        )

    def do_buy(self, s, b, p, method):
        buyer = self.buyers[b]
        checkout = self._checkout(self.stores[s], buyer.email, self.products[s][p])
        checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer)

    def do_buy_after_3ds(self, s, b, p, method):
        """A card payment waits for 3-D Secure; the buyer pays from the wallet or tab instead (the
        general in-ledger path: the lean spend steps aside while a card payment is under way)."""
        buyer = self.buyers[b]
        checkout = self._checkout(self.stores[s], buyer.email, self.products[s][p])
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_3ds")
        checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer)

    def do_charge(self, s, b, amount):
        store, buyer = self.stores[s], self.buyers[b]
        customer = customer_for_email(store_id=store.pk, email=buyer.email)
        charge_create(store=store, customer_id=customer.pk, amount=amount, currency="USD")

    def do_settle(self, b):
        tab_settle(buyer=self.buyers[b], currency="USD", payment_method="sandbox_visa")

    def do_settle_and_buy(self, s, b, p):
        buyer = self.buyers[b]
        checkout = self._checkout(self.stores[s], buyer.email, self.products[s][p])
        tab_settle_and_buy(buyer=buyer, checkout_id=checkout.pk, payment_method="sandbox_visa")

    def do_refund(self, newest, tenths):
        orders = list(
            Order.objects.filter(store__in=self.stores, payment__isnull=False).order_by("-pk")
        )
        if not orders:
            return
        order = orders[newest % len(orders)]
        left = order.amount_total - order.amount_refunded
        amount = None if tenths is None or left <= 0 else max(1, left * tenths // 10)
        refund_create(store=order.store, order_id=order.pk, amount=amount, reason="property")

    def do_dispute(self, newest, tenths, told):
        orders = list(
            Order.objects.filter(store__in=self.stores, payment__rail="sandbox").select_related("payment").order_by("-pk")
        )
        if not orders:
            return
        payment = orders[newest % len(orders)].payment
        for status, funds in told:
            news = DisputeNews(
                reference=f"dp_{payment.pk}", amount=max(1, payment.amount * tenths // 10), currency="USD",
                status=status, funds=funds, fee=1500, fee_returned_when_won=tenths % 2 == 0,
            )
            dispute_record(payment=payment, news=news)

    # --- what must hold ---------------------------------------------------------------------

    def balance(self, store) -> int:
        return account_balance(
            kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD"
        ).amount

    def check_balances(self) -> None:
        """Each store's balance is the sum of its orders' nets, read from the order rows."""
        for store in self.stores:
            nets = (
                Order.objects.filter(store=store, currency="USD").aggregate(net=Sum(ORDER_NET))[
                    "net"
                ]
                or 0
            )
            assert self.balance(store) == nets, store.pk

    def check_all(self) -> None:
        orders = list(
            Order.objects.filter(store__in=self.stores).select_related("payment").order_by("pk")
        )
        ledger = order_ledger_totals(orders=orders)
        for order in orders:
            row = ledger[order.pk]
            columns = (
                order.net,
                order.amount_total,
                -order.amount_refunded,
                -order.fee_net,
                -order.platform_fee_net,
                -order.amount_disputed,
                -order.dispute_fee,
            )
            assert columns == (
                row.net,
                row.sold,
                row.refunded,
                row.fee_net,
                row.platform_fee_net,
                row.disputed,
                row.dispute_fee,
            ), order.pk
            assert order_processing_cost(order=order).fee == order.fee_net, order.pk
        self._check_every_balance_transfer_belongs_to_an_order_of_its_store(orders)
        for index, store in enumerate(self.stores):
            mine = [o for o in orders if o.store_id == store.pk]
            balance = self.balance(store)
            assert balance == sum(ledger[o.pk].net for o in mine)
            listed = self._api_orders(self.secrets[index])
            assert sorted(o["id"] for o in listed) == sorted(o.pk for o in mine)
            for o in listed:
                assert (
                    o["net"]
                    == o["amount_total"]
                    - o["amount_refunded"]
                    - o["amount_disputed"]
                    - o["dispute_fee"]
                    - o["fee_net"]
                    - o["platform_fee_net"]
                )
                assert o["fee_net"] == o["fee"] - o["fee_refunded"]
                assert o["platform_fee_net"] == o["platform_fee"] - o["platform_fee_refunded"]
            assert sum(o["net"] for o in listed) == balance
            fees = sum(o["fee_net"] for o in listed)
            assert store_economics(store=store).fees == fees
            assert fees == (
                Order.objects.filter(store=store).aggregate(f=Sum(ORDER_FEE_NET))["f"] or 0
            )

    def _check_every_balance_transfer_belongs_to_an_order_of_its_store(self, orders) -> None:
        store_of = {o.pk: o.store_id for o in orders}
        balances = Account.objects.filter(
            kind=AccountKind.STORE_BALANCE, owner__in=[s.pk for s in self.stores]
        )
        moves = Transfer.objects.filter(
            Q(debit_account__in=balances) | Q(credit_account__in=balances)
        ).values_list(
            "code",
            "reference",
            "debit_account__kind",
            "debit_account__owner",
            "credit_account__owner",
        )
        for code, reference, debit_kind, debit_owner, credit_owner in moves:
            owner = debit_owner if debit_kind == AccountKind.STORE_BALANCE else credit_owner
            assert store_of.get(reference) == owner, (code, reference)

    def _api_orders(self, secret) -> list[dict]:
        api, listed, after = ApiClient(Client(), secret), [], None
        while True:
            params = {"limit": 100, **({"starting_after": after} if after else {})}
            response = api.get("/orders", params)
            assert response.status_code == 200, response.content
            page = json.loads(response.content)
            listed += page["data"]
            if not page["has_more"]:
                return listed
            after = page["data"][-1]["id"]


@pytest.fixture
def shop(db):
    """Made once for all the histories of a test; each history is rolled back to it."""
    return Shop()


# The same shop for every history is deliberate (function_scoped_fixture): each history runs in a
# savepoint that is rolled back, so none sees another's orders or money.
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(bps=st.sampled_from([0, 500, 1234]), history=st.lists(steps, min_size=3, max_size=12))
def test_a_stores_balance_is_the_sum_of_its_orders_nets_on_every_rail(shop, bps, history):
    """For any history of card, wallet and tab sales, tab settlements and refunds (full, partial,
    several), with or without a platform fee: every order's net, net fee and net platform fee on
    its row equal what its transfers moved in the ledger; each store's balance is the sum of its
    orders' nets, after every step, as the rows, the ledger and GET /api/v1/orders say; and the
    dashboard's processing fees are the sum of the orders' net fees."""
    account_ids_forget()  # the savepoint of the last history took the accounts it opened with it
    with (
        override_settings(STALL_PLATFORM_FEE_BPS=bps, STALL_TAB_FIRST_LIMIT="3"),
        transaction.atomic(),
    ):
        for step in history:
            note(repr(step))
            try:
                with transaction.atomic():
                    shop.run(step)
            except REFUSALS as refused:
                note(f"refused: {refused.code}")
            shop.check_balances()
        shop.check_all()
        transaction.set_rollback(True)


# --- the figures, and each guard on its own --------------------------------------------


def _api_order(api, order_id) -> dict:
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200
    return json.loads(response.content)


def _net_fields(order: dict) -> tuple:
    keys = (
        "amount_total",
        "amount_refunded",
        "fee",
        "fee_refunded",
        "fee_net",
        "platform_fee",
        "platform_fee_refunded",
        "platform_fee_net",
        "net",
    )
    return tuple(order[k] for k in keys)


def _store_balance(store) -> int:
    return account_balance(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD").amount


def _wallet_sale(store, email, amount):
    """A buyer tops up $5.00 (a 45¢ card fee: 2.9% + 30¢) and spends ``amount`` of it on a
    product."""
    buyer = buyer_for_email(email=email)
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    product = ProductFactory(store=store, amount=amount)
    checkout = checkout_create(
        store=store, email=email, items=[CheckoutItem(product_id=product.pk)]
    )
    return checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=buyer).order


def test_wallet_refunds_show_in_the_api_as_they_moved_the_balance(store, api):
    """A 25¢ wallet sale carries a 2¢ share of its buyer's 45¢ top-up fee (45 × 25/500); refunded in
    full it moves the balance by −23¢ and the API says fee 2, fee_refunded 2, net 0. A $1.00 sale
    (a 9¢ share) refunded by 50¢ moves it by −45¢ (4.5¢ of the share, rounded half up, comes
    back): fee_refunded 5, fee_net 4, net 46. The orders' nets add up to the balance."""
    small = _wallet_sale(store, "small@example.com", 25)
    dollar = _wallet_sale(store, "dollar@example.com", 100)
    assert (small.fee, dollar.fee) == (2, 9)
    assert _store_balance(store) == 25 - 2 + 100 - 9

    before = _store_balance(store)
    refund_create(store=store, order_id=small.pk)
    assert _store_balance(store) - before == -23
    before = _store_balance(store)
    refund_create(store=store, order_id=dollar.pk, amount=50)
    assert _store_balance(store) - before == -45

    assert _net_fields(_api_order(api, small.pk)) == (25, 25, 2, 2, 0, 0, 0, 0, 0)
    assert _net_fields(_api_order(api, dollar.pk)) == (100, 50, 9, 5, 4, 0, 0, 0, 46)
    listed = json.loads(api.get("/orders").content)["data"]
    assert sum(o["net"] for o in listed) == _store_balance(store) == 46


def test_a_refund_gives_back_the_platform_fee_in_proportion_and_the_order_says_so(
    store, api, settings
):
    """With a 5% platform fee a $10.00 card sale pays 50¢ to the platform and 59¢ to the card; a
    $2.50 refund takes 12.5¢ → 13¢ of the platform fee back (the card keeps its fee): the order's
    platform_fee_refunded is 13 and its net 1000 − 250 − 59 − 37 = 654, the store's balance."""
    settings.STALL_PLATFORM_FEE_BPS = 500
    product = ProductFactory(store=store, amount=1000)
    checkout = checkout_create(
        store=store, email="fan@example.com", items=[CheckoutItem(product_id=product.pk)]
    )
    order = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa").order

    refund_create(store=store, order_id=order.pk, amount=250)

    order.refresh_from_db()
    assert (order.platform_fee, order.platform_fee_refunded, order.platform_fee_net, order.net) == (
        50,
        13,
        37,
        654,
    )
    assert _net_fields(_api_order(api, order.pk)) == (1000, 250, 59, 0, 59, 50, 13, 37, 654)
    assert _store_balance(store) == 654
    assert order_ledger_totals(orders=[order])[order.pk].platform_fee_net == -37


def test_a_tab_settlement_puts_each_sales_fee_share_on_its_order(store, api):
    """Two 25¢ tab unlocks are settled with one 50¢ card charge (a 31¢ fee, 2.9% + 30¢): the shares,
    16¢ and 15¢, are on the orders, the API's nets are 9¢ and 10¢ and add up to the balance."""
    buyer = buyer_for_email(email="tab@example.com")
    post = post_create(store=store, title="Tab post", amount=25, status="published")
    other = post_create(store=store, title="Another", amount=25, status="published")
    first = post_unlock(post=post, method="tab", buyer=buyer).order
    second = post_unlock(post=other, method="tab", buyer=buyer).order

    tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")

    nets = sorted(_net_fields(_api_order(api, o.pk)) for o in (first, second))
    assert nets == [(25, 0, 15, 0, 15, 0, 0, 0, 10), (25, 0, 16, 0, 16, 0, 0, 0, 9)]
    assert _store_balance(store) == 19
    ledger = order_ledger_totals(orders=[first, second])
    assert sorted(row.fee_net for row in ledger.values()) == [-16, -15]


def test_the_order_row_refuses_a_refunded_fee_above_the_fee(store):
    """The database refuses an order whose refunded fee or platform fee exceeds what it paid."""
    order = _wallet_sale(store, "rows@example.com", 100)
    for column, value in (
        ("fee_refunded", order.fee + 1),
        ("platform_fee_refunded", 1),
        ("fee_refunded", -1),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Order.objects.filter(pk=order.pk).update(**{column: value})
    order.refresh_from_db()
    assert (order.fee_refunded, order.platform_fee_refunded) == (0, 0)


def test_the_migration_takes_refunded_fees_from_the_ledger(store, settings):
    """Orders refunded before their columns were kept get them from their fee_refund and
    platform_fee_refund transfers."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("stall.orders.migrations.0006_order_platform_fee_refunded")
    settings.STALL_PLATFORM_FEE_BPS = 1000
    order = _wallet_sale(store, "old@example.com", 100)  # a 9¢ fee share, a 10¢ platform fee
    refund_create(store=store, order_id=order.pk, amount=50)
    untouched = _wallet_sale(store, "new@example.com", 100)
    Order.objects.filter(pk=order.pk).update(fee_refunded=0, platform_fee_refunded=0)

    migration.refunded_fees_from_ledger(apps)

    order.refresh_from_db()
    untouched.refresh_from_db()
    assert (order.fee_refunded, order.platform_fee_refunded) == (5, 5)
    assert (untouched.fee_refunded, untouched.platform_fee_refunded) == (0, 0)
