"""API v1: the store's balance, read from its ledger account (never summed from transfers)."""

from ninja import Router

from stall.core.api import responses, router_refuse_other_methods

from .models import AccountKind
from .schemas import BalanceOut, balance_out
from .selectors import account_balance

router = Router()


@router.get("", response=responses(BalanceOut), summary="Retrieve the store's balance")
def balance_retrieve(request):
    store = request.store
    money = account_balance(kind=AccountKind.STORE_BALANCE, owner=store.id, currency=store.currency)
    return balance_out(store_id=store.id, available=[money])


router_refuse_other_methods(router)
