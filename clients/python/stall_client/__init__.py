"""A small typed client for Stall's API v1.

    from stall_client import Stall
    stall = Stall("sk_live_…", base_url="https://shop.example")
    stall.events.send([{"id": "req-1", "customer": "cus_…", "name": "api.call"}])
"""

from .client import Stall, StallAPIError, StallConnectionError
from .events import BatchResult, EventResult
from .webhooks import WebhookVerificationError, webhook_verify

__all__ = [
    "BatchResult",
    "EventResult",
    "Stall",
    "StallAPIError",
    "StallConnectionError",
    "WebhookVerificationError",
    "webhook_verify",
]
