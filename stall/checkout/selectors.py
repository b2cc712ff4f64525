from stall.stores.models import Store

from .errors import CheckoutNotFound
from .models import Checkout


def checkout_get(*, checkout_id: str, store: Store | None = None, full: bool = True) -> Checkout:
    """A checkout (of ``store``), or CheckoutNotFound. ``full``: with its store, order, lines and
    payments, all that ``checkout_out`` shows, in three queries; else the row alone."""
    qs = Checkout.objects.all()
    if full:
        # By relation names: orders and payments sit above checkout and are not imported here.
        qs = qs.select_related("store", "order").prefetch_related("lines", "payments")
    if store is not None:
        qs = qs.filter(store=store)
    checkout = qs.filter(pk=checkout_id).first()
    if checkout is None:
        raise CheckoutNotFound()
    return checkout
