from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "stall.orders"
    label = "orders"

    def ready(self):
        from stall.payments.models import PaymentPurpose
        from stall.payments.services import PurposeHandlers, payment_purpose_register

        from .refunds import order_refunded
        from .services import checkout_payment_replayed, checkout_payment_succeeded

        # A checkout's payment makes its order when the rail reports success, on any rail.
        payment_purpose_register(
            PaymentPurpose.CHECKOUT,
            PurposeHandlers(
                succeeded=checkout_payment_succeeded, replayed=checkout_payment_replayed, refunded=order_refunded,
            ),
        )
