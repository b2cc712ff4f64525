from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "stall.insights"
    label = "insights"
