"""The consent a buyer gave at checkout (``Checkout.email_consent``, recorded below us by the
checkout app) turned into a place on the store's list when the order is paid."""

from django.db import transaction

from stall.checkout.models import Checkout
from stall.orders.models import Order

from .services import subscriber_consent_at_checkout


def consent_observe(*, order, paid, context, read) -> list:
    """Runs inside the paid order's transaction, on every rail; adds no statement to it. The
    card path's order holds its checkout object, read there; the lean wallet path's does not, and
    the one-click spends have no checkout at all."""
    checkout_id = getattr(order, "checkout_id", None)
    if not checkout_id:
        return []
    store_id, email, customer_id = order.store_id, order.email, order.customer_id
    if Order.checkout.is_cached(order):
        if order.checkout.email_consent:
            language = order.checkout.language
            transaction.on_commit(lambda: subscriber_consent_at_checkout(store_id=store_id, email=email, customer_id=customer_id,
                                                                         language=language))
        return []

    def after_commit() -> None:
        # One short read after the spend has committed, never inside its write transaction.
        language = Checkout.objects.filter(pk=checkout_id, email_consent=True).values_list("language", flat=True).first()
        if language is not None:
            subscriber_consent_at_checkout(store_id=store_id, email=email, customer_id=customer_id, language=language)

    transaction.on_commit(after_commit)
    return []
