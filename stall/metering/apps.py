from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "stall.metering"
    label = "metering"
