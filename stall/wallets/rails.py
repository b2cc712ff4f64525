"""The wallet and the tab as payment rails.

They sit behind the same interface as the card rails, so checkout, tips and unlocks pick a rail
instead of special-casing. Both are in-ledger: ``ledger_charge`` moves the money inside the
checkout's own transaction, then ``payment_succeed`` (same transaction) moves it on to the store.

Fees. A card charged $10.00 to top up a wallet costs about 59¢. That fee goes into the wallet's
fee pool (a debit-normal account: fees still owed), and every spend from the wallet pays its
share back: ``fee = pool × spend ÷ wallet balance``, rounded half up. The share is computed from
what is left, so the spend that empties the wallet pays exactly what remains in the pool and
the fees of a wallet always add up to what the card network took. A tab's settlement fee is
shared out among the tab's sales when it is settled.
"""

from __future__ import annotations

from typing import ClassVar

from django.db.models import F

from stall.core.money import prorate
from stall.ledger.errors import InsufficientFunds, LimitExceeded
from stall.ledger.models import Account, AccountKind
from stall.ledger.services import _lock_accounts, account_open, transfer_create
from stall.orders.models import Order
from stall.payments.rails import RailResult


class _InLedgerRail:
    in_ledger: ClassVar[bool] = True

    def minimum_charge(self, currency: str) -> int:
        return 1

    def payment_start(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail pays inside the ledger: use ledger_charge")

    def payment_confirm(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail never asks the buyer to confirm at a bank")

    def refund(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail refunds inside the ledger: use ledger_refund")

    def notification_handle(self, *, headers, body):
        return []

    def clearing(self, currency: str) -> Account:
        return account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=self.name, currency=currency)


class WalletRail(_InLedgerRail):
    name = "wallet"

    def payment_methods(self) -> list[tuple[str, str]]:
        return [("wallet", "Wallet")]

    def ledger_charge(self, *, payment) -> RailResult:
        from .selectors import wallet_get

        wallet = wallet_get(buyer=payment.buyer, currency=payment.currency)
        if wallet is None:
            from .errors import WalletEmpty

            raise WalletEmpty()
        pool = fee_pool_for(wallet)
        locked = _lock_accounts(wallet.account_id, pool.pk)
        account, pool = locked[wallet.account_id], locked[pool.pk]
        balance = account.credits_posted - account.debits_posted - account.debits_pending
        if payment.amount > balance:
            from .errors import WalletEmpty

            raise WalletEmpty()
        fee = prorate(pool.debits_posted - pool.credits_posted, payment.amount, balance)
        try:
            transfer_create(
                idempotency_key=f"{payment.pk}:wallet_spend", debit_account=account,
                credit_account=self.clearing(payment.currency), amount=payment.amount, code="wallet_spend",
                reference=payment.pk,
            )
        except InsufficientFunds:
            from .errors import WalletEmpty

            raise WalletEmpty() from None
        from .services import wallet_auto_top_up_due, wallet_auto_top_up_enqueue

        if wallet_auto_top_up_due(wallet, balance - payment.amount):
            # After commit: the card is charged outside this transaction. The trigger is what has
            # come into the wallet so far (and the card): the same for every spend of a burst, so
            # the burst tops up once.
            wallet_auto_top_up_enqueue(wallet, trigger=f"in:{account.credits_posted}:{wallet.auto_top_up_method_id}")
        return RailResult("succeeded", reference=wallet.pk, fee=fee)

    def fee_account(self, *, payment) -> Account:
        from .selectors import wallet_get

        return fee_pool_for(wallet_get(buyer=payment.buyer, currency=payment.currency))

    def ledger_refund(self, *, refund) -> None:
        """Give the money back to the wallet, and the sale's share of the top-up fee back to its pool."""
        from .selectors import wallet_get

        payment, order = refund.payment, refund.order
        wallet = wallet_get(buyer=payment.buyer, currency=payment.currency)
        transfer_create(
            idempotency_key=f"{refund.pk}:wallet_refund", debit_account=self.clearing(payment.currency),
            credit_account=wallet.account, amount=refund.amount, code="wallet_refund", reference=order.pk,
        )
        back = prorate(order.fee, order.amount_refunded + refund.amount, order.amount_total) - prorate(
            order.fee, order.amount_refunded, order.amount_total
        )
        if back:
            store_balance = account_open(kind=AccountKind.STORE_BALANCE, owner=order.store_id, currency=order.currency)
            transfer_create(
                idempotency_key=f"{refund.pk}:fee_back", debit_account=fee_pool_for(wallet),
                credit_account=store_balance, amount=back, code="fee_refund", reference=order.pk,
            )
            Order.objects.filter(pk=order.pk).update(fee_refunded=F("fee_refunded") + back)


class TabRail(_InLedgerRail):
    name = "tab"

    def payment_methods(self) -> list[tuple[str, str]]:
        return [("tab", "Tab")]

    def ledger_charge(self, *, payment) -> RailResult:
        from .errors import TabLimitReached
        from .services import tab_open

        tab = tab_open(buyer=payment.buyer, currency=payment.currency)
        try:
            transfer_create(
                idempotency_key=f"{payment.pk}:tab_purchase", debit_account=tab.account,
                credit_account=self.clearing(payment.currency), amount=payment.amount, code="tab_purchase",
                reference=payment.pk,
            )
        except LimitExceeded:
            raise TabLimitReached() from None
        # The card fee is known only when the tab is settled; it is shared out then.
        return RailResult("succeeded", reference=tab.pk, fee=0)

    def ledger_refund(self, *, refund) -> None:
        """Take the sale off the tab if it is still open; after settlement the money goes to the wallet."""
        from .selectors import wallet_for
        from .models import Tab, TabStatus

        payment, order = refund.payment, refund.order
        tab = Tab.objects.filter(pk=payment.rail_reference).first()
        if tab is not None and tab.status == TabStatus.OPEN:
            target = tab.account
        else:
            target = wallet_for(buyer=payment.buyer, currency=payment.currency).account
        transfer_create(
            idempotency_key=f"{refund.pk}:tab_refund", debit_account=self.clearing(payment.currency),
            credit_account=target, amount=refund.amount, code="tab_refund", reference=order.pk,
        )


def fee_pool_for(wallet) -> Account:
    return account_open(kind=AccountKind.FEE_POOL, owner=wallet.pk, currency=wallet.currency)
