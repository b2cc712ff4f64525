from django.apps import AppConfig


class AudienceConfig(AppConfig):
    name = "stall.audience"
    label = "audience"
