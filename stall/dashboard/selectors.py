"""Reads the dashboard needs that no domain app offers yet. Each takes the creator's store."""

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
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
    # Test orders (paid with test money) are counted apart, never in the figures above.
    test_orders: int = 0
    test_gross: int = 0


def sales_summary(*, store: Store) -> SalesSummary:
    """Paid orders of the store (refunded ones included) and what they brought in, in the store's
    currency; test orders apart (one query)."""
    live, test = Q(livemode=True), Q(livemode=False)
    totals = Order.objects.filter(store=store, currency=store.currency).aggregate(
        orders=Count("pk", filter=live), gross=Coalesce(Sum("amount_total", filter=live), 0),
        refunded=Coalesce(Sum("amount_refunded", filter=live), 0),
        test_orders=Count("pk", filter=test),
        test_gross=Coalesce(Sum("amount_total", filter=test), 0),
    )
    return SalesSummary(currency=store.currency, **totals)


def api_keys_for_store(*, store: Store):
    return ApiKey.objects.filter(store=store).order_by("-pk")
