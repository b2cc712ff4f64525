from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "stall.payments"
    label = "payments"

    def ready(self):
        from . import stripe_rail  # noqa: F401  (registers the Stripe rail in rails.RAILS)
