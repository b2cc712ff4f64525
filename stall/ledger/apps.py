from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "stall.ledger"
    label = "ledger"
