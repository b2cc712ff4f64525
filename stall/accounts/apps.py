from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "stall.accounts"
    label = "accounts"
