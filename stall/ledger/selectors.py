"""Reads of the ledger. Balances come from the account row, never from summing transfers."""

from django.db.models import Q, QuerySet, Sum

from stall.core.money import Money

from .models import Account, AccountKind, Transfer, TransferState


def account_get(*, kind: str, owner: str, currency: str) -> Account | None:
    return Account.objects.filter(kind=AccountKind(kind), owner=owner, currency=currency).first()


def account_balance(*, kind: str, owner: str, currency: str) -> Money:
    account = account_get(kind=kind, owner=owner, currency=currency)
    return Money(account.balance if account else 0, currency)


def account_transfers(*, account: Account) -> QuerySet[Transfer]:
    return Transfer.objects.filter(Q(debit_account=account) | Q(credit_account=account)).order_by("-pk")


def account_sums_from_transfers(*, account: Account) -> dict[str, int]:
    """Recompute an account's four totals from its transfers: for audits and tests only."""

    def total(qs) -> int:
        return qs.aggregate(s=Sum("amount"))["s"] or 0

    debits = Transfer.objects.filter(debit_account=account)
    credits = Transfer.objects.filter(credit_account=account)
    return {
        "debits_posted": total(debits.filter(state=TransferState.POSTED)),
        "credits_posted": total(credits.filter(state=TransferState.POSTED)),
        "debits_pending": total(debits.filter(state=TransferState.PENDING)),
        "credits_pending": total(credits.filter(state=TransferState.PENDING)),
    }
