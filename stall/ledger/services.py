"""Writes to the ledger. Every money movement in Stall goes through ``transfer_create``.

Concurrency: a transfer locks both accounts (``SELECT … FOR UPDATE`` in primary-key order, so two
transfers between the same accounts never deadlock) and checks balances under the lock. On SQLite,
where FOR UPDATE does not exist, the IMMEDIATE transaction mode gives the same guarantee by
admitting one writer at a time. The CHECK constraints on the account row are the last line.
"""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from stall.core.money import amount_validate, currency_normalize

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
    try:
        with transaction.atomic():
            return Account.objects.create(
                kind=kind,
                owner=owner,
                currency=currency,
                debits_must_not_exceed_credits=kind in CREDIT_BALANCE_KINDS,
            )
    except IntegrityError:
        # Another request opened it between our read and our insert.
        return Account.objects.get(kind=kind, owner=owner, currency=currency)


@transaction.atomic
def account_limit_set(*, account: Account, debit_limit: int | None) -> Account:
    """Set how much the account may owe (a tab's limit). A limit below what it owes now is refused."""
    if debit_limit is not None:
        amount_validate(debit_limit, param="debit_limit")
    locked = _lock_accounts(account.pk)[account.pk]
    owed = locked.debits_posted + locked.debits_pending - locked.credits_posted
    if debit_limit is not None and owed > debit_limit:
        raise LimitExceeded("The account already owes more than that limit.", param="debit_limit")
    Account.objects.filter(pk=account.pk).update(debit_limit=debit_limit)
    locked.debit_limit = debit_limit
    return locked


def _lock_accounts(*ids: str) -> dict[str, Account]:
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

    locked = _lock_accounts(debit_account.pk, credit_account.pk)
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
    _lock_accounts(transfer.debit_account_id, transfer.credit_account_id)
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
