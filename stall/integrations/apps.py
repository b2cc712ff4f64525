from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "stall.integrations"
    label = "integrations"
