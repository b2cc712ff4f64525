"""A buyer's accounts are locked before the shared ones, by every transaction that moves their money.

A spend from the wallet locks the wallet and its fee pool first (the guarded debit), then, at its
end, the clearing account and the store's balance. A transaction that took a shared account first
and the buyer's after (a refund into the wallet or onto the tab) could hold what the spend waits for
while it waits for what the spend holds: on PostgreSQL one of the two was then killed as a deadlock
("deadlock detected", every time in both tests below before refunds locked the buyer's accounts
first). Each test stops a spend between its two locks, lets the other transaction run into it, and
only then lets the spend go on: both must finish. SQLite runs one write transaction at a time, so
there the other simply waits its turn and nothing can deadlock; the tests run there too, as a
check that both still go through.
"""

import threading
import time

import pytest
from django.db import connection

import stall.orders.spend
from stall.accounts.services import buyer_for_email
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Account
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.rails.wallet import wallet_for
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db(transaction=True)


def spend(*, store, product, buyer, method="wallet"):
    checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk)])
    return checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer).order


def waiting_for_a_lock(pid: int | None) -> bool:
    """Whether the PostgreSQL backend ``pid`` waits for a row lock (asked on this thread's own connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def spend_meeting(other, monkeypatch, **spend_kwargs) -> list:
    """Run a spend in one thread and ``other()`` in another, ``other`` starting once the spend has
    debited the wallet and before it posts to the shared accounts. On PostgreSQL the spend goes on
    once ``other`` waits for a row lock, and the meeting fails if it never does; on SQLite, where
    ``other`` queues for the one write transaction at BEGIN, at once. Returns the errors of both."""
    debited = threading.Event()
    other_pid: list = [None]
    met = [False]
    real_post = stall.orders.spend.transfers_post

    def post_when_the_other_waits(**kwargs):
        if threading.current_thread().name == "spend":
            debited.set()
            deadline = time.monotonic() + 10
            while connection.vendor == "postgresql" and time.monotonic() < deadline:
                if waiting_for_a_lock(other_pid[0]):
                    met[0] = True
                    break
                time.sleep(0.02)  # a poll with a deadline: the other thread is on its way
        return real_post(**kwargs)

    monkeypatch.setattr(stall.orders.spend, "transfers_post", post_when_the_other_waits)
    errors: list = []

    def run(work):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - handed to the test, which asserts there is none
            errors.append(exc)
        finally:
            connection.close()

    def the_other():
        assert debited.wait(timeout=10), "the spend never debited"
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            other_pid[0] = connection.connection.info.backend_pid
        other()

    threads = [
        threading.Thread(target=run, args=(lambda: spend(**spend_kwargs),), name="spend"),
        threading.Thread(target=run, args=(the_other,), name="other"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if connection.vendor == "postgresql":
        assert met[0], "the other transaction never waited for the spend's locks: they did not meet"
    return errors


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


@pytest.fixture
def shop():
    store = StoreFactory()
    post = ProductFactory(store=store, name="A 25¢ post", amount=25)
    buyer = buyer_for_email(email="reader@example.com")
    return store, post, buyer


def test_a_refund_into_the_wallet_and_a_spend_from_it_at_once_both_go_through(shop, monkeypatch):
    """The creator refunds one of a reader's unlocks while the reader unlocks another: the refund
    locks the reader's wallet before the store's balance, as the spend does, so neither is killed."""
    store, post, buyer = shop
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    first = spend(store=store, product=post, buyer=buyer)

    errors = spend_meeting(lambda: refund_create(store=store, order_id=first.pk), monkeypatch,
                           store=store, product=post, buyer=buyer)

    assert errors == []
    assert Order.objects.filter(store=store).count() == 2
    assert Order.objects.get(pk=first.pk).amount_refunded == 25
    assert wallet_for(buyer=buyer, currency="USD").account.balance == 1000 - 25
    assert_ledger_balanced()


def test_a_tab_refund_and_a_tab_spend_at_once_both_go_through(shop, monkeypatch):
    """The same with the tab: the refund takes the sale off the open tab while another goes on it."""
    store, post, buyer = shop
    first = spend(store=store, product=post, buyer=buyer, method="tab")

    errors = spend_meeting(lambda: refund_create(store=store, order_id=first.pk), monkeypatch,
                           store=store, product=post, buyer=buyer, method="tab")

    assert errors == []
    assert Order.objects.get(pk=first.pk).amount_refunded == 25
    assert_ledger_balanced()

