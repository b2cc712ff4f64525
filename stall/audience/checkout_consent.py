"""The consent a buyer gave at checkout (``Checkout.email_consent``, recorded below us by the
checkout app) turned into a place on the store's list when the order is paid."""

from django.db import transaction

from .services import subscriber_consent_at_checkout


def consent_observe(*, order, paid, context, read) -> list:
    if not getattr(order, "checkout_id", None):
        return []
    # The paid order was made from its checkout object, so reading it costs no query.
    if not order.checkout.email_consent:
        return []
    store_id, email, customer_id = order.store_id, order.email, order.customer_id
    # After the payment commits: joining the list never holds up, nor fails, the paid order.
    transaction.on_commit(lambda: subscriber_consent_at_checkout(store_id=store_id, email=email, customer_id=customer_id))
    return []
