from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "stall.orders"
    label = "orders"
