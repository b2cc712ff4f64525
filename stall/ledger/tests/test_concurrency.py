"""The ledger and checkout under concurrent writers, on real connections (one per thread).

SQLite admits one writer at a time (IMMEDIATE transactions waiting on busy_timeout); PostgreSQL
locks account rows with SELECT … FOR UPDATE. Either way no update may be lost, no guarded account
overdrawn and no idempotency key used twice.
"""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from stall.core.errors import StallError
from stall.ledger.errors import InsufficientFunds
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.ledger.services import (
    Posting,
    account_open,
    transfer_create,
    transfers_post,
    transfers_settle,
)

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
PER_THREAD = 25


def in_threads(count: int, work) -> tuple[list, list]:
    """Run ``work(i)`` in ``count`` threads released at the same instant; return results and errors."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            errors[i] = exc
        finally:
            connection.close()  # each thread has its own connection; leave none open

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results, errors


def totals(account: Account) -> dict[str, int]:
    account.refresh_from_db()
    return {
        "debits_posted": account.debits_posted,
        "credits_posted": account.credits_posted,
        "debits_pending": account.debits_pending,
        "credits_pending": account.credits_pending,
    }


def test_concurrent_transfers_lose_no_update():
    """200 transfers from 8 threads into the same accounts all land: balances equal their sum."""
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner="sandbox", currency="USD")
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner="store_a", currency="USD")
    fees = account_open(kind=AccountKind.PROCESSOR_FEES, owner="sandbox", currency="USD")

    def work(i: int) -> int:
        moved = 0
        for n in range(PER_THREAD):
            amount = 100 + i * PER_THREAD + n  # every transfer a different amount, so a lost one shows
            transfer_create(idempotency_key=f"sale:{i}:{n}", debit_account=clearing, credit_account=balance, amount=amount, code="sale")
            transfer_create(idempotency_key=f"fee:{i}:{n}", debit_account=balance, credit_account=fees, amount=n + 1, code="processor_fee")
            moved += amount
        return moved

    results, errors = in_threads(THREADS, work)
    assert errors == [None] * THREADS
    sales = sum(results)
    fee_total = THREADS * sum(range(1, PER_THREAD + 1))
    assert Transfer.objects.count() == 2 * THREADS * PER_THREAD
    assert totals(clearing) == {"debits_posted": sales, "credits_posted": 0, "debits_pending": 0, "credits_pending": 0}
    assert totals(balance) == {"debits_posted": fee_total, "credits_posted": sales, "debits_pending": 0, "credits_pending": 0}
    assert totals(fees)["credits_posted"] == fee_total
    for account in (clearing, balance, fees):
        assert account_sums_from_transfers(account=account) == totals(account)


@pytest.mark.parametrize("pending", [False, True], ids=["posted", "pending"])
def test_wallet_funded_for_n_spends_allows_exactly_n(pending):
    """A wallet holding exactly 60 spends, raced by 200 attempts, pays 60 and refuses 140; it ends at 0."""
    spends, price = 60, 125
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner="sandbox", currency="USD")
    wallet = account_open(kind=AccountKind.BUYER_WALLET, owner="cus_a", currency="USD")
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner="store_a", currency="USD")
    transfer_create(idempotency_key="top_up", debit_account=clearing, credit_account=wallet, amount=spends * price, code="top_up")

    def work(i: int) -> Counter:
        outcome = Counter()
        for n in range(PER_THREAD):
            try:
                transfer_create(
                    idempotency_key=f"spend:{i}:{n}", debit_account=wallet, credit_account=balance,
                    amount=price, code="spend", pending=pending,
                )
            except InsufficientFunds:
                outcome["refused"] += 1
            else:
                outcome["paid"] += 1
        return outcome

    results, errors = in_threads(THREADS, work)
    assert errors == [None] * THREADS
    outcome = sum(results, Counter())
    assert outcome == {"paid": spends, "refused": THREADS * PER_THREAD - spends}
    wallet.refresh_from_db()
    assert wallet.available == 0
    side = "pending" if pending else "posted"
    assert totals(wallet) == {
        "credits_posted": spends * price, "credits_pending": 0,
        "debits_posted": 0 if pending else spends * price, "debits_pending": spends * price if pending else 0,
    }
    assert totals(balance)[f"credits_{side}"] == spends * price
    assert Transfer.objects.filter(code="spend").count() == spends
    for account in (clearing, wallet, balance):
        assert account_sums_from_transfers(account=account) == totals(account)


def test_concurrent_replays_of_one_key_create_one_transfer():
    """Eight threads sending the same transfer at once create it once and all get the same transfer back."""
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner="sandbox", currency="USD")
    balance = account_open(kind=AccountKind.STORE_BALANCE, owner="store_a", currency="USD")
    rounds = 10

    for round_ in range(rounds):
        def work(i: int, key=f"pay_{round_}:sale") -> str:
            return transfer_create(idempotency_key=key, debit_account=clearing, credit_account=balance, amount=500, code="sale").pk

        results, errors = in_threads(THREADS, work)
        assert errors == [None] * THREADS
        assert len(set(results)) == 1
        assert Transfer.objects.filter(idempotency_key=f"pay_{round_}:sale").count() == 1

    assert Transfer.objects.count() == rounds
    assert totals(balance)["credits_posted"] == rounds * 500
    assert account_sums_from_transfers(account=balance) == totals(balance)


def test_concurrent_confirms_of_one_checkout_charge_once():
    """Two threads confirming the same checkout make one payment, one order and one sale transfer.

    The loser gets the checkout back (complete, or open with the payment under way) or a clean
    domain error; nothing like an IntegrityError leaks out.
    """
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.orders.checkout_pay import checkout_confirm
    from stall.orders.models import Order
    from stall.payments.models import Payment
    from stall.testing import ProductFactory, StoreFactory

    store = StoreFactory()
    product = ProductFactory(store=store, amount=300)
    rounds = 6
    for _ in range(rounds):
        checkout = checkout_create(store=store, email="racer@example.com", items=[CheckoutItem(product_id=product.pk)])
        results, errors = in_threads(2, lambda i: checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa"))
        unexpected = [e for e in errors if e is not None and not isinstance(e, StallError)]
        assert unexpected == []
        returned = [r.pk for r in results if r is not None]
        assert returned and set(returned) == {checkout.pk}
        assert Payment.objects.filter(checkout=checkout).count() == 1
        assert Order.objects.filter(checkout=checkout).count() == 1
        payment = Payment.objects.get(checkout=checkout)
        assert payment.status == "succeeded"
        assert Transfer.objects.filter(idempotency_key=f"{payment.pk}:sale").count() == 1

    balance = Account.objects.get(kind=AccountKind.STORE_BALANCE, owner=store.pk)
    assert Transfer.objects.filter(code="sale").aggregate(s=Sum("amount"))["s"] == rounds * 300
    assert account_sums_from_transfers(account=balance) == totals(balance)


def _settled(postings):
    transfers_settle(pending_ids=[], post=True, postings=postings)


@pytest.mark.parametrize("post", [
    pytest.param(lambda postings: transfers_post(postings=postings), id="one spend"),
    pytest.param(_settled, id="a group"),
])
def test_transfers_posted_at_once_over_shared_accounts_never_deadlock(post):
    """Each spend ends with one UPDATE of every account it moves (transfers_post; a renewal group
    or a campaign's chunk, transfers_settle): many at once, over the same hot accounts (a clearing
    account, a store's balance, the platform's fees) in changing combinations, must queue on
    their row locks, never deadlock. PostgreSQL locks the rows an UPDATE changes in the order it
    reaches them, which follows where each row's latest version lies, not its id: the rows are
    locked in id order first."""
    shared = [account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=f"rail_{n}", currency="USD") for n in range(4)]

    def work(i: int) -> int:
        moved = 0
        for n in range(PER_THREAD):
            # Each transaction moves money around a different subset of the shared accounts, in a
            # different order, as spends at one store with and without a fee share do.
            picked = [shared[(i + n + k) % len(shared)] for k in range(2 + (i + n) % 3)]
            postings = [
                Posting(f"ring:{i}:{n}:{k}", a.pk, b.pk, 1 + k, "USD", "sale", f"r{i}")
                for k, (a, b) in enumerate(zip(picked, picked[1:] + picked[:1]))
            ]
            with transaction.atomic():
                post(postings)
            moved += len(postings)
        return moved

    results, errors = in_threads(THREADS * 2, work)
    assert errors == [None] * (THREADS * 2)
    assert Transfer.objects.count() == sum(results)
    for account in shared:  # each account's totals are the sums of its transfers
        assert totals(account) == account_sums_from_transfers(account=account)


def test_an_account_opened_meanwhile_is_found_without_a_failed_insert():
    """Two first spends of a new store open its balance at once: the one whose read missed the
    other's account finds it, and no statement fails (a failed INSERT is an error in PostgreSQL's
    log, one per such race)."""
    inserted, done = threading.Event(), threading.Event()
    opened_first: list[str] = []

    def first() -> None:
        try:
            with transaction.atomic():
                opened_first.append(account_open(kind=AccountKind.STORE_BALANCE, owner="store_new", currency="USD").pk)
                inserted.set()
                done.wait(0.5)  # the other opening reads, misses this account, then inserts
        finally:
            connection.close()

    failed: list[str] = []

    def record_failures(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {sql[:60]}")
            raise

    thread = threading.Thread(target=first)
    thread.start()
    assert inserted.wait(10)
    try:
        with connection.execute_wrapper(record_failures):
            second = account_open(kind=AccountKind.STORE_BALANCE, owner="store_new", currency="USD")
    finally:
        done.set()
        thread.join(10)
    assert second.pk == opened_first[0]
    assert Account.objects.filter(kind=AccountKind.STORE_BALANCE, owner="store_new").count() == 1
    assert failed == []
