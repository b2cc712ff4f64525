from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "stall.wallets"
    label = "wallets"

    def ready(self):
        from stall.payments.models import PaymentPurpose
        from stall.payments.rails import RAILS
        from stall.payments.services import payment_purpose_register

        from .rails import TabRail, WalletRail
        from .services import tab_settlement_fail, tab_settlement_succeed, top_up_fail, top_up_succeed

        RAILS["wallet"] = WalletRail()
        RAILS["tab"] = TabRail()
        payment_purpose_register(PaymentPurpose.TOP_UP, top_up_succeed, on_failure=top_up_fail)
        payment_purpose_register(PaymentPurpose.TAB_SETTLEMENT, tab_settlement_succeed, on_failure=tab_settlement_fail)
