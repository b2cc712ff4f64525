"""Writes to the ledger. Every money movement in Stall goes through ``transfer_create``.

Concurrency: a transfer locks both accounts (``SELECT … FOR UPDATE`` in primary-key order, so two
transfers between the same accounts never deadlock) and checks balances under the lock. On SQLite,
where FOR UPDATE does not exist, the IMMEDIATE transaction mode gives the same guarantee by
admitting one writer at a time. The CHECK constraints on the account row are the last line.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from stall.core.ids import new_id, new_ids
from stall.core.money import amount_validate, currency_normalize
from stall.core.sql import in_list, rows_insert, rows_table

from .errors import (
    CurrencyMismatch,
    InsufficientFunds,
    LedgerError,
    LimitExceeded,
    TransferAlreadyResolved,
    TransferExistsWithDifferentFields,
    TransferNotPending,
)
from .models import CREDIT_BALANCE_KINDS, Account, AccountKind, Transfer, TransferState


def account_open(*, kind: str, owner: str, currency: str) -> Account:
    """Return the account of this kind for this owner and currency, opening it if needed."""
    kind = AccountKind(kind)
    currency = currency_normalize(currency)
    account = Account.objects.filter(kind=kind, owner=owner, currency=currency).first()
    if account is not None:
        return account
    # Another request may open it between that read and this insert (the first spends of a new
    # store, at once): the insert then does nothing, rather than fail, and the read below finds
    # theirs. A failed insert left an error in PostgreSQL's log for each such race, and cost a
    # savepoint around every opening.
    Account.objects.bulk_create(
        [Account(kind=kind, owner=owner, currency=currency, debits_must_not_exceed_credits=kind in CREDIT_BALANCE_KINDS)],
        ignore_conflicts=True,
    )
    return Account.objects.get(kind=kind, owner=owner, currency=currency)


@transaction.atomic
def account_limit_set(*, account: Account, debit_limit: int | None) -> Account:
    """Set how much the account may owe (a tab's limit). A limit below what it owes now is refused."""
    if debit_limit is not None:
        amount_validate(debit_limit, param="debit_limit")
    locked = accounts_lock(account.pk)[account.pk]
    owed = locked.debits_posted + locked.debits_pending - locked.credits_posted
    if debit_limit is not None and owed > debit_limit:
        raise LimitExceeded("The account already owes more than that limit.", param="debit_limit")
    Account.objects.filter(pk=account.pk).update(debit_limit=debit_limit)
    locked.debit_limit = debit_limit
    return locked


def accounts_lock(*ids: str) -> dict[str, Account]:
    """Lock these accounts for the rest of the transaction (in primary-key order, so two callers
    never deadlock) and return them as they are now."""
    accounts = Account.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk")
    return {a.pk: a for a in accounts}


def _same_request(existing: Transfer, *, debit_id, credit_id, amount, currency, code, pending) -> bool:
    return (
        existing.debit_account_id == debit_id
        and existing.credit_account_id == credit_id
        and existing.amount == amount
        and existing.currency == currency
        and existing.code == code
        and existing.two_phase == pending
    )


@transaction.atomic
def transfer_create(
    *,
    idempotency_key: str,
    debit_account: Account,
    credit_account: Account,
    amount: int,
    code: str,
    reference: str = "",
    pending: bool = False,
) -> Transfer:
    """Move ``amount`` from ``debit_account`` to ``credit_account``.

    A replay with the same key and fields returns the first transfer and moves nothing; the same
    key with other fields raises TransferExistsWithDifferentFields.
    """
    amount_validate(amount, allow_zero=False)
    if not idempotency_key:
        raise LedgerError("A transfer needs an idempotency key.", param="idempotency_key")
    if debit_account.pk == credit_account.pk:
        raise LedgerError("A transfer needs two different accounts.")
    if debit_account.currency != credit_account.currency:
        raise CurrencyMismatch(
            f"Cannot move {debit_account.currency} into a {credit_account.currency} account."
        )
    currency = debit_account.currency

    locked = accounts_lock(debit_account.pk, credit_account.pk)
    existing = Transfer.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if _same_request(
            existing,
            debit_id=debit_account.pk,
            credit_id=credit_account.pk,
            amount=amount,
            currency=currency,
            code=code,
            pending=pending,
        ):
            return existing
        raise TransferExistsWithDifferentFields()

    debit = locked[debit_account.pk]
    if debit.debits_must_not_exceed_credits and (
        debit.debits_posted + debit.debits_pending + amount > debit.credits_posted
    ):
        raise InsufficientFunds()
    if debit.debit_limit is not None and (
        debit.debits_posted + debit.debits_pending + amount - debit.credits_posted > debit.debit_limit
    ):
        raise LimitExceeded()

    if pending:
        Account.objects.filter(pk=debit.pk).update(debits_pending=F("debits_pending") + amount)
        Account.objects.filter(pk=credit_account.pk).update(credits_pending=F("credits_pending") + amount)
    else:
        Account.objects.filter(pk=debit.pk).update(debits_posted=F("debits_posted") + amount)
        Account.objects.filter(pk=credit_account.pk).update(credits_posted=F("credits_posted") + amount)
    return Transfer.objects.create(
        idempotency_key=idempotency_key,
        debit_account_id=debit.pk,
        credit_account_id=credit_account.pk,
        amount=amount,
        currency=currency,
        two_phase=pending,
        state=TransferState.PENDING if pending else TransferState.POSTED,
        code=code,
        reference=reference,
        resolved_at=None if pending else timezone.now(),
    )


def _resolve(transfer: Transfer, *, to: str) -> Transfer:
    if not transfer.two_phase:
        raise TransferNotPending()
    accounts_lock(transfer.debit_account_id, transfer.credit_account_id)
    now = timezone.now()
    changed = Transfer.objects.filter(pk=transfer.pk, state=TransferState.PENDING).update(
        state=to, resolved_at=now
    )
    if not changed:
        current = Transfer.objects.get(pk=transfer.pk)
        if current.state == to:
            return current  # a replayed post or void: it happened once already
        raise TransferAlreadyResolved(f"The transfer was already {current.state}.")
    amount = transfer.amount
    debit = Account.objects.filter(pk=transfer.debit_account_id)
    credit = Account.objects.filter(pk=transfer.credit_account_id)
    if to == TransferState.POSTED:
        debit.update(debits_pending=F("debits_pending") - amount, debits_posted=F("debits_posted") + amount)
        credit.update(credits_pending=F("credits_pending") - amount, credits_posted=F("credits_posted") + amount)
    else:
        debit.update(debits_pending=F("debits_pending") - amount)
        credit.update(credits_pending=F("credits_pending") - amount)
    return Transfer.objects.get(pk=transfer.pk)


@transaction.atomic
def transfer_post(*, transfer: Transfer) -> Transfer:
    """Post a pending transfer: its amount moves from pending to posted on both accounts."""
    return _resolve(transfer, to=TransferState.POSTED)


@transaction.atomic
def transfer_void(*, transfer: Transfer) -> Transfer:
    """Void a pending transfer: its pending amount is released on both accounts."""
    return _resolve(transfer, to=TransferState.VOIDED)


# --- The hot path: a one-click spend in a handful of statements ------------------------------------
#
# ``transfer_create`` locks, reads, checks and writes for each transfer: clear, and right for
# everything that is not hot. A one-click spend (an unlock, a tip, a metered charge) moves three or
# four transfers at once and is the most frequent write in Stall, so it uses these instead: one
# guarded UPDATE for the debit that could be refused (the same rules as the CHECK constraints, in
# the WHERE clause; no row means refused, nothing changed), one INSERT of all the transfer rows and
# one UPDATE of every other account's totals. The rows, the constraints and the idempotency keys are
# the same as transfer_create's, so every invariant of the ledger holds for both.

_ACCOUNT_IDS: dict[tuple[str, str, str], str] = {}


def account_id_for(*, kind: str, owner: str, currency: str) -> str:
    """The id of the account of this kind for this owner and currency, opened if needed.

    Ids never change, so they are kept in memory once the transaction that saw the account has
    committed (an account opened by a transaction that rolls back is never remembered)."""
    key = (str(kind), owner, currency)
    known = _ACCOUNT_IDS.get(key)
    if known is not None:
        return known
    account_id = account_open(kind=kind, owner=owner, currency=currency).pk
    transaction.on_commit(lambda: _ACCOUNT_IDS.__setitem__(key, account_id))
    return account_id


def account_ids_forget() -> None:
    """Forget the remembered account ids (tests that empty the database call this)."""
    _ACCOUNT_IDS.clear()


@dataclass(frozen=True)
class Posting:
    """One single-phase transfer for ``transfers_post``."""

    idempotency_key: str
    debit_id: str
    credit_id: str
    amount: int
    currency: str
    code: str
    reference: str = ""


@dataclass(frozen=True)
class Totals:
    debits_posted: int
    credits_posted: int
    debits_pending: int


def _ids_in_key_order(ids: list[str]) -> tuple[str, list]:
    """The inside of ``id IN (…)`` naming the accounts ``ids`` for an UPDATE, and its parameters. On
    PostgreSQL an UPDATE locks its rows in the order its plan reaches them, which follows where
    each row's latest version lies, not its id: two spends updating the same clearing account and
    store balance locked them in opposite orders and deadlocked (16 connections at once; 8 threads
    of bench/unlock.py a worker). A sub-select locks them in key order first, in the same
    statement, as ``accounts_lock`` does. SQLite admits one writer at a time: no row locks."""
    if connection.vendor != "postgresql":
        return ", ".join(["%s"] * len(ids)), list(ids)
    which, params = in_list("id", ids)
    return f"SELECT id FROM ledger_account WHERE {which} ORDER BY id FOR UPDATE", params


def account_debit_guarded(*, account_id: str, amount: int, lock_ids: tuple[str, ...] = ()) -> dict[str, Totals] | None:
    """Add ``amount`` to the account's posted debits if the ledger's rules allow it (no overdraft of
    a credit-balance account, no debit past a debit limit), and lock ``lock_ids`` with it, in one
    statement. Call inside a transaction. Returns every row's totals after the statement, or None
    when the rules refuse the debit (nothing was changed)."""
    amount_validate(amount, allow_zero=False)
    which, which_params = _ids_in_key_order([account_id, *[i for i in lock_ids if i != account_id]])
    sql = (
        "UPDATE ledger_account SET debits_posted = debits_posted + CASE WHEN id = %s THEN %s ELSE 0 END "
        f"WHERE id IN ({which}) AND (id <> %s OR ("
        "(NOT debits_must_not_exceed_credits OR credits_posted - debits_posted - debits_pending >= %s) "
        "AND (debit_limit IS NULL OR debits_posted + debits_pending + %s - credits_posted <= debit_limit))) "
        "RETURNING id, debits_posted, credits_posted, debits_pending"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, amount, *which_params, account_id, amount, amount])
        rows = {row[0]: Totals(row[1], row[2], row[3]) for row in cursor.fetchall()}
    return rows if account_id in rows else None


def transfers_post(*, postings: list[Posting], debited: dict[str, int] | None = None) -> None:
    """Post single-phase transfers in two statements: one INSERT of the transfer rows, then one
    UPDATE of the accounts' totals (last, so rows every spend touches — a clearing account, a
    store's balance — stay locked as briefly as possible). ``debited`` names debits an
    ``account_debit_guarded`` call already added. Call inside a transaction. A reused idempotency
    key or a broken account rule raises IntegrityError: the caller's transaction is then void."""
    deltas: dict[str, list[int]] = {}
    for p in postings:
        amount_validate(p.amount, allow_zero=False)
        if p.debit_id == p.credit_id:
            raise LedgerError("A transfer needs two different accounts.")
        deltas.setdefault(p.debit_id, [0, 0])[0] += p.amount
        deltas.setdefault(p.credit_id, [0, 0])[1] += p.amount
    for account_id, amount in (debited or {}).items():
        deltas[account_id][0] -= amount
    changes = {k: v for k, v in deltas.items() if v != [0, 0]}
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows, params = [], []
    for p in postings:
        rows.append("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
        params += [
            new_id("tr"), p.idempotency_key, p.debit_id, p.credit_id, p.amount, p.currency, False,
            TransferState.POSTED, p.code, p.reference, now, now,
        ]
    debit_case = " ".join("WHEN %s THEN %s" for _ in changes)
    which, which_params = _ids_in_key_order(list(changes))
    update = (
        f"UPDATE ledger_account SET debits_posted = debits_posted + CASE id {debit_case} ELSE 0 END, "
        f"credits_posted = credits_posted + CASE id {debit_case} ELSE 0 END "
        f"WHERE id IN ({which})"
    )
    update_params = [x for k, v in changes.items() for x in (k, v[0])]
    update_params += [x for k, v in changes.items() for x in (k, v[1])]
    update_params += which_params
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_transfer (id, idempotency_key, debit_account_id, credit_account_id, amount, "
            "currency, two_phase, state, code, reference, created_at, resolved_at) VALUES " + ", ".join(rows),
            params,
        )
        if changes:
            cursor.execute(update, update_params)
            if cursor.rowcount != len(changes):
                raise LedgerError("A transfer names an account that does not exist.")


# --- Many at once: a batch of pending transfers resolved and transfers posted -----------------------
#
# The campaign deadline settles a thousand held pledges per transaction. Its writes do not grow in
# number with the batch: one UPDATE resolves the pending transfers (guarded on ``pending``, and
# RETURNING their accounts and amounts, so nothing is read twice), one INSERT writes the new
# transfers, one set-based UPDATE moves every account's four totals. A CASE over a thousand ids, as
# ``transfers_post`` writes for its handful of accounts, would be evaluated for every row updated.


_TRANSFER_COLUMNS = ("id", "idempotency_key", "debit_account_id", "credit_account_id", "amount", "currency", "two_phase",
                     "state", "code", "reference", "created_at", "resolved_at")


def transfers_settle(*, pending_ids: list[str], post: bool, postings: list[Posting] = (),
                     debited: dict[str, int] | None = None) -> int:
    """Post (``post``) or void the pending transfers ``pending_ids``, and post the single-phase
    ``postings``, in three statements. Call inside a transaction. Every one of ``pending_ids`` must
    still be pending (LedgerError otherwise: the caller's claim said they were). ``debited`` names
    posted debits ``accounts_debit_guarded_many`` already added to their accounts (a renewal
    group's wallets), which are then not added again. Returns the number of accounts changed."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    deltas: dict[str, list[int]] = {}  # [debits_pending, debits_posted, credits_pending, credits_posted]
    zero = (0, 0, 0, 0)
    with connection.cursor() as cursor:
        if pending_ids:
            which, params = in_list("id", pending_ids)
            cursor.execute(
                f"UPDATE ledger_transfer SET state = %s, resolved_at = %s WHERE {which} AND state = %s "
                "RETURNING debit_account_id, credit_account_id, amount",
                [TransferState.POSTED if post else TransferState.VOIDED, now, *params, TransferState.PENDING],
            )
            resolved = cursor.fetchall()
            if len(resolved) != len(pending_ids):
                raise LedgerError("A transfer to resolve was not pending.")
            for debit_id, credit_id, amount in resolved:
                d = deltas.setdefault(debit_id, [0, 0, 0, 0])
                d[0] -= amount
                d[1] += amount if post else 0
                c = deltas.setdefault(credit_id, [0, 0, 0, 0])
                c[2] -= amount
                c[3] += amount if post else 0
        rows = []
        for p, transfer_id in zip(postings, new_ids("tr", len(postings)), strict=True):
            amount_validate(p.amount, allow_zero=False)
            if p.debit_id == p.credit_id:
                raise LedgerError("A transfer needs two different accounts.")
            deltas.setdefault(p.debit_id, [0, 0, 0, 0])[1] += p.amount
            deltas.setdefault(p.credit_id, [0, 0, 0, 0])[3] += p.amount
            rows.append([transfer_id, p.idempotency_key, p.debit_id, p.credit_id, p.amount, p.currency, False,
                         TransferState.POSTED, p.code, p.reference, now, now])
        for account_id, amount in (debited or {}).items():
            deltas[account_id][1] -= amount
        # One statement (COPY on PostgreSQL: a renewal group's 400 rows took about 60% of the time
        # an INSERT … SELECT FROM unnest did); a key posted before raises IntegrityError.
        rows_insert(cursor, Transfer._meta.db_table, _TRANSFER_COLUMNS, rows)
        changes = sorted((k, *v) for k, v in deltas.items() if tuple(v) != zero)
        if changes:
            table, params = rows_table("d", (
                ("id", "text"), ("debits_pending", "bigint"), ("debits_posted", "bigint"),
                ("credits_pending", "bigint"), ("credits_posted", "bigint"),
            ), changes)
            # The rows are named through ``_ids_in_key_order`` as a single spend's are, so that
            # PostgreSQL locks them in key order: a group and a spend, or two groups, share the
            # clearing account and the store's balance.
            which, which_params = _ids_in_key_order([c[0] for c in changes])
            cursor.execute(
                "UPDATE ledger_account SET debits_pending = ledger_account.debits_pending + d.debits_pending, "
                "debits_posted = ledger_account.debits_posted + d.debits_posted, "
                "credits_pending = ledger_account.credits_pending + d.credits_pending, "
                f"credits_posted = ledger_account.credits_posted + d.credits_posted FROM {table} "
                f"WHERE ledger_account.id = d.id AND ledger_account.id IN ({which})",
                params + which_params,
            )
            if cursor.rowcount != len(changes):
                raise LedgerError("A transfer names an account that does not exist.")
    return len(changes)
# --- Many spends at once: a group of renewals in a few statements --------------------------------
#
# The periodic renewal task pays hundreds of members from their wallets in one transaction
# (stall.orders.spend_many). Round trips and commits, not rows, are what cost there, so these do
# for a whole group what ``account_debit_guarded`` and ``transfers_post`` do for one spend, with
# the same rules in the WHERE clause, the same rows, constraints and idempotency keys: one UPDATE
# of every debited account (refused rows are left out of its result, nothing changed for them);
# ``transfers_settle`` with ``debited`` then writes every transfer row and every other account's
# summed totals.


def accounts_debit_guarded_many(*, debits: dict[str, int], lock_ids: tuple[str, ...] = ()) -> dict[str, Totals]:
    """Add each amount of ``debits`` (account id → amount) to that account's posted debits where
    the ledger's rules allow it (as ``account_debit_guarded``), and lock ``lock_ids`` with them.
    Call inside a transaction. Returns the totals of every ``lock_ids`` row and of every debited
    row after the debit: a debited account missing from it was refused, and nothing changed for it.

    Two statements: a SELECT of all the rows in primary-key order (``FOR UPDATE`` on PostgreSQL, so
    two groups sharing accounts, or a group and a one-click spend, queue instead of deadlocking;
    SQLite admits one writer at a time), then one guarded UPDATE of the debited rows."""
    for amount in debits.values():
        amount_validate(amount, allow_zero=False)
    locked = sorted(set(lock_ids) - set(debits))
    ids = sorted([*debits, *locked])
    if not ids:
        return {}
    totals: dict[str, Totals] = {}
    with connection.cursor() as cursor:
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        which, params = in_list("id", ids)
        cursor.execute(
            f"SELECT id, debits_posted, credits_posted, debits_pending FROM ledger_account WHERE {which} ORDER BY id{lock}",
            params,
        )
        for row in cursor.fetchall():
            if row[0] not in debits:
                totals[row[0]] = Totals(row[1], row[2], row[3])
        if debits:
            table, params = rows_table("v", (("account_id", "text"), ("amount", "bigint")), list(debits.items()))
            cursor.execute(
                f"UPDATE ledger_account AS a SET debits_posted = a.debits_posted + v.amount FROM {table} WHERE a.id = v.account_id AND "
                "(NOT a.debits_must_not_exceed_credits OR a.credits_posted - a.debits_posted - a.debits_pending >= v.amount) "
                "AND (a.debit_limit IS NULL OR a.debits_posted + a.debits_pending + v.amount - a.credits_posted <= a.debit_limit) "
                "RETURNING id, debits_posted, credits_posted, debits_pending",
                params,
            )
            for row in cursor.fetchall():
                totals[row[0]] = Totals(row[1], row[2], row[3])
    return totals
