from __future__ import annotations

import dataclasses
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from stall.catalog.names import product_name_shown
from stall.core.money import money_setting
from stall.ledger.models import AccountKind, Transfer
from stall.orders.models import Order
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails import SandboxRail
from stall.payments.rails.tab import tab_limit_for
from stall.payments.rails.wallet import wallet_for, wallet_get  # noqa: F401  (this app's pages read them here)

from .models import Tab, TabStatus, Wallet


def wallets_for_buyer(*, buyer) -> QuerySet[Wallet]:
    return Wallet.objects.filter(buyer=buyer).select_related("account").order_by("currency")


def wallet_history(*, wallet: Wallet) -> QuerySet[Transfer]:
    """Every movement in and out of the wallet, newest first."""
    return Transfer.objects.filter(Q(debit_account=wallet.account_id) | Q(credit_account=wallet.account_id)).order_by("-pk")


@dataclasses.dataclass(frozen=True)
class Movement:
    """One line of a wallet's history, as the buyer reads it."""

    id: str
    amount: int  # positive into the wallet, negative out of it
    currency: str
    kind: str  # top_up, spend, refund, tab_excess, other
    title: str
    detail: str
    created_at: datetime

    @property
    def magnitude(self) -> int:
        return abs(self.amount)


def _products(order) -> str:
    return ", ".join(f"{product_name_shown(line.name)} × {line.quantity}" if line.quantity > 1 else product_name_shown(line.name)
                     for line in order.lines.all())


def _card_label(payment) -> str:
    if payment.rail == "sandbox":
        return SandboxRail.METHODS.get(payment.payment_method, payment.payment_method).partition(" (")[0]
    return gettext("Card")


def wallet_movements(*, wallet: Wallet, before: str | None = None, limit: int = 50) -> tuple[list[Movement], bool]:
    """The wallet's history, newest first, each movement named for the buyer: a top-up, a spend at
    a store for a product, a refund. ``before`` is the id of the last movement of the previous page.
    Returns (movements, whether older ones exist). A fixed number of queries per page."""
    transfers = wallet_history(wallet=wallet)
    if before:
        transfers = transfers.filter(pk__lt=before)
    transfers = list(transfers[: limit + 1])
    more, transfers = len(transfers) > limit, transfers[:limit]
    by_payment = [t.reference for t in transfers if t.code in ("top_up", "wallet_spend", "tab_settlement_excess")]
    by_order = [t.reference for t in transfers if t.code in ("wallet_refund", "tab_refund")]
    payments = {p.pk: p for p in Payment.objects.filter(pk__in=by_payment).select_related("store", "auto_top_up")}
    orders = Order.objects.filter(Q(payment_id__in=by_payment) | Q(pk__in=by_order)).select_related("store", "charge").prefetch_related("lines")
    order_by_payment, order_by_id = {}, {}
    for order in orders:
        order_by_payment[order.payment_id] = order
        order_by_id[order.pk] = order

    movements = []
    for t in transfers:
        amount = t.amount if t.credit_account_id == wallet.account_id else -t.amount
        kind, title, detail = "other", t.code.replace("_", " ").capitalize(), ""
        if t.code == "top_up" and t.reference in payments:
            payment = payments[t.reference]
            automatic = getattr(payment, "auto_top_up", None) is not None
            kind, title = "top_up", gettext("Automatic top-up") if automatic else gettext("Top-up")
            detail = _card_label(payment)
        elif t.code == "wallet_spend":
            kind, order = "spend", order_by_payment.get(t.reference)
            if order is not None:
                charge = getattr(order, "charge", None)
                title = gettext("Charged by %(store)s") % {"store": order.store.name} if charge is not None else order.store.name
                detail = (charge.description if charge is not None else "") or _products(order)
            else:
                title = gettext("Spent")
        elif t.code in ("wallet_refund", "tab_refund"):
            kind, order = "refund", order_by_id.get(t.reference)
            title = gettext("Refund from %(store)s") % {"store": order.store.name} if order is not None else gettext("Refund")
            detail = _products(order) if order is not None else ""
        elif t.code == "tab_settlement_excess":
            kind, title = "tab_excess", gettext("Left over from settling your tab")
            payment = payments.get(t.reference)
            detail = gettext("Paid with %(card)s") % {"card": _card_label(payment)} if payment is not None else ""
        movements.append(Movement(t.pk, amount, t.currency, kind, title, detail, t.created_at))
    return movements, more


def tab_open_get(*, buyer, currency: str) -> Tab | None:
    return Tab.objects.select_related("account").filter(buyer=buyer, currency=currency, status=TabStatus.OPEN).first()


def tab_owed(*, tab: Tab) -> int:
    account = tab.account
    account.refresh_from_db(fields=["debits_posted", "credits_posted", "debits_pending"])
    return account.debits_posted + account.debits_pending - account.credits_posted


def tab_account_kind() -> str:
    return AccountKind.BUYER_TAB


def tab_is_overdue(tab: Tab, *, now=None) -> bool:
    """Whether an open tab is past its settle-by date (and so, by default, takes no more purchases)."""
    age = (now or timezone.now()) - tab.opened_at
    return age.days >= settings.STALL_TAB_SETTLE_AFTER_DAYS


def tab_payments(*, tab: Tab) -> QuerySet[Payment]:
    """The tab's purchases as payments: found through the payments_tab_by_reference index, so a
    tab's page and its settlement do not read every order ever made."""
    return Payment.objects.filter(rail="tab", rail_reference=tab.pk, status=PaymentStatus.SUCCEEDED)


def tab_purchases(*, tab: Tab):
    """What was bought on a tab, oldest first: its orders, with store and lines."""
    return (
        Order.objects.filter(payment__in=tab_payments(tab=tab))
        .select_related("store").prefetch_related("lines").order_by("pk")
    )


def tabs_settled(*, buyer, currency: str, limit: int = 20) -> QuerySet[Tab]:
    """A buyer's paid-off tabs in ``currency``, newest first."""
    return (
        Tab.objects.filter(buyer=buyer, currency=currency, status=TabStatus.SETTLED)
        .select_related("settlement").order_by("-settled_at", "-pk")[:limit]
    )


@dataclasses.dataclass(frozen=True)
class PayOptions:
    """What a signed-in buyer can pay a checkout with, besides a card."""

    amount: int
    currency: str
    balance: int
    confirm_above: int
    tab_owed: int
    tab_limit: int
    tab_overdue: bool
    tab_settling: bool

    @property
    def wallet_covers(self) -> bool:
        return self.balance >= self.amount

    @property
    def wallet_needs_confirm(self) -> bool:
        return self.amount > self.confirm_above

    @property
    def tab_takes_it(self) -> bool:
        return not self.tab_overdue and not self.tab_settling and self.tab_owed + self.amount <= self.tab_limit


def pay_options_for(*, buyer, checkout) -> PayOptions:
    """The wallet's balance and the tab's room for this checkout, in three queries at most."""
    currency = checkout.currency
    wallet = wallet_get(buyer=buyer, currency=currency)
    tab = Tab.objects.select_related("account", "settlement").filter(buyer=buyer, currency=currency, status=TabStatus.OPEN).first()
    owed, limit, overdue, settling = 0, None, False, False
    if tab is not None:
        a = tab.account
        owed, limit = a.debits_posted + a.debits_pending - a.credits_posted, tab.limit
        overdue = settings.STALL_TAB_BLOCK_WHEN_OVERDUE and tab_is_overdue(tab)
        settling = tab.settlement_id is not None and tab.settlement.status in ("processing", "requires_action")
    else:
        limit = tab_limit_for(buyer=buyer, currency=currency)
    return PayOptions(
        amount=checkout.amount_total, currency=currency,
        balance=wallet.account.available if wallet else 0,
        confirm_above=wallet.confirm_above if wallet else money_setting("STALL_WALLET_CONFIRM_ABOVE", currency),
        tab_owed=owed, tab_limit=limit, tab_overdue=overdue, tab_settling=settling,
    )


def wallet_page_url(*, currency: str, store=None, next_path: str = "", page: str = "wallets:wallet") -> str:
    """The wallet (or tab) page for ``currency``, from ``store``'s pages, coming back to ``next_path``."""
    query = {"currency": currency}
    if store is not None:
        query["store"] = store.slug
    if next_path:
        query["next"] = next_path
    return f"{reverse(page)}?{urlencode(query)}"
