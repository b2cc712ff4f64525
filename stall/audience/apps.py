from django.apps import AppConfig


class AudienceConfig(AppConfig):
    name = "stall.audience"
    label = "audience"

    def ready(self):
        from stall.orders.fulfilment import OrderPaidObserver, order_paid_register

        from .checkout_consent import consent_observe

        # A buyer who ticked "email me" at checkout joins the list once the order is paid. The
        # one-click spend has no checkout, so there the observer returns at once, querying nothing.
        order_paid_register(OrderPaidObserver(handler=consent_observe))
