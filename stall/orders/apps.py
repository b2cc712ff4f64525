from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "stall.orders"
    label = "orders"

    def ready(self):
        from stall.payments.models import PaymentPurpose
        from stall.payments.services import PurposeHandlers, payment_purpose_register

        from .disputes import order_disputed, order_disputed_register
        from .fulfilment import OrderPaidObserver, order_paid_register
        from .license_seats import license_seat_order_refunded
        from .licenses import (
            POLICY_SQL,
            license_keys_issue,
            license_order_disputed,
            license_order_refunded,
        )
        from .refunds import order_refunded, order_refunded_register
        from .services import checkout_payment_replayed, checkout_payment_succeeded

        # A checkout's payment makes its order when the rail reports success, on any rail.
        payment_purpose_register(
            PaymentPurpose.CHECKOUT,
            PurposeHandlers(
                succeeded=checkout_payment_succeeded, replayed=checkout_payment_replayed, refunded=order_refunded,
                disputed=order_disputed,
            ),
        )
        # A paid order of a product with a license policy issues its keys, on any rail; a full
        # refund disables them.
        order_paid_register(OrderPaidObserver(handler=license_keys_issue, read_sql=POLICY_SQL))
        order_refunded_register(license_order_refunded)
        # A paid extra seat's order refunded in full gives the seat up.
        order_refunded_register(license_seat_order_refunded)
        # A chargeback disables them while it is open or lost.
        order_disputed_register(license_order_disputed)
