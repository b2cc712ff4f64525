"""What a store's sales cost to process, for the dashboard: the effective fee rate and its rails.

A card sale pays its own card fee. A wallet or tab sale pays a share of the card fee its buyer's
top-up or tab settlement cost (``Order.fee`` holds that share: see stall/payments/rails/wallet.py
and the wallets app's ``tab_settlement_succeed``). A tab sale's share is known only when the tab is
settled; until then it is pending, and the rates are taken over the sales whose cost is known.
What a sale costs is its net fee (``Order.fee_net``: a refunded wallet sale's share went back to
the wallet), the same figure the API gives and the ledger moved. All of it is one aggregate query
over the paid orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import Coalesce

from stall.orders.models import ORDER_FEE_NET, Order
from stall.stores.models import Store
from stall.wallets.models import Tab, TabStatus

IN_LEDGER_RAILS = ("wallet", "tab")
# A wallet sale refunded gives its fee share back to the wallet's pool; what it still costs is the rest.
NET_FEE = ORDER_FEE_NET
RAILS = (("card", "Card"), ("wallet", "Wallet"), ("tab", "Tab"))


def fee_rate(fees: int, gross: int) -> Decimal | None:
    """Fees as a percentage of gross, to two places; None with no sales."""
    if not gross:
        return None
    return (Decimal(fees) * 100 / gross).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class RailCost:
    rail: str
    label: str
    orders: int
    gross: int
    fees: int
    pending_orders: int = 0  # tab sales on a tab still open
    pending_gross: int = 0

    @property
    def rate(self) -> Decimal | None:
        return fee_rate(self.fees, self.gross - self.pending_gross)


@dataclass(frozen=True)
class StoreEconomics:
    currency: str
    orders: int
    gross: int
    fees: int
    rails: list[RailCost]
    # Tab sales whose tab is still open: their share of the settlement fee is not known yet.
    tab_pending_orders: int
    tab_pending_gross: int

    @property
    def rate(self) -> Decimal | None:
        """Fees ÷ gross of the paid orders, leaving out tab sales whose share is not known yet."""
        return fee_rate(self.fees, self.gross - self.tab_pending_gross)


def _rail_q(rail: str) -> Q:
    if rail == "card":
        return ~Q(payment__rail__in=IN_LEDGER_RAILS)
    return Q(payment__rail=rail)


def store_economics(*, store: Store) -> StoreEconomics:
    """Gross, processing fees and the effective fee rate of the store's paid real orders, by rail
    (one query)."""
    tab_open = Q(payment__rail="tab") & Exists(
        Tab.objects.filter(pk=OuterRef("payment__rail_reference"), status=TabStatus.OPEN)
    )
    aggregates = {
        "orders": Count("pk"), "gross": Coalesce(Sum("amount_total"), 0), "fees": Coalesce(Sum(NET_FEE), 0),
        "tab_pending_orders": Count("pk", filter=tab_open),
        "tab_pending_gross": Coalesce(Sum("amount_total", filter=tab_open), 0),
    }
    for rail, _ in RAILS:
        aggregates[f"{rail}_orders"] = Count("pk", filter=_rail_q(rail))
        aggregates[f"{rail}_gross"] = Coalesce(Sum("amount_total", filter=_rail_q(rail)), 0)
        aggregates[f"{rail}_fees"] = Coalesce(Sum(NET_FEE, filter=_rail_q(rail)), 0)
    # Test orders moved no real money and cost nothing real: they are left out.
    totals = Order.objects.filter(
        store=store, currency=store.currency, payment__isnull=False, livemode=True
    ).aggregate(**aggregates)
    return StoreEconomics(
        currency=store.currency, orders=totals["orders"], gross=totals["gross"], fees=totals["fees"],
        rails=[
            RailCost(rail=rail, label=label, orders=totals[f"{rail}_orders"], gross=totals[f"{rail}_gross"],
                     fees=totals[f"{rail}_fees"],
                     pending_orders=totals["tab_pending_orders"] if rail == "tab" else 0,
                     pending_gross=totals["tab_pending_gross"] if rail == "tab" else 0)
            for rail, label in RAILS
        ],
        tab_pending_orders=totals["tab_pending_orders"], tab_pending_gross=totals["tab_pending_gross"],
    )


@dataclass(frozen=True)
class OrderCost:
    fee: int
    rate: Decimal | None
    # How the fee came about, for the order page; empty for a card sale.
    note: str
    pending: bool


def order_processing_cost(*, order: Order) -> OrderCost:
    """An order's processing cost, and for a wallet or tab sale where it comes from."""
    payment = order.payment
    rail = payment.rail if payment is not None else ""
    rate = fee_rate(order.fee_net, order.amount_total)
    if rail == "wallet":
        note = "This sale's share of the card fee the buyer's wallet top-up cost."
        if order.fee_refunded:
            note += " Refunds gave their part of it back to the wallet."
        return OrderCost(order.fee_net, rate, note, False)
    if rail == "tab":
        settled = Tab.objects.filter(pk=payment.rail_reference, status=TabStatus.SETTLED).exists()
        if settled:
            note = "This sale's share of the card fee that settling the buyer's tab cost."
            return OrderCost(order.fee_net, rate, note, False)
        return OrderCost(order.fee_net, None, "Allocated when the tab is settled.", True)
    return OrderCost(order.fee_net, rate, "", False)
