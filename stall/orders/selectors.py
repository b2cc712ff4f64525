from django.db.models import OuterRef, Q, QuerySet, Subquery

from stall.stores.models import Store

from .errors import OrderNotFound
from .models import DownloadCount, Entitlement, Order, OrderLine


def orders_for_store(*, store: Store, query: str = "") -> QuerySet[Order]:
    # kind: what was bought (download, post, tip, charge), from the first line; one subquery, no N+1.
    first_kind = OrderLine.objects.filter(order=OuterRef("pk")).order_by("pk").values("product__kind")[:1]
    qs = Order.objects.filter(store=store).annotate(kind=Subquery(first_kind)).order_by("-pk")
    query = (query or "").strip()
    if query:
        qs = qs.filter(Q(pk=query) | Q(email__icontains=query) | Q(customer__name__icontains=query))
    return qs


def order_get(*, store: Store, order_id: str) -> Order:
    order = (
        Order.objects.filter(store=store, pk=order_id)
        .select_related("payment", "customer", "checkout")
        .prefetch_related("lines", "refunds", "entitlements")
        .first()
    )
    if order is None:
        raise OrderNotFound()
    return order


def entitlements_for_email(*, email: str) -> QuerySet[Entitlement]:
    """Everything bought with this email, in every store of this Stall, newest first."""
    return (
        Entitlement.objects.filter(email__iexact=email)
        .select_related("product", "store", "order")
        .prefetch_related("product__files")
        .order_by("-pk")
    )


def downloads_used(*, entitlement: Entitlement) -> dict[str, int]:
    return dict(DownloadCount.objects.filter(entitlement=entitlement).values_list("file_id", "count"))
