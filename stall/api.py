"""API v1: one NinjaAPI, a router per app. Conventions in DESIGN.md ("API v1 conventions")."""

from ninja import NinjaAPI

from stall.core.api import ApiKeyAuth, install_error_handlers

api = NinjaAPI(
    title="Stall API",
    version="1",
    description=(
        "Authenticate with `Authorization: Bearer <secret key>`. Amounts are integers in minor units "
        "with an ISO 4217 currency. Every POST accepts an `Idempotency-Key` header. Errors are "
        '`{"error": {"code", "message", "param"}}`. Lists are newest first with `limit` and `starting_after`.'
    ),
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)


def _mount() -> None:
    from stall.catalog.api import router as products
    from stall.checkout.api import router as checkouts
    from stall.ledger.api import router as balance
    from stall.orders.api import router as orders
    from stall.payments.api import router as refunds

    api.add_router("/products", products, tags=["Products"])
    api.add_router("/checkouts", checkouts, tags=["Checkouts"])
    api.add_router("/orders", orders, tags=["Orders"])
    api.add_router("/refunds", refunds, tags=["Refunds"])
    api.add_router("/balance", balance, tags=["Balance"])


_mount()
