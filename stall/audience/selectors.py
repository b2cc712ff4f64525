"""Reads: the store's customers with their totals, one customer's history, the list, broadcasts."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least

from stall.accounts.models import Customer
from stall.campaigns.models import Pledge
from stall.core.errors import NotFound
from stall.memberships.models import LIVE_STATUSES, Subscription
from stall.orders.models import Order, OrderLine
from stall.payments.models import Wallet
from stall.stores.models import Store

from .models import Broadcast, Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from .segments import BACKING, PURCHASED


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""
    product: str = ""
    tier: str = ""
    campaign: str = ""
    has_wallet: bool | None = None
    subscribed: bool | None = None


def _order_totals(store: Store):
    """Per-customer aggregates of the store's real (live) purchases in the store's currency, as
    subqueries, so the list's one query neither multiplies rows nor loads orders."""
    orders = Order.objects.filter(customer=OuterRef("pk"), store=store, livemode=True, status__in=PURCHASED)
    per_customer = orders.order_by().values("customer")

    def one(aggregate):
        return Subquery(per_customer.annotate(v=aggregate).values("v")[:1])

    spent = Sum("amount_total", filter=Q(currency=store.currency)) - Sum("amount_refunded", filter=Q(currency=store.currency))
    return {
        "order_count": Coalesce(one(Count("pk")), Value(0), output_field=IntegerField()),
        "spent": Coalesce(one(spent), Value(0), output_field=IntegerField()),
        "first_order_at": one(Min("created_at")),
        "last_order_at": one(Max("created_at")),
    }


def customers_list(*, store: Store, filters: CustomerFilters | None = None) -> QuerySet:
    """The store's customers, newest activity first, each with ``order_count``, ``spent`` (minor
    units of the store's currency, refunds taken off), ``first_seen``, ``last_seen``,
    ``subscribed`` and ``has_wallet``."""
    f = filters or CustomerFilters()
    totals = _order_totals(store)
    qs = Customer.objects.filter(store=store).annotate(
        **totals,
        first_seen=Least("created_at", Coalesce("first_order_at", "created_at")),
        last_seen=Greatest("created_at", Coalesce("last_order_at", "created_at")),
        subscribed=Exists(Subscriber.objects.filter(store=store, email=OuterRef("email"), status=SubscriberStatus.SUBSCRIBED)),
        has_wallet=Exists(Wallet.objects.filter(buyer__email=OuterRef("email"))),
    )
    if f.q:
        qs = qs.filter(Q(email__icontains=f.q) | Q(name__icontains=f.q))
    if f.product:
        bought = OrderLine.objects.filter(product_id=f.product, order__customer=OuterRef("pk"), order__status__in=PURCHASED)
        qs = qs.filter(Exists(bought))
    if f.tier:
        qs = qs.filter(Exists(Subscription.objects.filter(customer=OuterRef("pk"), tier_id=f.tier, status__in=LIVE_STATUSES)))
    if f.campaign:
        qs = qs.filter(Exists(Pledge.objects.filter(campaign_id=f.campaign, campaign__store=store, email=OuterRef("email"),
                                                    status__in=BACKING)))
    if f.has_wallet is not None:
        qs = qs.filter(has_wallet=f.has_wallet)
    if f.subscribed is not None:
        qs = qs.filter(subscribed=f.subscribed)
    return qs.order_by("-last_seen", "-pk")


def customer_get(*, store: Store, customer_id: str) -> Customer:
    customer = customers_list(store=store).filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("No such customer.", param="customer")
    return customer


def customer_history(*, store: Store, customer: Customer) -> dict:
    """What the customer did in the store: orders (with lines), memberships, list status, broadcasts."""
    orders = Order.objects.filter(store=store, customer=customer).prefetch_related("lines").order_by("-pk")[:200]
    subscriptions = Subscription.objects.filter(store=store, customer=customer).select_related("tier").order_by("-created_at")
    subscriber = Subscriber.objects.filter(store=store, email=customer.email).first()
    deliveries = (Delivery.objects.filter(broadcast__store=store, email=customer.email, status=DeliveryStatus.SENT)
                  .select_related("broadcast").order_by("-sent_at")[:50])
    return {"orders": list(orders), "subscriptions": list(subscriptions), "subscriber": subscriber, "deliveries": list(deliveries)}


def subscriber_counts(*, store: Store) -> dict[str, int]:
    rows = Subscriber.objects.filter(store=store).values("status").annotate(n=Count("pk"))
    counts = {s.value: 0 for s in SubscriberStatus}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def broadcasts_list(*, store: Store) -> QuerySet:
    return Broadcast.objects.filter(store=store).order_by("-pk")


def broadcast_get(*, store: Store, broadcast_id: str) -> Broadcast:
    broadcast = Broadcast.objects.filter(store=store, pk=broadcast_id).first()
    if broadcast is None:
        raise NotFound("No such broadcast.", param="broadcast")
    return broadcast


def broadcast_progress(*, broadcast: Broadcast) -> dict[str, int]:
    rows = Delivery.objects.filter(broadcast=broadcast).values("status").annotate(n=Count("pk"))
    counts = {s.value: 0 for s in DeliveryStatus}
    counts.update({row["status"]: row["n"] for row in rows})
    counts["total"] = sum(counts[s.value] for s in DeliveryStatus)
    counts["done"] = counts["total"] - counts[DeliveryStatus.PENDING]
    counts["percent"] = int(100 * counts["done"] / counts["total"]) if counts["total"] else (100 if broadcast.finished_at else 0)
    return counts
