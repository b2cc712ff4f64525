from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "stall.content"
    label = "content"

    def ready(self):
        from stall.orders.services import order_paid_handler_register

        from .services import order_paid_handle

        order_paid_handler_register(order_paid_handle)
