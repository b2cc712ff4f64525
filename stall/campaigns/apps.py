from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "stall.campaigns"
    label = "campaigns"

    def ready(self):
        from stall.orders.fulfilment import OrderPaidObserver, order_paid_register

        from .collect import RECOVERY_WAITING_SQL, recovery_paid

        # A failed pledge paid another way is paid through a checkout, on any rail: its paid order
        # collects the pledge.
        order_paid_register(OrderPaidObserver(handler=recovery_paid, read_sql=RECOVERY_WAITING_SQL))
