"""Ledger invariants under random sequences of transfers, posts, voids and replays (hypothesis).

A rule-based state machine drives the real services against the real database and keeps its own
model of what every account's four totals must be. After every step the account rows must equal
the model, each currency's debits must equal its credits and no guarded account may be
overdrawn; at the end of each sequence every account must also equal the sums recomputed from its
transfers. Each sequence runs inside a savepoint that is rolled back, so sequences are independent.
"""

from dataclasses import dataclass

import pytest
from django.db import transaction
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stall.ledger.errors import (
    CurrencyMismatch,
    InsufficientFunds,
    LedgerError,
    TransferAlreadyResolved,
    TransferExistsWithDifferentFields,
    TransferNotPending,
)
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.ledger.services import account_open, transfer_create, transfer_post, transfer_void

# (kind, owner, currency). Wallets and escrow are guarded: they may never be spent below zero.
ACCOUNTS = [
    (AccountKind.BUYER_WALLET, "cus_a", "USD"),
    (AccountKind.STORE_PENDING, "store_a", "USD"),
    (AccountKind.STORE_BALANCE, "store_a", "USD"),
    (AccountKind.PROCESSOR_CLEARING, "sandbox", "USD"),
    (AccountKind.BUYER_WALLET, "cus_a", "KRW"),
    (AccountKind.STORE_BALANCE, "store_a", "KRW"),
    (AccountKind.PROCESSOR_CLEARING, "sandbox", "KRW"),
]
SAME_CURRENCY_PAIRS = [
    (d, c) for d in range(len(ACCOUNTS)) for c in range(len(ACCOUNTS)) if d != c and ACCOUNTS[d][2] == ACCOUNTS[c][2]
]
GUARDED = [i for i, (kind, _, _) in enumerate(ACCOUNTS) if kind in (AccountKind.BUYER_WALLET, AccountKind.STORE_PENDING)]
CROSS_CURRENCY_PAIRS = [
    (d, c) for d in range(len(ACCOUNTS)) for c in range(len(ACCOUNTS)) if ACCOUNTS[d][2] != ACCOUNTS[c][2]
]
TOTALS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
amounts = st.integers(min_value=1, max_value=3000)
codes = st.sampled_from(["sale", "spend", "top_up"])


@dataclass
class Attempt:
    key: str
    debit: int
    credit: int
    amount: int
    code: str
    pending: bool
    pk: str = ""
    state: str = ""


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._savepoint = transaction.atomic()
        self._savepoint.__enter__()
        self.accounts = [account_open(kind=k, owner=o, currency=c) for k, o, c in ACCOUNTS]
        self.model = [dict.fromkeys(TOTALS, 0) for _ in ACCOUNTS]
        self.made: list[Attempt] = []  # transfers that exist
        self.refused: list[Attempt] = []  # creates refused for insufficient funds (their keys are unused)
        self.serial = 0

    def teardown(self):
        try:
            for index, account in enumerate(self.accounts):
                assert account_sums_from_transfers(account=account) == self.model[index], ACCOUNTS[index]
        finally:
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------------

    def _would_overdraw(self, debit: int, amount: int) -> bool:
        account, totals = self.accounts[debit], self.model[debit]
        return account.debits_must_not_exceed_credits and (
            totals["debits_posted"] + totals["debits_pending"] + amount > totals["credits_posted"]
        )

    def _create(self, attempt: Attempt) -> None:
        note(f"create {attempt}")
        overdraw = self._would_overdraw(attempt.debit, attempt.amount)
        before = Transfer.objects.count()
        try:
            transfer = transfer_create(
                idempotency_key=attempt.key, debit_account=self.accounts[attempt.debit],
                credit_account=self.accounts[attempt.credit], amount=attempt.amount, code=attempt.code,
                pending=attempt.pending,
            )
        except InsufficientFunds:
            assert overdraw, "InsufficientFunds raised though the account holds enough"
            assert Transfer.objects.count() == before
            self.refused.append(attempt)
            return
        assert not overdraw, "an overdrawing transfer was accepted"
        assert (transfer.amount, transfer.two_phase) == (attempt.amount, attempt.pending)
        attempt.pk, attempt.state = transfer.pk, transfer.state
        assert attempt.state == ("pending" if attempt.pending else "posted")
        side = "pending" if attempt.pending else "posted"
        self.model[attempt.debit][f"debits_{side}"] += attempt.amount
        self.model[attempt.credit][f"credits_{side}"] += attempt.amount
        self.made.append(attempt)

    def _new_key(self) -> str:
        self.serial += 1
        return f"k{self.serial}"

    # --- rules --------------------------------------------------------------------------------

    @initialize(usd=st.integers(0, 5000), krw=st.integers(0, 5000))
    def fund_wallets(self, usd, krw):
        """Start most sequences with some money in the wallets (zero is a case too)."""
        for wallet, clearing, amount in ((0, 3, usd), (4, 6, krw)):
            if amount:
                self._create(Attempt(self._new_key(), clearing, wallet, amount, "top_up", False))

    @rule(pair=st.sampled_from(SAME_CURRENCY_PAIRS), amount=amounts, code=codes, pending=st.booleans())
    def create(self, pair, amount, code, pending):
        self._create(Attempt(self._new_key(), pair[0], pair[1], amount, code, pending))

    @rule(account=st.sampled_from(GUARDED), amount=amounts, pending=st.booleans())
    def top_up(self, account, amount, pending):
        """Money into a guarded account from the processor, posted or on its way."""
        clearing = next(c for d, c in SAME_CURRENCY_PAIRS if d == account and ACCOUNTS[c][0] == AccountKind.PROCESSOR_CLEARING)
        self._create(Attempt(self._new_key(), clearing, account, amount, "top_up", pending))

    @rule(account=st.sampled_from(GUARDED), delta=st.integers(-3, 3), pending=st.booleans(), data=st.data())
    def spend_near_balance(self, account, delta, pending, data):
        """Spend just under, exactly or just over what a guarded account has available: the edge."""
        totals = self.model[account]
        available = totals["credits_posted"] - totals["debits_posted"] - totals["debits_pending"]
        credit = data.draw(st.sampled_from([c for d, c in SAME_CURRENCY_PAIRS if d == account]))
        self._create(Attempt(self._new_key(), account, credit, max(1, available + delta), "spend", pending))

    @precondition(lambda self: self.refused)
    @rule(data=st.data())
    def retry_refused(self, data):
        """A key refused for insufficient funds was never used: retrying it is a fresh attempt."""
        attempt = data.draw(st.sampled_from(self.refused))
        self.refused.remove(attempt)
        self._create(attempt)

    @rule(pair=st.sampled_from(CROSS_CURRENCY_PAIRS + [(i, i) for i in range(len(ACCOUNTS))]), amount=amounts)
    def create_invalid(self, pair, amount):
        """A transfer across currencies or to the same account is refused and moves nothing."""
        debit, credit = pair
        expected = LedgerError if debit == credit else CurrencyMismatch
        with pytest.raises(expected):
            transfer_create(
                idempotency_key=self._new_key(), debit_account=self.accounts[debit],
                credit_account=self.accounts[credit], amount=amount, code="sale",
            )

    @precondition(lambda self: any(a.state == "pending" for a in self.made))
    @rule(data=st.data(), post=st.booleans())
    def resolve_pending(self, data, post):
        """Post or void a transfer that is still pending."""
        self._resolve(data.draw(st.sampled_from([a for a in self.made if a.state == "pending"])), post)

    @precondition(lambda self: self.made)
    @rule(data=st.data(), post=st.booleans())
    def resolve(self, data, post):
        """Post or void any transfer: pending ones resolve once, replays are no-ops, the rest conflict."""
        self._resolve(data.draw(st.sampled_from(self.made)), post)

    def _resolve(self, attempt: Attempt, post: bool) -> None:
        target = "posted" if post else "voided"
        note(f"{'post' if post else 'void'} {attempt}")
        transfer = Transfer.objects.get(pk=attempt.pk)
        action = transfer_post if post else transfer_void
        if not attempt.pending:
            with pytest.raises(TransferNotPending):
                action(transfer=transfer)
            return
        if attempt.state not in ("pending", target):
            with pytest.raises(TransferAlreadyResolved, match=f"^The transfer was already {attempt.state}.$"):
                action(transfer=transfer)
            return
        resolved = action(transfer=transfer)
        assert (resolved.pk, resolved.state) == (attempt.pk, target)
        if attempt.state == "pending":
            amount = attempt.amount
            self.model[attempt.debit]["debits_pending"] -= amount
            self.model[attempt.credit]["credits_pending"] -= amount
            if post:
                self.model[attempt.debit]["debits_posted"] += amount
                self.model[attempt.credit]["credits_posted"] += amount
            attempt.state = target

    @precondition(lambda self: self.made)
    @rule(data=st.data())
    def replay_same(self, data):
        """The same key with the same fields returns the original transfer and moves no money."""
        attempt = data.draw(st.sampled_from(self.made))
        again = transfer_create(
            idempotency_key=attempt.key, debit_account=self.accounts[attempt.debit],
            credit_account=self.accounts[attempt.credit], amount=attempt.amount, code=attempt.code,
            pending=attempt.pending,
        )
        assert (again.pk, again.state) == (attempt.pk, attempt.state)

    @precondition(lambda self: self.made)
    @rule(data=st.data(), change=st.sampled_from(["amount", "code", "pending", "swap", "credit"]), extra=amounts)
    def replay_different(self, data, change, extra):
        """The same key with any field changed is TransferExistsWithDifferentFields and moves no money."""
        attempt = data.draw(st.sampled_from(self.made))
        debit, credit, amount, code, pending = attempt.debit, attempt.credit, attempt.amount, attempt.code, attempt.pending
        if change == "amount":
            amount += extra
        elif change == "code":
            code = "refund"
        elif change == "pending":
            pending = not pending
        elif change == "swap":
            debit, credit = credit, debit
        else:
            credit = data.draw(st.sampled_from([c for d, c in SAME_CURRENCY_PAIRS if d == debit and c != credit]))
        with pytest.raises(TransferExistsWithDifferentFields):
            transfer_create(
                idempotency_key=attempt.key, debit_account=self.accounts[debit], credit_account=self.accounts[credit],
                amount=amount, code=code, pending=pending,
            )

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def rows_match_the_model_and_balance(self):
        rows = {a["pk"]: a for a in Account.objects.filter(pk__in=[a.pk for a in self.accounts]).values("pk", *TOTALS)}
        per_currency: dict[str, dict[str, int]] = {}
        for index, account in enumerate(self.accounts):
            row = {name: rows[account.pk][name] for name in TOTALS}
            assert row == self.model[index], ACCOUNTS[index]
            sums = per_currency.setdefault(account.currency, dict.fromkeys(TOTALS, 0))
            for name in TOTALS:
                sums[name] += row[name]
            if account.debits_must_not_exceed_credits:
                assert row["debits_posted"] + row["debits_pending"] <= row["credits_posted"], ACCOUNTS[index]
        for currency, sums in per_currency.items():
            assert sums["debits_posted"] == sums["credits_posted"], currency
            assert sums["debits_pending"] == sums["credits_pending"], currency


@pytest.mark.django_db
def test_ledger_invariants_hold_for_any_sequence_of_operations():
    """For any sequence of creates, posts, voids and replays, no money is created, lost or overdrawn.

    Rows equal the model and the sums of transfers; debits equal credits per currency (posted and
    pending apart); guarded accounts never go below zero; InsufficientFunds is raised exactly when
    a spend would overdraw and then nothing moves; replays move nothing.
    """
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
