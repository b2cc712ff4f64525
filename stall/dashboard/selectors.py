"""Reads the dashboard needs that no domain app offers yet. Each takes the creator's store."""

from dataclasses import dataclass

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce

from stall.integrations.models import ApiKey
from stall.orders.models import Order
from stall.stores.models import Store


@dataclass(frozen=True)
class SalesSummary:
    orders: int
    gross: int
    refunded: int
    currency: str


def sales_summary(*, store: Store) -> SalesSummary:
    """Paid orders of the store (refunded ones included) and what they brought in, in the store's currency."""
    totals = Order.objects.filter(store=store, currency=store.currency).aggregate(
        orders=Count("pk"), gross=Coalesce(Sum("amount_total"), 0), refunded=Coalesce(Sum("amount_refunded"), 0)
    )
    return SalesSummary(orders=totals["orders"], gross=totals["gross"], refunded=totals["refunded"], currency=store.currency)


def api_keys_for_store(*, store: Store):
    return ApiKey.objects.filter(store=store).order_by("-pk")
