from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "stall.campaigns"
    label = "campaigns"
