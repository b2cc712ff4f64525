from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "stall.wallets"
    label = "wallets"

    def ready(self):
        from stall.catalog.models import ProductKind
        from stall.orders.charging import store_charge_register
        from stall.orders.fulfilment import fulfilment_register
        from stall.orders.refunds import order_refunded_register, refund_check_register
        from stall.payments.models import PaymentPurpose
        from stall.payments.rails.wallet import wallet_spent_register
        from stall.payments.services import PurposeHandlers, payment_purpose_register

        from .allowances import charge_create, charge_order_refunded
        from .gift_cards import gift_card_fulfil, gift_card_order_refunded, gift_card_refund_check
        from .services import (
            tab_settlement_fail,
            tab_settlement_succeed,
            top_up_fail,
            top_up_succeed,
            wallet_spent,
        )

        # Card money for a wallet or a tab: what its success or failure does in the ledger.
        payment_purpose_register(PaymentPurpose.TOP_UP, PurposeHandlers(succeeded=top_up_succeed, failed=top_up_fail))
        payment_purpose_register(
            PaymentPurpose.TAB_SETTLEMENT, PurposeHandlers(succeeded=tab_settlement_succeed, failed=tab_settlement_fail)
        )
        # A spend that leaves the wallet below its threshold queues an automatic top-up.
        wallet_spent_register(wallet_spent)
        # Other domains (metering) charge a customer's wallet under their allowance through orders.
        store_charge_register(charge_create)
        # A refunded charge gives its room back to the buyer's allowance.
        order_refunded_register(charge_order_refunded)
        # A paid gift card product issues its cards; refunding it cancels them while unredeemed.
        fulfilment_register(kind=ProductKind.GIFT_CARD, handler=gift_card_fulfil)
        refund_check_register(gift_card_refund_check)
        order_refunded_register(gift_card_order_refunded)
