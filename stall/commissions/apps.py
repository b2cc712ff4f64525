from django.apps import AppConfig


class CommissionsConfig(AppConfig):
    name = "stall.commissions"
    label = "commissions"

    def ready(self):
        from stall.catalog.models import ProductKind
        from stall.catalog.services import KindTerms, product_kind_terms_register
        from stall.orders.fulfilment import fulfilment_register
        from stall.orders.library import library_register
        from stall.orders.refunds import order_refunded_register

        from . import tasks  # noqa: F401 - registers the periodic auto-accept with Huey
        from .library import library_commissions
        from .services import (
            commission_fulfil,
            commission_order_refunded,
            service_terms_out,
            service_terms_set,
        )

        # A paid order of a service product opens its commission and holds the money, on any rail.
        fulfilment_register(kind=ProductKind.SERVICE, handler=commission_fulfil)
        # Refunded in full from the order's page: the commission closes and its hold is released.
        order_refunded_register(commission_order_refunded)
        # A service product made through the products API gets its terms (slots, days to accept).
        product_kind_terms_register(ProductKind.SERVICE, KindTerms(set=service_terms_set, out=service_terms_out))
        # The buyer's library lists their commissions with what else they bought.
        library_register(library_commissions)
