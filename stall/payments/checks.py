"""System checks of how this Stall takes payments (``manage.py check --deploy``)."""

from django.conf import settings
from django.core.checks import Warning

from .rails import sandbox_enabled


def sandbox_deploy_check(app_configs=None, **kwargs) -> list[Warning]:
    """Warn when the sandbox's test cards are on where the Stall looks like production: an https
    base URL. There they can only have been turned on by hand (STALL_SANDBOX_ENABLED=1)."""
    if not settings.BASE_URL.startswith("https://") or not sandbox_enabled():
        return []
    return [
        Warning(
            "The sandbox's test cards (sandbox_visa, …) are on, and STALL_BASE_URL is https.",
            hint=(
                "Buyers can pay with test cards: their orders are test orders, kept out of "
                "balances, but downloads and posts are still delivered. Unset "
                "STALL_SANDBOX_ENABLED in production; Stall then turns test cards off wherever "
                "real money is taken."
            ),
            id="payments.W001",
        )
    ]
