from stall.stores.models import Store

from .errors import CheckoutNotFound
from .models import Checkout


def checkout_get(*, checkout_id: str, store: Store | None = None) -> Checkout:
    qs = Checkout.objects.select_related("store").prefetch_related("lines")
    if store is not None:
        qs = qs.filter(store=store)
    checkout = qs.filter(pk=checkout_id).first()
    if checkout is None:
        raise CheckoutNotFound()
    return checkout
