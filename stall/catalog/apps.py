from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "stall.catalog"
    label = "catalog"
