from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "stall.payments"
    label = "payments"
