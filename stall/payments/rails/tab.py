"""The tab rail: buy now, pay later with one card charge, inside the ledger.

A tab is a buyer_tab account whose debit limit is the tab's limit: a purchase that would take it
over is refused by the ledger (a CHECK constraint as well as the code). The card fee is known only
when the tab is settled (the wallets app's ``tab_settlement_succeed``); it is shared out then.

Purchases on the tab are real purchases: the goods are delivered before the tab is paid, so a tab
is never settled with test money (``wallets.services.tab_settle`` refuses a test card where the
Stall takes real money), and its sales are never test orders.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from stall.core.languages import language_to_record
from stall.core.money import money_setting, prorate
from stall.ledger.errors import LimitExceeded
from stall.ledger.models import AccountKind
from stall.ledger.services import (
    Posting,
    account_debit_guarded,
    account_id_for,
    account_limit_set,
    account_open,
    transfer_create,
)
from stall.payments.errors import TabLimitReached, TabOverdue
from stall.payments.models import Tab, TabStatus

from .base import RailResult
from .wallet import Debit, Funds, InLedgerRail, fee_share_return, wallet_for, wallet_mode_for_credit


def tab_limit_for(*, buyer, currency: str) -> int:
    """A buyer's first tab is capped low; once one has been paid with a card, later tabs may run higher."""
    settled_before = Tab.objects.filter(
        buyer=buyer, currency=currency, status=TabStatus.SETTLED, settlement__status="succeeded"
    ).exists()
    return money_setting("STALL_TAB_LIMIT" if settled_before else "STALL_TAB_FIRST_LIMIT", currency)


def tab_open(*, buyer, currency: str) -> Tab:
    """The buyer's open tab in ``currency``, opened if there is none. Call inside a transaction."""
    tab = Tab.objects.select_related("account").filter(buyer=buyer, currency=currency, status=TabStatus.OPEN).first()
    if tab is not None:
        age = timezone.now() - tab.opened_at
        if settings.STALL_TAB_BLOCK_WHEN_OVERDUE and age.days >= settings.STALL_TAB_SETTLE_AFTER_DAYS:
            raise TabOverdue()
        return tab
    account = account_open(kind=AccountKind.BUYER_TAB, owner=buyer.pk, currency=currency)
    limit = tab_limit_for(buyer=buyer, currency=currency)
    account_limit_set(account=account, debit_limit=limit)
    # The language of the purchase's page: the tab's overdue notice is written in it.
    return Tab.objects.create(buyer=buyer, currency=currency, account=account, limit=limit, language=language_to_record())


class TabRail(InLedgerRail):
    name = "tab"

    def payment_methods(self) -> list[tuple[str, str]]:
        return [("tab", "Tab")]

    def ledger_charge(self, *, payment) -> RailResult:
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

    def ledger_refund(self, *, refund, order) -> int:
        """Take the sale off the tab if it is still open: it carries no fee share before the tab is
        settled, so none comes back (returns 0). After settlement the money goes to the buyer's
        wallet, and the sale's share of the settlement's card fee goes with it to the wallet's fee
        pool (``fee_share_return``; returns that share), as it does for a wallet sale and for a tab
        sale refunded while the settlement was under way (``tab_settlement_succeed``)."""
        payment = refund.payment
        tab = Tab.objects.filter(pk=payment.rail_reference).first()
        if tab is not None and tab.status == TabStatus.OPEN:
            self._refund_to(tab.account, refund=refund, order=order)
            return 0
        wallet = wallet_for(buyer=payment.buyer, currency=payment.currency)
        # Tab sales are real purchases: real money goes back.
        wallet_mode_for_credit(wallet=wallet, livemode=True, reference=refund.pk)
        self._refund_to(wallet.account, refund=refund, order=order)
        # The settlement gave the sale its fee share on what the sale still was then (a part
        # refunded before it carries none), so a refund takes back its part of what is left of the
        # share: the last refund takes all of it and the store never pays a fee for money returned.
        back = prorate(order.fee - order.fee_refunded, refund.amount, order.amount_total - order.amount_refunded)
        return fee_share_return(wallet=wallet, refund=refund, order=order, back=back)

    def _refund_to(self, account, *, refund, order) -> None:
        transfer_create(
            idempotency_key=f"{refund.pk}:tab_refund", debit_account=self.clearing(refund.currency),
            credit_account=account, amount=refund.amount, code="tab_refund", reference=order.pk,
        )


def tab_debit(*, funds: Funds, buyer, amount: int, payment_id: str) -> Debit:
    """Put ``amount`` on the buyer's open tab (opened if there is none) in one guarded statement.
    Call inside a transaction. Raises TabOverdue or TabLimitReached, with nothing changed."""
    tab_id, account_id = funds.tab_id, funds.tab_account_id
    if tab_id is None:
        tab = tab_open(buyer=buyer, currency=funds.currency)
        tab_id, account_id = tab.pk, tab.account_id
    elif settings.STALL_TAB_BLOCK_WHEN_OVERDUE and (timezone.now() - funds.tab_opened_at).days >= settings.STALL_TAB_SETTLE_AFTER_DAYS:
        raise TabOverdue()
    if account_debit_guarded(account_id=account_id, amount=amount) is None:
        raise TabLimitReached()
    clearing_id = account_id_for(kind=AccountKind.PROCESSOR_CLEARING, owner="tab", currency=funds.currency)
    posting = Posting(
        idempotency_key=f"{payment_id}:tab_purchase", debit_id=account_id, credit_id=clearing_id, amount=amount,
        currency=funds.currency, code="tab_purchase", reference=payment_id,
    )
    # The card fee is known only when the tab is settled; it is shared out then.
    return Debit(reference=tab_id, fee=0, fee_account_id=None, clearing_id=clearing_id, postings=[posting], debited={account_id: amount})
