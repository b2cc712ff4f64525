from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "stall.dashboard"
    label = "dashboard"
