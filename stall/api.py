"""API v1: one NinjaAPI, a router per app. Conventions in DESIGN.md ("API v1 conventions")."""

from django.core.exceptions import ImproperlyConfigured
from ninja import NinjaAPI

from stall.campaigns.api import campaigns_router as campaigns
from stall.campaigns.api import pledges_router as pledges
from stall.catalog.api import router as products
from stall.checkout.api import discounts_router as discounts
from stall.commissions.api import router as commissions
from stall.content.api import posts_router as posts
from stall.content.api import tips_router as tips
from stall.core.api import JsonBodyParser, install_error_handlers, router_refuse_other_methods
from stall.integrations.api import events_router as events
from stall.integrations.api import router as webhook_endpoints
from stall.integrations.services import ApiKeyAuth
from stall.ledger.api import router as balance
from stall.memberships.api import customers_router as customer_subscriptions
from stall.memberships.api import subscriptions_router as subscriptions
from stall.memberships.api import tiers_router as tiers
from stall.metering.api import customers_router as customer_usage
from stall.metering.api import event_ingest_add
from stall.metering.api import meters_router as meters
from stall.metering.api import plans_router as plans
from stall.metering.api import usage_subscriptions_router as usage_subscriptions
from stall.orders.api import checkouts_router as checkouts
from stall.orders.api import licenses_router as licenses
from stall.orders.api import refunds_router as refunds
from stall.orders.api import router as orders
from stall.wallets.api import customers_router as customers
from stall.wallets.api import gift_cards_router as gift_cards
from stall.wallets.api import router as charges

WEBHOOKS_DOC = """## Webhooks

Register an endpoint with `POST /api/v1/webhook_endpoints` (or in the dashboard). Each event is
POSTed as JSON and signed the [Standard Webhooks](https://www.standardwebhooks.com/) way with the
endpoint's `whsec_` secret: headers `webhook-id` (the event id, the same on every retry),
`webhook-timestamp` and `webhook-signature`. Answer 2xx within 10 seconds; anything else is tried
again after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h. Verify a delivery in a few lines of Python,
with nothing to install:

```python
import base64, hashlib, hmac, time

def stall_webhook_is_genuine(secret: str, headers: dict, body: bytes) -> bool:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > 300:  # refuse replays of old deliveries
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, sig.partition(",")[2])
               for sig in headers["webhook-signature"].split())
```

Pass the raw body, before any JSON parsing. The `standardwebhooks` package does the same.
"""

class StallAPI(NinjaAPI):
    """Names each operation in the OpenAPI document ``<resource>_<action>``: ``products_list``,
    ``checkouts_confirm``, ``webhook_endpoints_roll_secret``.

    The resource is the prefix the operation's router is mounted at; the action is the view's
    name without its entity (the view ``webhook_endpoint_roll_secret`` mounted at
    ``/webhook_endpoints``), so a router cannot pick an id of its own and drift from the rest.
    Generated clients turn these ids into method names, so they must be unique: each HTTP method
    is registered as its own operation, and PATCH, Stall's alias for a POST update, is
    ``<resource>_patch``. A view whose name does not start with its entity is refused here, when
    the document is built, rather than given an id nobody chose.
    """

    def __init__(self, **kwargs):
        self._resources = {}  # view function -> the prefix its router is mounted at
        super().__init__(**kwargs)

    def add_router(self, prefix, router, **kwargs):
        super().add_router(prefix, router, **kwargs)
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                self._resources[operation.view_func] = prefix.strip("/")

    def get_openapi_operation_id(self, operation) -> str:
        view = operation.view_func.__name__
        if len(operation.methods) != 1:
            raise ImproperlyConfigured(
                f"{view} answers {', '.join(operation.methods)} as one operation; register each "
                "method on its own so that each has its own operationId."
            )
        resource = self._resources[operation.view_func]
        entity = resource.removesuffix("s")
        if not view.startswith(f"{entity}_"):
            raise ImproperlyConfigured(
                f"{view} is mounted at /{resource}: name it {entity}_<action>."
            )
        action = "patch" if operation.methods == ["PATCH"] else view.removeprefix(f"{entity}_")
        return f"{resource}_{action}"


api = StallAPI(
    title="Stall API",
    version="1",
    description=(
        "Authenticate with `Authorization: Bearer <secret key>`. Amounts are integers in minor units "
        "with an ISO 4217 currency. Every POST accepts an `Idempotency-Key` header. Errors are "
        '`{"error": {"code", "message", "param"}}`. Lists are newest first with `limit` and `starting_after`.'
        "\n\n" + WEBHOOKS_DOC
    ),
    auth=ApiKeyAuth(),
    parser=JsonBodyParser(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)


def _mount() -> None:
    # /events lists webhook events (integrations) and takes usage event batches (metering).
    event_ingest_add(events)
    router_refuse_other_methods(events)
    api.add_router("/products", products, tags=["Products"])
    api.add_router("/checkouts", checkouts, tags=["Checkouts"])
    api.add_router("/discounts", discounts, tags=["Discounts"])
    api.add_router("/orders", orders, tags=["Orders"])
    api.add_router("/refunds", refunds, tags=["Refunds"])
    api.add_router("/balance", balance, tags=["Balance"])
    api.add_router("/webhook_endpoints", webhook_endpoints, tags=["Webhooks"])
    api.add_router("/events", events, tags=["Webhooks"])
    api.add_router("/posts", posts, tags=["Posts"])
    api.add_router("/tips", tips, tags=["Tips"])
    api.add_router("/charges", charges, tags=["Charges"])
    api.add_router("/customers", customers, tags=["Customers"])
    api.add_router("/customers", customer_subscriptions, tags=["Customers"])
    api.add_router("/tiers", tiers, tags=["Memberships"])
    api.add_router("/subscriptions", subscriptions, tags=["Memberships"])
    api.add_router("/customers", customer_usage, tags=["Customers"])
    api.add_router("/meters", meters, tags=["Usage billing"])
    api.add_router("/plans", plans, tags=["Usage billing"])
    api.add_router("/usage_subscriptions", usage_subscriptions, tags=["Usage billing"])
    api.add_router("/campaigns", campaigns, tags=["Campaigns"])
    api.add_router("/pledges", pledges, tags=["Campaigns"])
    api.add_router("/gift_cards", gift_cards, tags=["Gift cards"])
    api.add_router("/licenses", licenses, tags=["License keys"])
    api.add_router("/commissions", commissions, tags=["Commissions"])


_mount()
