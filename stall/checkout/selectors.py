from django.db import connection

from stall.core.rows import model_columns, model_from_row
from stall.stores.models import Store

from .errors import CheckoutNotFound
from .models import Checkout


def checkout_get(*, checkout_id: str, store: Store | None = None, full: bool = True) -> Checkout:
    """A checkout (of ``store``), or CheckoutNotFound. ``full``: with its store, order, lines and
    payments, all that ``checkout_out`` shows, in three queries; else the row alone."""
    if not full:
        return _checkout_row(checkout_id=checkout_id, store=store)
    # By relation names: orders and payments sit above checkout and are not imported here.
    qs = Checkout.objects.select_related("store", "order").prefetch_related("lines", "payments")
    if store is not None:
        qs = qs.filter(store=store)
    checkout = qs.filter(pk=checkout_id).first()
    if checkout is None:
        raise CheckoutNotFound()
    return checkout


# The row alone, written out: every confirm over the API reads it first (stall.core.rows says why).
_CHECKOUT_SQL = f"SELECT {model_columns(Checkout, 'k')} FROM checkout_checkout k WHERE k.id = %s"


def _checkout_row(*, checkout_id: str, store: Store | None) -> Checkout:
    sql, params = _CHECKOUT_SQL, [checkout_id]
    if store is not None:
        sql, params = sql + " AND k.store_id = %s", [checkout_id, store.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise CheckoutNotFound()
    checkout = model_from_row(Checkout, row)
    if store is not None:
        Checkout.store.field.set_cached_value(checkout, store)
    return checkout


def checkout_shown(*, checkout: Checkout, store: Store) -> Checkout:
    """``checkout`` as ``checkout_out`` shows it: as given when it holds all that it shows (its
    lines, the payment that paid it and its order, as a paid card confirm returns it), else read
    again with ``checkout_get``."""
    held = (
        checkout.store_id == store.pk
        and "lines" in getattr(checkout, "_prefetched_objects_cache", {})
        and getattr(checkout, "latest_payment", None) is not None
        and Checkout.order.is_cached(checkout)
    )
    return checkout if held else checkout_get(checkout_id=checkout.pk, store=store)
