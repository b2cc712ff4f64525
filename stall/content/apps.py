from django.apps import AppConfig


class ContentConfig(AppConfig):
    name = "stall.content"
    label = "content"

    def ready(self):
        from stall.catalog.models import ProductKind
        from stall.orders.fulfilment import fulfilment_register

        from .services import post_unlock_fulfil, tip_fulfil

        fulfilment_register(kind=ProductKind.POST, handler=post_unlock_fulfil)
        fulfilment_register(kind=ProductKind.TIP, handler=tip_fulfil)
