"""The ledger's writes: accounts, transfers, two-phase transfers and the database's own guards."""

import re

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from stall.core.money import InvalidAmount, InvalidCurrency
from stall.ledger.errors import (
    CurrencyMismatch,
    InsufficientFunds,
    LedgerError,
    TransferAlreadyResolved,
    TransferExistsWithDifferentFields,
    TransferNotPending,
)
from stall.ledger.models import Account, AccountKind, Transfer, TransferState
from stall.ledger.selectors import account_balance, account_sums_from_transfers, account_transfers
from stall.ledger.services import account_open, transfer_create, transfer_post, transfer_void

pytestmark = pytest.mark.django_db


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def totals(account: Account) -> dict[str, int]:
    account.refresh_from_db()
    return {
        "debits_posted": account.debits_posted,
        "credits_posted": account.credits_posted,
        "debits_pending": account.debits_pending,
        "credits_pending": account.credits_pending,
    }


def zero() -> dict[str, int]:
    return {"debits_posted": 0, "credits_posted": 0, "debits_pending": 0, "credits_pending": 0}


@pytest.fixture
def clearing():
    return account_open(kind=AccountKind.PROCESSOR_CLEARING, owner="sandbox", currency="USD")


@pytest.fixture
def wallet():
    return account_open(kind=AccountKind.BUYER_WALLET, owner="cus_1", currency="USD")


@pytest.fixture
def balance():
    return account_open(kind=AccountKind.STORE_BALANCE, owner="store_1", currency="USD")


def fund(wallet: Account, clearing: Account, amount: int, key: str = "topup") -> Transfer:
    return transfer_create(idempotency_key=key, debit_account=clearing, credit_account=wallet, amount=amount, code="top_up")


# --- accounts ---------------------------------------------------------------------------------


def test_account_open_returns_the_same_account_every_time():
    """Opening an account twice for one kind, owner and currency gives the same row."""
    first = account_open(kind="buyer_wallet", owner="cus_1", currency="usd")
    second = account_open(kind=AccountKind.BUYER_WALLET, owner="cus_1", currency="USD")
    assert first.pk == second.pk
    assert Account.objects.count() == 1
    assert (first.kind, first.owner, first.currency) == ("buyer_wallet", "cus_1", "USD")


def test_account_open_keeps_currencies_and_owners_apart():
    """Another currency or another owner is another account."""
    usd = account_open(kind=AccountKind.BUYER_WALLET, owner="cus_1", currency="USD")
    krw = account_open(kind=AccountKind.BUYER_WALLET, owner="cus_1", currency="KRW")
    other = account_open(kind=AccountKind.BUYER_WALLET, owner="cus_2", currency="USD")
    assert len({usd.pk, krw.pk, other.pk}) == 3


def test_account_open_guards_credit_balance_kinds_only():
    """Wallets, escrow and gift card liability may not go below zero; the others may."""
    guarded = {
        kind: account_open(kind=kind, owner="x", currency="USD").debits_must_not_exceed_credits
        for kind in AccountKind
    }
    assert {kind for kind, flag in guarded.items() if flag} == {
        AccountKind.BUYER_WALLET, AccountKind.STORE_PENDING, AccountKind.GIFT_CARD_LIABILITY
    }


def test_account_open_refuses_unknown_kinds_and_currencies():
    """An account needs a real kind and a real currency."""
    with pytest.raises(ValueError):
        account_open(kind="piggy_bank", owner="x", currency="USD")
    with pytest.raises(InvalidCurrency, match=exactly("Unknown currency: XYZ.")):
        account_open(kind=AccountKind.BUYER_WALLET, owner="x", currency="XYZ")
    assert Account.objects.count() == 0


# --- posted transfers -------------------------------------------------------------------------


def test_posted_transfer_moves_money_between_two_accounts(clearing, balance):
    """A posted transfer adds its amount to the debit side of one account and the credit side of the other."""
    transfer = transfer_create(
        idempotency_key="pay_1:sale", debit_account=clearing, credit_account=balance, amount=250,
        code="sale", reference="ord_1",
    )
    assert (transfer.state, transfer.two_phase, transfer.amount, transfer.currency) == ("posted", False, 250, "USD")
    assert transfer.resolved_at is not None
    assert totals(clearing) == {**zero(), "debits_posted": 250}
    assert totals(balance) == {**zero(), "credits_posted": 250}
    assert clearing.balance == 250  # debit-normal: the processor owes us this
    assert balance.balance == 250
    assert account_balance(kind="store_balance", owner="store_1", currency="USD").as_dict() == {"amount": 250, "currency": "USD"}
    assert list(account_transfers(account=balance)) == [transfer]


def test_replayed_transfer_returns_the_first_and_moves_nothing(clearing, balance):
    """The same idempotency key with the same fields returns the original transfer; money moves once."""
    first = transfer_create(idempotency_key="k", debit_account=clearing, credit_account=balance, amount=250, code="sale")
    again = transfer_create(idempotency_key="k", debit_account=clearing, credit_account=balance, amount=250, code="sale")
    assert again.pk == first.pk
    assert Transfer.objects.count() == 1
    assert totals(balance)["credits_posted"] == 250


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 251},
        {"code": "tip"},
        {"pending": True},
        {"swap": True},
    ],
)
def test_reused_key_with_other_fields_is_a_conflict(clearing, balance, change):
    """The same idempotency key with a different amount, code, phase or direction is refused; nothing moves."""
    transfer_create(idempotency_key="k", debit_account=clearing, credit_account=balance, amount=250, code="sale")
    debit, credit = (balance, clearing) if change.get("swap") else (clearing, balance)
    with pytest.raises(TransferExistsWithDifferentFields, match=exactly("A transfer with this idempotency key exists with different fields.")) as caught:
        transfer_create(
            idempotency_key="k", debit_account=debit, credit_account=credit,
            amount=change.get("amount", 250), code=change.get("code", "sale"), pending=change.get("pending", False),
        )
    assert (caught.value.code, caught.value.status) == ("idempotency_key_reused", 409)
    assert Transfer.objects.count() == 1
    assert totals(clearing) == {**zero(), "debits_posted": 250}
    assert totals(balance) == {**zero(), "credits_posted": 250}


@pytest.mark.parametrize(
    ("amount", "error", "message"),
    [
        (0, InvalidAmount, "Amount must be greater than zero."),
        (-5, InvalidAmount, "Amount cannot be negative."),
        (2.5, InvalidAmount, "Amount must be a whole number of minor units."),
        (10**12, InvalidAmount, "Amount is too large."),
    ],
)
def test_transfer_amount_must_be_positive_whole_minor_units(clearing, balance, amount, error, message):
    """Zero, negative, fractional and absurd amounts are refused before anything is written."""
    with pytest.raises(error, match=exactly(message)):
        transfer_create(idempotency_key="k", debit_account=clearing, credit_account=balance, amount=amount, code="sale")
    assert Transfer.objects.count() == 0
    assert totals(clearing) == zero()


def test_transfer_needs_two_different_accounts(balance):
    """An account cannot pay itself."""
    with pytest.raises(LedgerError, match=exactly("A transfer needs two different accounts.")):
        transfer_create(idempotency_key="k", debit_account=balance, credit_account=balance, amount=1, code="sale")
    assert Transfer.objects.count() == 0


def test_transfer_needs_one_currency(clearing):
    """Money does not cross currencies inside a transfer."""
    krw = account_open(kind=AccountKind.STORE_BALANCE, owner="store_1", currency="KRW")
    with pytest.raises(CurrencyMismatch, match=exactly("Cannot move USD into a KRW account.")) as caught:
        transfer_create(idempotency_key="k", debit_account=clearing, credit_account=krw, amount=1, code="sale")
    assert caught.value.code == "currency_mismatch"
    assert Transfer.objects.count() == 0


def test_transfer_needs_an_idempotency_key(clearing, balance):
    """Every transfer carries a key, so that a retry can never move money twice."""
    with pytest.raises(LedgerError, match=exactly("A transfer needs an idempotency key.")) as caught:
        transfer_create(idempotency_key="", debit_account=clearing, credit_account=balance, amount=1, code="sale")
    assert caught.value.param == "idempotency_key"
    assert Transfer.objects.count() == 0


# --- wallets ----------------------------------------------------------------------------------


def test_wallet_spends_down_to_exactly_zero(wallet, clearing, balance):
    """A wallet can spend everything it holds, to the last minor unit."""
    fund(wallet, clearing, 300)
    transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=300, code="spend")
    assert totals(wallet) == {**zero(), "credits_posted": 300, "debits_posted": 300}
    assert wallet.balance == 0


def test_wallet_spend_above_the_balance_is_refused_and_moves_nothing(wallet, clearing, balance):
    """A wallet spend of one unit more than the balance raises InsufficientFunds; no row changes."""
    fund(wallet, clearing, 300)
    with pytest.raises(InsufficientFunds, match=exactly("The balance is too low for this payment.")) as caught:
        transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=301, code="spend")
    assert (caught.value.code, caught.value.status) == ("insufficient_funds", 402)
    assert totals(wallet) == {**zero(), "credits_posted": 300}
    assert totals(balance) == zero()
    assert not Transfer.objects.filter(idempotency_key="spend").exists()


def test_pending_debits_hold_wallet_money(wallet, clearing, balance):
    """A pending spend holds its amount: the wallet cannot spend it again until it is voided."""
    fund(wallet, clearing, 500)
    hold = transfer_create(idempotency_key="hold", debit_account=wallet, credit_account=balance, amount=400, code="spend", pending=True)
    assert Account.objects.get(pk=wallet.pk).available == 100
    with pytest.raises(InsufficientFunds):
        transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=101, code="spend")
    transfer_void(transfer=hold)
    transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=500, code="spend")
    assert totals(wallet) == {**zero(), "credits_posted": 500, "debits_posted": 500}


def test_pending_credits_cannot_be_spent(wallet, clearing, balance):
    """Money on its way into a wallet (a pending credit) is not spendable until posted."""
    incoming = transfer_create(idempotency_key="in", debit_account=clearing, credit_account=wallet, amount=500, code="top_up", pending=True)
    with pytest.raises(InsufficientFunds):
        transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=1, code="spend")
    transfer_post(transfer=incoming)
    transfer_create(idempotency_key="spend", debit_account=wallet, credit_account=balance, amount=500, code="spend")
    assert Account.objects.get(pk=wallet.pk).balance == 0


def test_database_refuses_an_overdraft_even_without_the_service(wallet, clearing):
    """The CHECK constraint itself refuses a wallet row whose debits exceed its credits."""
    fund(wallet, clearing, 300)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=wallet.pk).update(debits_posted=301)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=wallet.pk).update(debits_posted=200, debits_pending=101)
    Account.objects.filter(pk=wallet.pk).update(debits_posted=200, debits_pending=100)  # exactly the credits: allowed
    assert totals(wallet) == {**zero(), "credits_posted": 300, "debits_posted": 200, "debits_pending": 100}


def test_database_refuses_negative_totals(balance):
    """No account total can be negative, whatever the account kind."""
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=balance.pk).update(credits_posted=F("credits_posted") - 1)
    assert totals(balance) == zero()


def test_database_refuses_a_non_positive_or_self_transfer(clearing, balance):
    """The transfer table's CHECKs refuse zero amounts, self-transfers and a pending single-phase row."""
    base = {"debit_account": clearing, "credit_account": balance, "amount": 1, "currency": "USD", "code": "x", "state": TransferState.POSTED}
    for key, change in [("a", {"amount": 0}), ("b", {"credit_account": clearing}), ("c", {"state": TransferState.PENDING})]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Transfer.objects.create(idempotency_key=key, **{**base, **change})
    assert Transfer.objects.count() == 0


# --- two-phase transfers ----------------------------------------------------------------------


def test_pending_transfer_posts_once(clearing, balance):
    """Posting moves a pending amount to posted on both accounts; posting again changes nothing."""
    pending = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    assert (pending.state, pending.two_phase, pending.resolved_at) == ("pending", True, None)
    assert totals(clearing) == {**zero(), "debits_pending": 700}
    assert totals(balance) == {**zero(), "credits_pending": 700}

    posted = transfer_post(transfer=pending)
    assert (posted.pk, posted.state) == (pending.pk, "posted")
    assert posted.resolved_at is not None
    replay = transfer_post(transfer=pending)
    assert (replay.pk, replay.state, replay.resolved_at) == (pending.pk, "posted", posted.resolved_at)
    assert totals(clearing) == {**zero(), "debits_posted": 700}
    assert totals(balance) == {**zero(), "credits_posted": 700}


def test_pending_transfer_voids_once(clearing, balance):
    """Voiding releases the pending amounts; voiding again changes nothing."""
    pending = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    voided = transfer_void(transfer=pending)
    assert voided.state == "voided"
    assert transfer_void(transfer=pending).state == "voided"
    assert totals(clearing) == zero()
    assert totals(balance) == zero()


def test_voided_transfer_cannot_be_posted(clearing, balance):
    """A voided transfer stays voided: posting it raises TransferAlreadyResolved and moves nothing."""
    pending = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    transfer_void(transfer=pending)
    with pytest.raises(TransferAlreadyResolved, match=exactly("The transfer was already voided.")) as caught:
        transfer_post(transfer=pending)
    assert (caught.value.code, caught.value.status) == ("transfer_already_resolved", 409)
    assert Transfer.objects.get(pk=pending.pk).state == "voided"
    assert totals(balance) == zero()


def test_posted_transfer_cannot_be_voided(clearing, balance):
    """A posted two-phase transfer cannot be voided afterwards."""
    pending = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    transfer_post(transfer=pending)
    with pytest.raises(TransferAlreadyResolved, match=exactly("The transfer was already posted.")):
        transfer_void(transfer=pending)
    assert totals(balance) == {**zero(), "credits_posted": 700}


def test_single_phase_transfer_cannot_be_posted_or_voided(clearing, balance):
    """Only a transfer created pending can be posted or voided."""
    transfer = transfer_create(idempotency_key="k", debit_account=clearing, credit_account=balance, amount=1, code="sale")
    with pytest.raises(TransferNotPending, match=exactly("Only a pending transfer can be posted or voided.")):
        transfer_post(transfer=transfer)
    with pytest.raises(TransferNotPending):
        transfer_void(transfer=transfer)
    assert totals(balance) == {**zero(), "credits_posted": 1}


def test_replay_of_a_pending_create_after_posting_returns_it_unchanged(clearing, balance):
    """Replaying the create of a transfer that has since been posted returns it and moves nothing."""
    pending = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    transfer_post(transfer=pending)
    again = transfer_create(idempotency_key="p", debit_account=clearing, credit_account=balance, amount=700, code="pledge", pending=True)
    assert (again.pk, again.state) == (pending.pk, "posted")
    assert totals(balance) == {**zero(), "credits_posted": 700}


def test_account_sums_from_transfers_match_the_running_totals(wallet, clearing, balance):
    """The audit sums recomputed from transfers equal the totals kept on the account rows."""
    fund(wallet, clearing, 1000)
    transfer_create(idempotency_key="s1", debit_account=wallet, credit_account=balance, amount=100, code="spend")
    held = transfer_create(idempotency_key="s2", debit_account=wallet, credit_account=balance, amount=200, code="spend", pending=True)
    dropped = transfer_create(idempotency_key="s3", debit_account=wallet, credit_account=balance, amount=300, code="spend", pending=True)
    transfer_create(idempotency_key="s4", debit_account=wallet, credit_account=balance, amount=50, code="spend", pending=True)
    transfer_post(transfer=held)
    transfer_void(transfer=dropped)
    for account in (wallet, clearing, balance):
        assert account_sums_from_transfers(account=account) == totals(account)
    assert totals(wallet) == {"debits_posted": 300, "credits_posted": 1000, "debits_pending": 50, "credits_pending": 0}
