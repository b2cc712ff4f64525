"""Wallet and tab flows under random sequences of top-ups, spends, tab purchases, settlements and
refunds.

A rule-based state machine (hypothesis) drives the real services (``wallet_top_up``,
``checkout_confirm`` from the wallet and on the tab, ``tab_settle``, ``tab_settle_and_buy``,
``refund_create``, the overdue sweep) against the real database, for two buyers at two stores, and
keeps its own model of where every cent is: each wallet's balance and what its fee pool still
owes, each tab's debt and limit, each order's amounts and fee shares, each store's and the
platform's balance. The model works out card fees, fee shares (pool × spend ÷ balance, half up),
settlement shares and refund shares with its own arithmetic, never by calling the code's.

For every call the model predicts whether the services must refuse it (WalletEmpty,
TabLimitReached, TabOverdue, a tab with nothing to settle, a refund too large or of an order
refunded in full, a top-up out of bounds) and the real outcome must be exactly that prediction;
a refusal must leave no row behind. After every step the database must equal the model, the fee
pools must add up (fees charged on a wallet's sales net of refunds, plus what its pool still owes,
are the card fees that went into it), no pool may go below zero or hold fees for an empty wallet,
each store's balance must be the sum of its orders' nets, no tab may owe more than its limit, and
debits must equal credits. At the end of each sequence every account must equal the sums of its
transfers. Each sequence runs inside a savepoint that is rolled back, so sequences are independent.

A finding of this machine, fixed: a tab sale refunded after its tab was settled gave all of the
refund to the buyer's wallet but left the sale's share of the settlement's card fee on the store,
which could end below zero by that share. Its share now goes with the money to the wallet's fee
pool, as a wallet sale's does, taken on what is left of the sale so the last refund takes all of
it (a part refunded before the settlement carries none).
"""

import sys
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stall.accounts.services import buyer_for_email
from stall.catalog.models import PriceType
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.services import account_ids_forget
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.errors import RefundInvalid
from stall.payments.models import Payment, Refund
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.errors import TabLimitReached, TabOverdue, TopUpInvalid, WalletEmpty
from stall.wallets.models import Tab, TabStatus, Wallet
from stall.wallets.services import (
    tab_settle,
    tab_settle_and_buy,
    tabs_settle_overdue,
    wallet_top_up,
)

from .conftest import assert_ledger_balanced

BUYERS = ["ana@example.com", "ben@example.com"]
STORES = 2
PRICES = [1, 25, 99, 137, 300, 1250]  # a fixed-price product of each at each store
# The wallet and tab settings the test runs with (the defaults), and what the model takes them
# to be in cents, with the sandbox card's minimum charge.
SETTINGS = {
    "STALL_PLATFORM_FEE_BPS": 250,  # an odd share, so the platform fee rounds too
    "STALL_TAB_FIRST_LIMIT": "1", "STALL_TAB_LIMIT": "5", "STALL_TOP_UP_MIN": "5", "STALL_TOP_UP_MAX": "200",
    "STALL_TAB_SETTLE_AFTER_DAYS": 30, "STALL_TAB_BLOCK_WHEN_OVERDUE": True,
}
PLATFORM_BPS = SETTINGS["STALL_PLATFORM_FEE_BPS"]
FIRST_LIMIT, LATER_LIMIT = 100, 500
TOP_UP_MIN, TOP_UP_MAX = 500, 20000
CARD_MINIMUM = 50
REFUSALS = (WalletEmpty, TabLimitReached, TabOverdue, TopUpInvalid, RefundInvalid)

top_ups = st.integers(TOP_UP_MIN - 1, TOP_UP_MAX + 1)  # the bounds and just outside them
buyers = st.integers(0, len(BUYERS) - 1)
stores = st.integers(0, STORES - 1)
methods = st.sampled_from(["wallet", "tab"])
baskets = st.lists(
    st.tuples(st.sampled_from(PRICES), st.integers(1, 2)), min_size=1, max_size=2,
    unique_by=lambda item: item[0],
)

# Every account with who it belongs to (a fee pool's buyer through its wallet) and the limit of
# the open tab it is the account of, if any: read after every step, with the orders.
ACCOUNTS_SQL = (
    "SELECT a.kind, COALESCE(w.buyer_id, a.owner), a.debits_posted, a.credits_posted, a.debits_pending,"
    " a.credits_pending, a.debit_limit,"
    f" (SELECT t.{connection.ops.quote_name('limit')} FROM {Tab._meta.db_table} t"
    "  WHERE t.account_id = a.id AND t.status = 'open')"
    f" FROM {Account._meta.db_table} a LEFT JOIN {Wallet._meta.db_table} w"
    " ON a.kind = 'fee_pool' AND w.id = a.owner"
)
ORDER_FIELDS = ("total", "refunded", "fee", "fee_refunded", "platform_fee", "platform_fee_refunded")
ORDERS_SQL = (
    "SELECT id, amount_total, amount_refunded, fee, fee_refunded, platform_fee, platform_fee_refunded"
    f" FROM {Order._meta.db_table}"
)
# The rows a refusal must not add to.
COUNTS_SQL = "SELECT " + ", ".join(
    f"(SELECT COUNT(*) FROM {model._meta.db_table})"
    for model in (Transfer, Payment, Order, Refund, Tab, Wallet)
)


@dataclass(frozen=True)
class Row:
    """An account's row as ACCOUNTS_SQL reads it."""

    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    debit_limit: int | None
    open_tab_limit: int | None

    def __getitem__(self, index: int) -> int:
        return (self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending)[index]

    @property
    def balance(self) -> int:
        """What a credit-normal account holds to spend (a wallet, a store's balance)."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def owed(self) -> int:
        """What a debit-normal account owes (a tab, a fee pool)."""
        return self.debits_posted + self.debits_pending - self.credits_posted


NO_ROW = Row(0, 0, 0, 0, None, None)  # an account not opened yet


# --- the model's arithmetic, written here and not imported --------------------------------------


def share(total: int, part: int, whole: int) -> int:
    """``total × part ÷ whole`` rounded half up (0 of nothing)."""
    if not total or not whole:
        return 0
    return (2 * total * part + whole) // (2 * whole)


def card_fee(amount: int) -> int:
    """The sandbox card's fee in USD: 2.9% rounded half up, plus 30¢."""
    return share(29, amount, 1000) + 30


def platform_fee(amount: int) -> int:
    return share(PLATFORM_BPS, amount, 10_000)


@dataclass
class BuyerModel:
    email: str
    wallet: int = 0  # what the wallet holds
    pool: int = 0  # card fees its pool still owes
    pool_in: int = 0  # card fees ever put into the pool
    card_fees: int = 0  # what the card network took for all the buyer's top-ups and settlements
    tab_open: bool = False
    tab: int = 0  # the serial of the open (or last) tab
    owed: int = 0  # what the tab account owes
    limit: int | None = None  # the tab account's debit limit (none before the first tab)
    overdue: bool = False
    notified: bool = False
    settled_before: bool = False  # a tab of theirs was paid by card: later tabs may run higher


@dataclass
class OrderModel:
    pk: str
    buyer: int
    store: int
    rail: str
    tab: int  # the serial of the tab it was bought on (0 for the wallet)
    total: int
    refunded: int = 0
    fee: int = 0
    fee_refunded: int = 0
    platform_fee: int = 0
    platform_fee_refunded: int = 0

    def columns(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in ORDER_FIELDS)


class WalletFlowMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._savepoint = transaction.atomic()
        self._savepoint.__enter__()
        # The last sequence's rollback took the accounts whose ids the ledger remembers.
        account_ids_forget()
        self.buyer_rows = [buyer_for_email(email=email) for email in BUYERS]
        self.store_rows = [StoreFactory() for _ in range(STORES)]
        self.products = [
            {price: ProductFactory(store=store, amount=price) for price in PRICES}
            for store in self.store_rows
        ]
        self.any_amount = [  # pay what you want, from 1¢
            ProductFactory(store=store, amount=1, price_type=PriceType.PAY_WHAT_YOU_WANT)
            for store in self.store_rows
        ]
        self.buyers = [BuyerModel(email) for email in BUYERS]
        self.orders: list[OrderModel] = []
        self.stores = [0] * STORES
        self.platform = 0
        self.tabs = 0

    def teardown(self):
        try:
            # Hypothesis tears down in a `finally`: after a failed step, let its error stand.
            if sys.exception() is None:
                assert_ledger_balanced()
        finally:
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)
            account_ids_forget()

    # --- predictions and outcomes --------------------------------------------------------------

    def _counts(self) -> tuple[int, ...]:
        with connection.cursor() as cursor:
            cursor.execute(COUNTS_SQL)
            return cursor.fetchone()

    def _call(self, expected: tuple[type, str] | None, call):
        """Run ``call``; it must raise exactly the ``expected`` refusal (type and code), leaving no
        row behind, or succeed when None is expected. Returns its result, or None when refused."""
        note(f"expecting {expected or 'success'}")
        before = self._counts()
        try:
            result = call()
        except REFUSALS as error:
            assert (type(error), error.code) == expected, f"{type(error).__name__} {error.code}: {error}"
            assert self._counts() == before, "a refusal left rows behind"
            return None
        assert expected is None, f"succeeded, though the model expected {expected}"
        return result

    def _tab_refusal(self, model: BuyerModel, amount: int) -> tuple[type, str] | None:
        if model.tab_open and model.overdue:
            return TabOverdue, "tab_overdue"
        limit = model.limit if model.tab_open else self._next_limit(model)
        if model.owed + amount > limit:
            return TabLimitReached, "tab_limit_reached"
        return None

    def _next_limit(self, model: BuyerModel) -> int:
        return LATER_LIMIT if model.settled_before else FIRST_LIMIT

    def _spend_refusal(self, model: BuyerModel, method: str, amount: int) -> tuple[type, str] | None:
        if method == "wallet":
            return (WalletEmpty, "insufficient_funds") if amount > model.wallet else None
        return self._tab_refusal(model, amount)

    def _settle_refusal(self, model: BuyerModel) -> tuple[type, str] | None:
        return None if model.tab_open and model.owed > 0 else (TopUpInvalid, "no_open_tab")

    def _sold(self, buyer: int, store: int, method: str, order, amount: int) -> None:
        """An order was paid from the wallet or put on the tab: move the model's money as the sale did."""
        model = self.buyers[buyer]
        sale = OrderModel(order.pk, buyer, store, method, 0, amount, platform_fee=platform_fee(amount))
        if method == "wallet":
            sale.fee = share(model.pool, amount, model.wallet)
            model.wallet -= amount
            model.pool -= sale.fee
        else:
            if not model.tab_open:
                self.tabs += 1
                model.tab_open, model.tab, model.overdue, model.notified = True, self.tabs, False, False
                model.limit = self._next_limit(model)
            sale.tab = model.tab
            model.owed += amount
        self.orders.append(sale)
        self.stores[store] += amount - sale.fee - sale.platform_fee
        self.platform += sale.platform_fee
        note(f"sold {sale}")

    def _settled(self, buyer: int, payment, plus: int) -> None:
        """A card charge paid the open tab: share its fee among the tab's sales by what each still
        is, the rest of the charge and of the fee into the wallet and its pool; close the tab."""
        model = self.buyers[buyer]
        charge = max(model.owed + plus, CARD_MINIMUM)
        fee = card_fee(charge)
        assert (payment.status, payment.amount, payment.fee) == ("succeeded", charge, fee)
        to_sales = share(fee, model.owed, charge)
        sales = sorted((o for o in self.orders if o.rail == "tab" and o.tab == model.tab), key=lambda o: o.pk)
        kept = [o.total - o.refunded for o in sales]
        allocated = running = 0
        for sale, left in zip(sales, kept, strict=True):
            running += left
            upto = share(to_sales, running, sum(kept))
            sale.fee += upto - allocated
            self.stores[sale.store] -= upto - allocated
            allocated = upto
        model.wallet += charge - model.owed
        model.pool += fee - allocated
        model.pool_in += fee - allocated
        model.card_fees += fee
        model.owed, model.tab_open, model.limit, model.settled_before = 0, False, 0, True

    # --- rules ---------------------------------------------------------------------------------

    @initialize(amounts=st.lists(st.none() | top_ups, min_size=len(BUYERS), max_size=len(BUYERS)))
    def fund(self, amounts):
        """Start most sequences with money in a wallet or two."""
        for buyer, amount in enumerate(amounts):
            if amount is not None:
                self.top_up(buyer, amount, at=None)

    @rule(buyer=buyers, amount=top_ups, at=st.none() | stores)
    def top_up(self, buyer, amount, at):
        """Top up with the sandbox card, from a store's page or none; out of bounds is refused."""
        model = self.buyers[buyer]
        expected = None if TOP_UP_MIN <= amount <= TOP_UP_MAX else (TopUpInvalid, "invalid_top_up")
        payment = self._call(expected, lambda: wallet_top_up(
            buyer=self.buyer_rows[buyer], amount=amount, currency="USD", payment_method="sandbox_visa",
            store=None if at is None else self.store_rows[at],
        ))
        if payment is None:
            return
        assert (payment.status, payment.amount, payment.fee) == ("succeeded", amount, card_fee(amount))
        model.wallet += amount
        model.pool += payment.fee
        model.pool_in += payment.fee
        model.card_fees += payment.fee

    @rule(buyer=buyers, store=stores, method=methods, basket=baskets)
    def buy(self, buyer, store, method, basket):
        """Buy one or two fixed-price products (a cent, a quarter, odd amounts), some several times."""
        items = [CheckoutItem(product_id=self.products[store][price].pk, quantity=n) for price, n in basket]
        self._buy(buyer, store, method, items)

    @rule(buyer=buyers, store=stores, method=methods, delta=st.integers(-2, 2))
    def buy_near_the_edge(self, buyer, store, method, delta):
        """Pay what you want: just under, exactly or just over what the wallet holds or what the
        tab (open, or the one the purchase would open) has left."""
        model = self.buyers[buyer]
        if method == "wallet":
            room = model.wallet
        else:
            room = (model.limit if model.tab_open else self._next_limit(model)) - model.owed
        amount = max(1, room + delta)
        self._buy(buyer, store, method, [CheckoutItem(product_id=self.any_amount[store].pk, amount=amount)])

    def _buy(self, buyer, store, method, items) -> None:
        checkout = checkout_create(store=self.store_rows[store], email=BUYERS[buyer], items=items)
        amount = checkout.amount_total
        note(f"{BUYERS[buyer]} pays {amount} by {method} at store {store}")
        expected = self._spend_refusal(self.buyers[buyer], method, amount)
        paid = self._call(expected, lambda: checkout_confirm(
            checkout_id=checkout.pk, payment_method=method, buyer=self.buyer_rows[buyer],
        ))
        if paid is not None:
            assert paid.status == "complete"
            self._sold(buyer, store, method, paid.order, amount)

    def _tab_owner(self, data) -> int:
        """A buyer whose tab owes something, the interesting one, when there is one."""
        owing = [i for i, model in enumerate(self.buyers) if model.tab_open and model.owed > 0]
        return data.draw(st.sampled_from(owing or range(len(BUYERS))))

    @rule(data=st.data())
    def settle(self, data):
        """Settle the tab by card: refused when there is no open tab or it owes nothing."""
        buyer = self._tab_owner(data)
        model = self.buyers[buyer]
        note(f"{BUYERS[buyer]} settles a tab owing {model.owed} (open: {model.tab_open})")
        payment = self._call(self._settle_refusal(model), lambda: tab_settle(
            buyer=self.buyer_rows[buyer], currency="USD", payment_method="sandbox_visa",
        ))
        if payment is not None:
            self._settled(buyer, payment, plus=0)

    @precondition(lambda self: any(model.tab_open for model in self.buyers))
    @rule(store=stores, price=st.sampled_from(PRICES), data=st.data())
    def settle_and_buy(self, store, price, data):
        """One card charge pays the tab and a purchase, which is then paid from the wallet."""
        buyer = self._tab_owner(data)
        model = self.buyers[buyer]
        product = self.products[store][price]
        checkout = checkout_create(
            store=self.store_rows[store], email=BUYERS[buyer], items=[CheckoutItem(product_id=product.pk)]
        )
        note(f"{BUYERS[buyer]} settles a tab owing {model.owed} (open: {model.tab_open}) and buys {price}")
        done = self._call(self._settle_refusal(model), lambda: tab_settle_and_buy(
            buyer=self.buyer_rows[buyer], checkout_id=checkout.pk, payment_method="sandbox_visa",
        ))
        if done is None:
            return
        payment, paid = done
        self._settled(buyer, payment, plus=price)
        assert paid.status == "complete"
        self._sold(buyer, store, "wallet", paid.order, price)

    @precondition(lambda self: self.orders)
    @rule(how=st.sampled_from(["all", "part", "part", "too_much", "again"]), data=st.data())
    def refund(self, how, data):
        """Refund an order in full, in part or by more than is left (refused), or one refunded in
        full already (refused too)."""
        refunded = [o for o in self.orders if o.refunded == o.total]
        refundable = [o for o in self.orders if o.refunded < o.total]
        sale = data.draw(st.sampled_from((refunded if how == "again" else refundable) or self.orders))
        left = sale.total - sale.refunded
        part = data.draw(st.integers(1, max(1, left)))
        amount = {"all": None, "again": None, "part": part, "too_much": left + 1}[how]
        if not left:
            expected = RefundInvalid, "charge_already_refunded"
        elif how == "too_much":
            expected = RefundInvalid, "amount_too_large"
        else:
            expected = None
        note(f"refund {amount} of {sale}")
        refund = self._call(expected, lambda: refund_create(
            store=self.store_rows[sale.store], order_id=sale.pk, amount=amount,
        ))
        if refund is not None:
            assert (refund.status, refund.amount) == ("succeeded", left if amount is None else amount)
            self._refunded(sale, refund.amount)

    def _refunded(self, sale: OrderModel, amount: int) -> None:
        """Give ``amount`` of a sale back: a wallet sale's to the wallet, with its part of the
        sale's fee share back to the pool; a tab sale's off the open tab it was bought on, or (that
        tab settled) to the wallet with its part of what is left of the sale's fee share.
        The platform gives its fee back in proportion."""
        model = self.buyers[sale.buyer]
        after = sale.refunded + amount
        fee_back = 0
        if sale.rail == "wallet":
            fee_back = share(sale.fee, after, sale.total) - share(sale.fee, sale.refunded, sale.total)
            model.wallet += amount
            model.pool += fee_back
        elif model.tab_open and model.tab == sale.tab:
            model.owed -= amount
        else:
            fee_back = share(sale.fee - sale.fee_refunded, amount, sale.total - sale.refunded)
            model.wallet += amount
            model.pool += fee_back
            model.pool_in += fee_back
        platform_back = share(sale.platform_fee, after, sale.total) - share(
            sale.platform_fee, sale.refunded, sale.total
        )
        sale.refunded = after
        sale.fee_refunded += fee_back
        sale.platform_fee_refunded += platform_back
        self.stores[sale.store] -= amount - fee_back - platform_back
        self.platform -= platform_back

    @precondition(lambda self: any(model.tab_open for model in self.buyers))
    @rule()
    def a_month_passes(self):
        """Every open tab is now older than STALL_TAB_SETTLE_AFTER_DAYS, and the periodic
        settlement of overdue tabs runs. With no saved card it settles none: a tab that owes
        nothing is closed, one that owes stays open, takes no more purchases (TabOverdue) and its
        buyer is told, once."""
        Tab.objects.filter(status=TabStatus.OPEN).update(opened_at=F("opened_at") - timedelta(days=31))
        expected = {"settled": 0, "failed": 0, "notified": 0, "closed": 0}
        for model in self.buyers:
            if not model.tab_open:
                continue
            model.overdue = True
            if model.owed <= 0:
                expected["closed"] += 1
                model.tab_open, model.limit = False, 0
            elif not model.notified:
                expected["notified"] += 1
                model.notified = True
        assert tabs_settle_overdue() == expected

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def money_is_where_the_model_says(self):
        # Two plain SQL reads: this runs after every step.
        with connection.cursor() as cursor:
            cursor.execute(ACCOUNTS_SQL)
            accounts = cursor.fetchall()
            cursor.execute(ORDERS_SQL)
            orders = {pk: columns for pk, *columns in cursor.fetchall()}
        rows = {(kind, owner): Row(*rest) for kind, owner, *rest in accounts}
        assert len(rows) == len(accounts), "two accounts of one kind for one owner"
        assert not [owner for _, owner in rows if owner.endswith(":test")], "test money in a real flow"
        totals = [sum(row[i] for row in rows.values()) for i in range(4)]
        assert totals[0] == totals[1], "posted debits and credits differ"
        assert totals[2] == totals[3], "pending debits and credits differ"
        # The rules the real rows must keep come first, so that a break shows as the rule it
        # breaks; then every figure is compared with the model's.
        for index in range(len(BUYERS)):
            self._check_buyer(index, rows, orders)
        for index in range(STORES):
            self._check_store(index, rows, orders)
        assert orders == {sale.pk: list(sale.columns()) for sale in self.orders}
        assert rows.get((AccountKind.PLATFORM_FEES, "platform"), NO_ROW).balance == self.platform

    def _check_buyer(self, index, rows, orders) -> None:
        model, buyer_id = self.buyers[index], self.buyer_rows[index].pk
        wallet = rows.get((AccountKind.BUYER_WALLET, buyer_id), NO_ROW)
        pool = rows.get((AccountKind.FEE_POOL, buyer_id), NO_ROW).owed
        tab = rows.get((AccountKind.BUYER_TAB, buyer_id), NO_ROW)
        assert pool >= 0, f"the fee pool of {model.email} went below zero: {pool}"
        assert wallet.balance or not pool, f"{model.email}'s empty wallet leaves {pool} of card fees unpaid"
        mine = [o for o in self.orders if o.buyer == index]
        charged = sum(orders[o.pk][2] - orders[o.pk][3] for o in mine if o.rail == "wallet")
        assert charged + pool == model.pool_in, f"the fee shares of {model.email}'s wallet do not add up"
        charged = sum(orders[o.pk][2] - orders[o.pk][3] for o in mine)
        assert charged + pool == model.card_fees, f"the card fees of {model.email} are not all paid or owed"
        over = tab.debit_limit is not None and tab.owed > tab.debit_limit
        assert not over, f"the tab of {model.email} owes {tab.owed}, over its limit"
        assert (wallet.balance, wallet.credits_pending, pool) == (model.wallet, 0, model.pool), model.email
        assert (tab.owed, tab.credits_pending, tab.debit_limit) == (model.owed, 0, model.limit), model.email
        assert tab.open_tab_limit == (model.limit if model.tab_open else None), f"open tab of {model.email}"

    def _check_store(self, index, rows, orders) -> None:
        balance = rows.get((AccountKind.STORE_BALANCE, self.store_rows[index].pk), NO_ROW).balance
        sales = [o for o in self.orders if o.store == index]
        nets = sum(self._net(orders[o.pk]) for o in sales)
        assert balance == nets, f"store {index}'s balance is {balance}, its orders' nets {nets}"
        assert balance >= 0, f"store {index}'s balance went below zero: {balance}"
        assert balance == self.stores[index], f"store {index}"

    @staticmethod
    def _net(columns) -> int:
        total, refunded, fee, fee_refunded, platform, platform_refunded = columns
        return total - refunded - (fee - fee_refunded) - (platform - platform_refunded)


@pytest.mark.django_db
def test_wallet_and_tab_flows_keep_every_cent_accounted_for():
    """For any sequence of top-ups, wallet spends and tab purchases of any price at two stores,
    settlements (alone or with a purchase), full and partial refunds, a month passing and the
    overdue sweep: the services refuse exactly what the model refuses and a refusal leaves nothing;
    wallets, fee pools, tabs, orders, stores and the platform hold what the model says; the fee
    shares of every wallet add up to the card fees that went into it, its pool never goes negative
    nor owes for an empty wallet; each store's balance is its orders' nets; no tab owes over its
    limit; debits equal credits and every account equals its transfers."""
    with override_settings(**SETTINGS):
        run_state_machine_as_test(
            WalletFlowMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=50,
                deadline=None,
                # The same sequences on every run, so CI is repeatable; no example database to carry.
                derandomize=True,
                database=None,
                # No shrinking: every try is a real database run, so a failure is reported as
                # found, its steps and notes printed. Add Phase.shrink locally for a minimal one.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
