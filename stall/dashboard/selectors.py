"""Reads the dashboard needs that no domain app offers yet. Each takes the creator's store."""

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from stall.catalog.models import LISTED_KINDS, Product, ProductStatus
from stall.integrations.models import ApiKey
from stall.orders.models import Order
from stall.payments.rails import sandbox_enabled
from stall.payments.selectors import stripe_config_for_store
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


@dataclass(frozen=True)
class FirstSteps:
    """The new creator's checklist on the overview, each step read from what the store really has.
    The first step, a store, is done by being on its overview."""

    total = 5
    products: int  # listed products, drafts included
    published: int
    stripe: bool  # card payments through Stripe (the store's keys or the platform's)
    test_cards: bool  # the sandbox's test cards are taken at this store
    shared: bool  # the link was copied or marked shared, or an order came in anyway

    @property
    def payments(self) -> bool:
        return self.stripe or self.test_cards

    @property
    def done(self) -> int:
        return sum([True, self.products > 0, self.payments, self.published > 0, self.shared])

    @property
    def complete(self) -> bool:
        return self.done == self.total


def first_steps(*, store: Store) -> FirstSteps:
    counts = Product.objects.filter(store=store, kind__in=LISTED_KINDS).aggregate(
        products=Count("pk"), published=Count("pk", filter=Q(status=ProductStatus.PUBLISHED)),
    )
    shared = store.link_shared_at is not None or Order.objects.filter(store=store).exists()
    return FirstSteps(
        **counts, stripe=stripe_config_for_store(store) is not None,
        test_cards=sandbox_enabled(store_id=store.pk), shared=shared,
    )
