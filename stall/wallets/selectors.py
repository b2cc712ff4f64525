from django.db.models import Q, QuerySet

from stall.ledger.models import AccountKind, Transfer

from .models import Tab, TabStatus, Wallet


def wallet_get(*, buyer, currency: str) -> Wallet | None:
    return Wallet.objects.select_related("account").filter(buyer=buyer, currency=currency).first()


def wallet_for(*, buyer, currency: str) -> Wallet:
    """The buyer's wallet in ``currency``, opened (empty) on first use."""
    from .services import wallet_open

    return wallet_get(buyer=buyer, currency=currency) or wallet_open(buyer=buyer, currency=currency)


def wallets_for_buyer(*, buyer) -> QuerySet[Wallet]:
    return Wallet.objects.filter(buyer=buyer).select_related("account").order_by("currency")


def wallet_history(*, wallet: Wallet) -> QuerySet[Transfer]:
    """Every movement in and out of the wallet, newest first."""
    return Transfer.objects.filter(Q(debit_account=wallet.account_id) | Q(credit_account=wallet.account_id)).order_by("-pk")


def tab_open_get(*, buyer, currency: str) -> Tab | None:
    return Tab.objects.select_related("account").filter(buyer=buyer, currency=currency, status=TabStatus.OPEN).first()


def tab_owed(*, tab: Tab) -> int:
    account = tab.account
    account.refresh_from_db(fields=["debits_posted", "credits_posted", "debits_pending"])
    return account.debits_posted + account.debits_pending - account.credits_posted


def tab_account_kind() -> str:
    return AccountKind.BUYER_TAB
