from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "stall.checkout"
    label = "checkout"
