"""API v1 shapes of checkouts: what a client sends (…In) and what it gets back (…Out)."""

import re
from typing import Annotated, Literal

from django.conf import settings
from django.urls import get_resolver, get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.translation import get_language
from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, StrictInt

from stall.core.api import Amount, InputSchema, NotBlank, ObjectId, Text, timestamp
from stall.core.errors import InvalidRequest
from stall.core.rows import prefetched_rows

from .models import Checkout, CheckoutStatus
from .services import CheckoutItem

Quantity = StrictInt


class CheckoutItemIn(InputSchema):
    product: ObjectId = Field(..., description="A published product of this store: prod_…")
    amount: Amount | None = Field(None, description="Pay what you want only: what the buyer pays, in minor units.")
    quantity: Quantity = Field(1, ge=1, le=100)


_ONE_PRODUCT = [{"required": [name]} for name in ("product", "amount", "quantity")]


class CheckoutCreateIn(InputSchema):
    """Either ``items`` or, for one product, the shorthand ``product`` (with ``amount``, ``quantity``)."""

    # checkout_items' rule, in the document: items alone, or product (with amount, quantity).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {
            "required": ["items"], "properties": {"items": {"type": "array"}},
            "not": {"anyOf": _ONE_PRODUCT},
        },
        {
            "required": ["product"],
            "properties": {"product": {"type": "string"}, "items": {"type": "null"}},
        },
    ]})

    email: Annotated[Text, NotBlank] = Field(
        ..., max_length=254, description="The buyer's email: the receipt and downloads go there.",
        json_schema_extra={"format": "email"},
    )
    items: list[CheckoutItemIn] | None = Field(None, min_length=1)
    discount_code: Text = Field(
        "", max_length=40,
        description="A discount code of this store: the server takes it off and snapshots the price; "
        "an unknown, expired or used-up code is refused with a discount_… error code.",
    )
    product: ObjectId | None = None
    amount: Amount | None = None
    quantity: Quantity = Field(None, ge=1, le=100)

    def checkout_items(self) -> list[CheckoutItem]:
        if self.items is not None:
            for name in ("product", "amount", "quantity"):
                if name in self.model_fields_set:
                    raise InvalidRequest(f"Send {name} inside items, or leave items out for a single product.", param=name)
            return [CheckoutItem(product_id=i.product, amount=i.amount, quantity=i.quantity) for i in self.items]
        if self.product is None:
            raise InvalidRequest("Missing required parameter: items (or product).", param="items")
        return [CheckoutItem(product_id=self.product, amount=self.amount, quantity=self.quantity or 1)]


# What payments.rails.rail_for takes: a sandbox card, the Stripe page or a Stripe PaymentMethod.
_PAYMENT_METHOD = r"^(sandbox_(visa|declined|insufficient_funds|3ds)|stripe|pm_[0-9A-Za-z_]+)?$"


class CheckoutConfirmIn(InputSchema):
    payment_method: Text = Field(
        "", max_length=64,
        json_schema_extra={"pattern": _PAYMENT_METHOD},
        description=(
            "A Stripe PaymentMethod (pm_…) where the store takes Stripe, or a test card (sandbox_visa, "
            "sandbox_declined, sandbox_insufficient_funds, sandbox_3ds) where test cards are on: "
            "elsewhere they are refused with sandbox_disabled. Not needed for a free checkout."
        ),
    )


class _Out(BaseModel):
    """What the API answers with, made from a dict by ``checkout_out``: plain pydantic, which checks a
    dict in its compiled core, where a ninja ``Schema`` first wraps it for attribute access at each
    level in Python (its root validator: a twentieth of a card checkout's two requests)."""

    model_config = ConfigDict(defer_build=True)  # built on first use, as every ninja Schema is here


class CheckoutLineOut(_Out):
    product: str
    name: str
    unit_amount: int
    quantity: int
    amount_discount: int = Field(..., description="This line's share of the discount.")


class NextActionOut(_Out):
    type: Literal["redirect_to_url"]
    url: str


class CheckoutPaymentOut(_Out):
    id: str
    object: Literal["payment"]
    status: str
    amount: int
    currency: str
    payment_method: str
    failure_code: str | None
    failure_message: str | None
    next_action: NextActionOut | None = Field(..., description="Set when the buyer must act: send them to the URL.")
    livemode: bool = Field(
        ..., description="False for a payment with a test card: no real money moves."
    )


class CheckoutOut(_Out):
    id: str
    object: Literal["checkout"]
    status: Literal["open", "complete", "expired"]
    email: str
    amount_subtotal: int
    amount_discount: int
    amount_total: int
    currency: str
    discount_code: str | None
    lines: list[CheckoutLineOut]
    expires_at: int
    url: str = Field(..., description="The hosted payment page.")
    payment: CheckoutPaymentOut | None = Field(..., description="The latest payment attempt, if any.")
    order: str | None = Field(..., description="The order, once the checkout is complete.")
    livemode: bool = Field(
        ..., description="False once its latest payment is a test payment: it makes a test order."
    )
    created: int


# reverse() walks the URLconf on every call: a tenth of the API's answer to a paid confirm. A
# checkout's pages differ only by its id, so each is reversed once (per URLconf, script prefix and
# language) with a stand-in id, which a checkout's own id (letters, digits, "_": nothing to quote)
# then replaces.
_STAND_IN = "CHECKOUTID"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_]+")
_PAGES: dict[tuple, str] = {}


def _absolute(name: str, checkout_id: str) -> str:
    if not _PLAIN_ID.fullmatch(checkout_id):
        return settings.BASE_URL + reverse(name, args=[checkout_id])
    key = (name, get_resolver(get_urlconf()), get_script_prefix(), get_language())
    path = _PAGES.get(key)
    if path is None:
        path = _PAGES[key] = reverse(name, args=[_STAND_IN])
    return settings.BASE_URL + path.replace(_STAND_IN, checkout_id, 1)


def _latest_payment(checkout: Checkout):
    """The checkout's latest payment (ids grow with time): the one that just paid it (set as
    ``latest_payment`` by payments), or from ``checkout_get``'s prefetch when it was made, else one
    query."""
    known = getattr(checkout, "latest_payment", None)
    if known is not None:
        return known
    cached = prefetched_rows(checkout, "payments")
    if cached is not None:
        return max(cached, key=lambda payment: payment.pk, default=None)
    return checkout.payments.order_by("-pk").first()


def _lines(checkout: Checkout):
    held = prefetched_rows(checkout, "lines")
    return checkout.lines.all() if held is None else held


def checkout_out(checkout: Checkout) -> dict:
    status = checkout.status
    if status == CheckoutStatus.OPEN and checkout.expires_at <= timezone.now():
        # The periodic task marks it later; it can no longer be paid now.
        status = CheckoutStatus.EXPIRED
    payment = _latest_payment(checkout)
    order_id = checkout.order.pk if hasattr(checkout, "order") else None
    return {
        "id": checkout.pk,
        "object": "checkout",
        "status": status,
        "email": checkout.email,
        "amount_subtotal": checkout.amount_subtotal,
        "amount_discount": checkout.amount_discount,
        "amount_total": checkout.amount_total,
        "currency": checkout.currency,
        "discount_code": checkout.discount_code or None,
        "lines": [
            {"product": line.product_id, "name": line.name, "unit_amount": line.unit_amount, "quantity": line.quantity,
             "amount_discount": line.amount_discount}
            for line in _lines(checkout)
        ],
        "expires_at": timestamp(checkout.expires_at),
        "url": _absolute("checkout:pay", checkout.pk),
        "payment": None if payment is None else {
            "id": payment.pk,
            "object": "payment",
            "status": payment.status,
            "amount": payment.amount,
            "currency": payment.currency,
            "payment_method": payment.payment_method,
            "failure_code": payment.failure_code or None,
            "failure_message": payment.failure_message or None,
            "next_action": (
                {"type": "redirect_to_url", "url": _absolute("checkout:authenticate", checkout.pk)}
                if payment.status == "requires_action" else None
            ),
            "livemode": payment.livemode,
        },
        "order": order_id,
        "livemode": payment is None or payment.livemode,
        "created": timestamp(checkout.created_at),
    }


# --- Discounts ------------------------------------------------------------------------------------

Timestamp = StrictInt
# What discount_create takes (after trimming spaces): stated so that clients know before asking.
_CODE_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9_-]{1,39}\s*$"
_LAST_TIMESTAMP = 253402300799  # 9999-12-31 23:59:59 UTC, the last moment a datetime holds


class DiscountCreateIn(InputSchema):
    code: Annotated[Text, NotBlank] = Field(
        ..., max_length=40, description="What buyers type (kept upper-case): 2–40 letters, digits, - and _.",
        json_schema_extra={"pattern": _CODE_PATTERN},
    )
    kind: Literal["percent", "fixed"]
    percent_off: StrictInt | None = Field(None, ge=1, le=100, description="kind percent: 1–100.")
    amount_off: Amount | None = Field(None, description="kind fixed: minor units of the store's currency.")
    products: list[ObjectId] = Field(
        default_factory=list, max_length=1000, description="Only these products (prod_…); empty: all of them.",
    )
    starts_at: Timestamp | None = Field(None, ge=0, le=_LAST_TIMESTAMP, description="Unix time it starts; none: now.")
    ends_at: Timestamp | None = Field(None, ge=0, le=_LAST_TIMESTAMP, description="Unix time it ends; none: never.")
    max_uses: StrictInt | None = Field(None, ge=1, le=10**9, description="Uses in all; none: no limit.")
    once_per_customer: bool = Field(False, description="Once per buyer email and per buyer account.")
    minimum_subtotal: Amount = Field(0, description="The checkout's subtotal must be at least this.")
    active: bool = True


class DiscountUpdateIn(InputSchema):
    """Only the parameters sent are changed."""

    code: Annotated[Text, NotBlank] = Field(None, max_length=40, json_schema_extra={"pattern": _CODE_PATTERN})
    kind: Literal["percent", "fixed"] = None
    percent_off: StrictInt | None = Field(None, ge=1, le=100)
    amount_off: Amount | None = None
    products: list[ObjectId] = Field(None, max_length=1000)
    starts_at: Timestamp | None = Field(None, ge=0, le=_LAST_TIMESTAMP)
    ends_at: Timestamp | None = Field(None, ge=0, le=_LAST_TIMESTAMP)
    max_uses: StrictInt | None = Field(None, ge=1, le=10**9)
    once_per_customer: bool = None
    minimum_subtotal: Amount = None
    active: bool = None


class DiscountOut(Schema):
    id: str
    object: Literal["discount"]
    code: str
    kind: Literal["percent", "fixed"]
    percent_off: int | None
    amount_off: int | None
    currency: str
    products: list[str]
    starts_at: int | None
    ends_at: int | None
    max_uses: int | None
    times_used: int
    once_per_customer: bool
    minimum_subtotal: int
    active: bool
    created: int


class DiscountList(Schema):
    object: Literal["list"]
    data: list[DiscountOut]
    has_more: bool


def discount_out(discount) -> dict:
    return {
        "id": discount.pk,
        "object": "discount",
        "code": discount.code,
        "kind": discount.kind,
        "percent_off": discount.percent_off,
        "amount_off": discount.amount_off,
        "currency": discount.currency,
        "products": sorted(p.pk for p in discount.products.all()),
        "starts_at": timestamp(discount.starts_at),
        "ends_at": timestamp(discount.ends_at),
        "max_uses": discount.max_uses,
        "times_used": discount.times_used,
        "once_per_customer": discount.once_per_customer,
        "minimum_subtotal": discount.minimum_subtotal,
        "active": discount.active,
        "created": timestamp(discount.created_at),
    }
