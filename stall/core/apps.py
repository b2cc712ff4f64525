from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "stall.core"
    label = "core"
