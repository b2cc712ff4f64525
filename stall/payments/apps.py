from django.apps import AppConfig
from django.core import checks


class PaymentsConfig(AppConfig):
    name = "stall.payments"
    label = "payments"

    def ready(self):
        from .checks import sandbox_deploy_check

        checks.register(sandbox_deploy_check, checks.Tags.security, deploy=True)
