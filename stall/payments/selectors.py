from django.db.models import QuerySet

from stall.core.errors import NotFound
from stall.stores.models import Store

from .models import Refund


def refunds_for_store(*, store: Store) -> QuerySet[Refund]:
    return Refund.objects.filter(store=store).order_by("-pk")


def refund_get(*, store: Store, refund_id: str) -> Refund:
    """A refund of ``store``; another store's refund is "not found", never "forbidden"."""
    refund = Refund.objects.filter(store=store, pk=refund_id).first()
    if refund is None:
        raise NotFound("No such refund.")
    return refund
