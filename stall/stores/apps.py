from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stall.stores"
    label = "stores"
