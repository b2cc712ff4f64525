"""API v1 fuzzed from its own OpenAPI document with schemathesis.

Every operation in ``/api/v1/openapi.json`` gets requests generated from the document, sent
in-process to Stall's WSGI application with a real API key of a store that has a product, an
order, a refund, a checkout, a post, a customer, a charge, a webhook endpoint, a delivery and
an event. Every other request uses those objects' ids in the path, so updates, archives,
refunds and confirmations reach the services rather than stopping at "no such object".

Per operation: the schema's boundary values that it calls valid (schemathesis's coverage phase,
positive cases only) and EXAMPLES_PER_OPERATION generated requests, valid and not, derandomized
so that every run sends the same requests. A request fails the test when the answer is a 5xx,
when its status code, content type, headers or body is not what the document declares, when a
request the document calls invalid is accepted, or when one it calls valid is refused for its
shape (schema_valid_request_accepted below).

The requests run inside the test's transaction, as every test here does, so work deferred to
commit (webhook deliveries, receipt emails) is not started: nothing leaves this machine.
"""

from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.campaigns.services import campaign_create, campaign_publish, pledge_create
from stall.catalog.services import product_create
from stall.checkout.discounts import discount_create
from stall.checkout.services import CheckoutItem, checkout_create
from stall.commissions.services import commission_reserve
from stall.content.services import post_create
from stall.integrations import webhooks
from stall.integrations.models import Event, WebhookDelivery
from stall.memberships.services import subscription_join
from stall.memberships.tiers import tier_create
from stall.metering.services import meter_create, plan_create, usage_subscription_create
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.refunds import refund_create
from stall.testing import buy
from stall.wallets.allowances import allowance_grant, charge_create
from stall.wallets.gift_cards import gift_card_issue
from stall.wallets.services import wallet_top_up

EXAMPLES_PER_OPERATION = 10

# Refusals of a request the document calls valid that depend on data, configuration or state
# rather than on the request's shape, so that no schema can state them.
REFUSALS_NO_SCHEMA_CAN_STATE = {
    ("resource_missing", None),  # an id in the body, well formed, of no object of this store
    ("invalid_webhook_endpoint", "url"),  # the host does not resolve (in DNS, not in the request)
    ("invalid_payment_method", "payment_method"),  # none sent for a checkout that is not free
    ("stripe_not_configured", "payment_method"),  # the store has no Stripe keys
    ("currency_mismatch", "currency"),  # a known currency, but not the store's
    ("invalid_currency", "currency"),  # three letters, but no ISO 4217 code (see core/api.py)
    ("invalid_product", "suggested_amount"),  # below amount, or on a fixed-price product (update)
    ("invalid_product", "slug"),  # another product of the store has that address
    ("invalid_post", "slug"),  # the same, for a post
    ("invalid_checkout", "email"),  # format: email, but not an address Django's validator takes
    ("invalid_tier", "cap_to_subscribe"),  # capped without a monthly price (another field's value)
    ("invalid_tier", "prices"),  # two prices of the same interval
    ("invalid_interval", "interval"),  # an interval the tier (named by id) does not offer
    ("invalid_subscription", "tier"),  # the subscription's own price already, or a free tier
    ("invalid_subscription", "ends_at"),  # a date in the past (the clock, not the request)
    ("invalid_request", "email"),  # format: email, but not an address Django's validator takes
    ("invalid_meter", "property"),  # required by every aggregation but count (another field's value)
    ("invalid_meter", "filters"),  # a filter's keys are property names, its values plain
    ("invalid_plan", None),  # a price's fields depend on its model; tiers on each other; 6 decimals at most
    ("invalid_timestamp", "from"),  # a usage period's bounds are ISO 8601 or Unix seconds
    ("invalid_timestamp", "to"),
    ("invalid_request", "to"),  # before from
    ("gift_card_invalid", "expires_at"),  # a date in the past (the clock, not the request)
    ("gift_card_invalid", "recipient_email"),  # not an address Django's validator takes ("" is none)
    ("gift_card_code_invalid", "code"),  # a code of no card of this store
    ("invalid_commission", "note"),  # a delivery needs a note or files: one of two parameters
    ("invalid_commission", "body"),  # a message of spaces only
    # A discount code as the store has it (or not) right now: unknown, expired, used up...
    *((code, "discount_code") for code in (
        "discount_unknown", "discount_inactive", "discount_not_started", "discount_expired", "discount_used_up",
        "discount_minimum_not_met", "discount_already_used", "discount_not_applicable",
    )),
    ("code_taken", "code"),  # another discount of the store has that code
    ("invalid_discount", "ends_at"),  # not after starts_at (another field's value)
    ("invalid_discount", "percent_off"),  # kind percent without percent_off (another field's value)
    ("invalid_amount", "amount_off"),  # kind fixed without amount_off (another field's value)
    ("invalid_discount", "max_uses"),  # below the uses already made
    ("resource_missing", "products"),  # a product id of no product of this store
    ("invalid_bundle", "parts"),  # parts of a product that is not a bundle, or itself, or a bundle
    ("invalid_product", "service"),  # service terms for a product that is not a service (its kind)
    ("resource_missing", "line"),  # a line id of no line of this order
    ("invalid_campaign", "deadline"),  # a deadline in the past, or without its time zone
    ("invalid_campaign", "title"),  # only spaces
    ("invalid_campaign", "description"),  # longer than 5,000 characters once read
    ("invalid_request", "currency"),  # three letters but no ISO 4217 currency
    # A usage subscription's card: only for arrears billing (another field's value, or the
    # subscription's mode), a card and not the wallet, on a rail the store has; one of two fields.
    ("invalid_usage_subscription", "payment_method"),
    ("card_required", "payment_method"),
    ("stripe_not_configured", "rail"),
    ("invalid_request", "payment_method"),
    ("subscription_canceled", "subscription"),  # the subscription was canceled (state)
    ("tier_taken", "tier"),  # another plan of the store is carried by that tier
}


def _integral_floats(value) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(_integral_floats(v) for v in value)
    return False


def schema_valid_request_accepted(ctx, response, case):
    """schemathesis's positive_data_acceptance, less the refusals above and payment declines (402).

    JSON Schema counts 5.0 as an integer; Stall refuses it on purpose (stall/core/api.py), and
    no schema keyword can say so, so a request with such a number is not held to the check.
    """
    if response.status_code == 402 or _integral_floats(case.body):
        return None
    if response.status_code == 400:
        error = response.json()["error"]
        if (error["code"], None) in REFUSALS_NO_SCHEMA_CAN_STATE:
            return None
        if (error["code"], error["param"]) in REFUSALS_NO_SCHEMA_CAN_STATE:
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture
def fuzz_store(store, product, api_key, settings):
    """The objects whose ids the fuzzer puts in paths, by the name of the path's first segment."""
    # Loopback only so that the endpoint can be saved; no delivery is ever attempted (see above).
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    endpoint = webhooks.webhook_endpoint_create(
        store=store, url="http://127.0.0.1:9/hooks", enabled_events=["*"]
    )
    order = buy(store=store, product=product)
    refund = refund_create(store=store, order_id=order.pk, amount=100, reason="fuzz")
    checkout = checkout_create(
        store=store, email="later@example.com", items=[CheckoutItem(product_id=product.pk)]
    )
    post = post_create(
        store=store, title="Field notes", body="Hello", amount=25, status="published"
    )
    player = buyer_for_email(email="player@example.com")
    wallet_top_up(buyer=player, amount=1000, currency="USD", payment_method="sandbox_visa")
    allowance_grant(buyer=player, store=store, amount=500, period="day")
    customer = Customer.objects.get(store=store, email=player.email)
    charge = charge_create(
        store=store, customer_id=customer.pk, amount=25, currency="USD", description="gems"
    )
    tier = tier_create(store=store, name="Members", prices=[{"interval": "month", "amount": 300}])
    discount = discount_create(store=store, code="FUZZ", kind="percent", percent_off=10)
    subscription = subscription_join(
        tier=tier, method="card", email="member@example.com", payment_method="sandbox_visa"
    ).subscription
    meter = meter_create(store=store, key="api_calls", name="API calls", event_name="api.call")
    plan = plan_create(store=store, name="Metered", prices=[{"meter": meter.key, "unit_price": "0.2"}])
    usage_subscription = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk)
    service = product_create(store=store, name="Portrait", amount=500, kind="service", status="published")
    ordered = checkout_create(store=store, email="patron@example.com", items=[CheckoutItem(product_id=service.pk)])
    commission = commission_reserve(checkout=ordered, brief="A fox in the snow")
    checkout_confirm(checkout_id=ordered.pk, payment_method="sandbox_visa")
    campaign = campaign_publish(campaign=campaign_create(
        store=store, title="Moss", goal=1000, deadline=timezone.now() + timedelta(days=30)))
    pledge = pledge_create(campaign=campaign, buyer=player, amount=100, method="wallet")
    ids = {
        "meters": meter.pk,
        "plans": plan.pk,
        "usage_subscriptions": usage_subscription.pk,
        "commissions": commission.pk,
        "campaigns": campaign.pk,
        "pledges": pledge.pk,
        "tiers": tier.pk,
        "discounts": discount.pk,
        "subscriptions": subscription.pk,
        "products": product.pk,
        "checkouts": checkout.pk,
        "orders": order.pk,
        "refunds": refund.pk,
        "webhook_endpoints": endpoint.pk,
        "events": Event.objects.filter(store_id=store.pk).latest("pk").pk,
        "posts": post.pk,
        "customers": customer.pk,
        "charges": charge.pk,
        "delivery_id": WebhookDelivery.objects.filter(endpoint=endpoint).latest("pk").pk,
        "gift_cards": gift_card_issue(store=store, amount=500)[0].pk,
    }
    return {"key": api_key, "ids": ids, "calls": 0}


def _load_schema():
    """The document as served, loaded through Stall's WSGI application (no database needed)."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


schema = _load_schema()
# The coverage phase sends each schema's boundary values (an empty string where no minLength
# forbids it, each enum value...): positive ones only, as the negative ones number thousands.
schema.config.phases.coverage.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@pytest.fixture(autouse=True)
def connection_kept_open():
    """As Django's test client does: a request must not close the connection that holds the
    test's transaction (outside tests Django closes it after each request)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),  # too_slow and the like, on a shared 2-core machine
)
def test_every_operation_answers_as_documented(case, fuzz_store):
    """Generated requests to every operation get a documented status and body, never a 5xx."""
    fuzz_store["calls"] += 1
    negative = case.meta.is_negative_at if case.meta else lambda location: False
    real_ids = fuzz_store["calls"] % 2 == 0 and not negative(ParameterLocation.PATH)
    if real_ids and case.path_parameters:
        resource = case.operation.path.removeprefix("/api/v1/").split("/")[0]
        for name in case.path_parameters:
            case.path_parameters[name] = fuzz_store["ids"][resource if name == "id" else name]
    # The key, unless this case is about a missing or malformed Authorization header.
    key = {"Authorization": f"Bearer {fuzz_store['key']}"}
    case.call_and_validate(
        headers={} if negative(ParameterLocation.HEADER) else key,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[schema_valid_request_accepted],
    )
