from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "stall.metering"
    label = "metering"

    def ready(self):
        from stall.orders.tiers import membership_listen

        from .services import membership_follow

        # A member of a tier carrying a plan is billed for usage while they are a member.
        membership_listen(membership_follow)
