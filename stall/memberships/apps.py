from django.apps import AppConfig


class MembershipsConfig(AppConfig):
    name = "stall.memberships"
    label = "memberships"

    def ready(self):
        from stall.catalog.models import ProductKind
        from stall.orders.access import access_register
        from stall.orders.fulfilment import (
            OrderPaidObserver,
            fulfilment_register,
            order_paid_register,
        )
        from stall.orders.pricing import PriceLimit, price_limit_register
        from stall.orders.tiers import TierDirectory, tier_directory_register

        from .selectors import ACCESS, tier_choices
        from .services import (
            CAPPED_TIER_SQL,
            cap_limit,
            cap_limit_sql,
            cap_observe,
            membership_fulfil,
            tier_members,
        )

        # A paid order of a tier's product starts, renews or upgrades a membership, on any rail.
        fulfilment_register(kind=ProductKind.MEMBERSHIP, handler=membership_fulfil)
        # Unlocks count towards a capped tier (cap-to-subscribe).
        order_paid_register(OrderPaidObserver(handler=cap_observe, read_sql=CAPPED_TIER_SQL))
        # An unlock of a post gated to a capped tier is charged at most what is left under the cap.
        price_limit_register(PriceLimit(limit_sql=cap_limit_sql, limit=cap_limit))
        # Members read the posts gated to their tier.
        access_register(ACCESS)
        # Other domains (a metering plan carried by a tier) name tiers by id.
        tier_directory_register(TierDirectory(tiers=tier_choices, members=tier_members))
