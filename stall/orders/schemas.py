"""API v1 shapes of orders (read-only: orders are made by paying a checkout)."""

from typing import Annotated, Literal

from ninja import Field, Schema

from stall.core.api import InputSchema, NotBlank, Text, timestamp

from .models import Order


class OrderListFilter(Schema):
    email: Text | None = Field(None, max_length=254, description="Only this buyer's orders (exact address, any case).")


class OrderLineOut(Schema):
    id: int | None = Field(..., description=(
        "The line, for a refund of it alone (POST /refunds with line). None only in the order.paid "
        "event of a one-click spend; the order read back has it."
    ))
    product: str
    name: str
    unit_amount: int
    quantity: int
    amount_discount: int = Field(..., description="The line's share of the discount.")
    amount_refunded: int


class OrderOut(Schema):
    id: str
    object: Literal["order"]
    status: Literal["paid", "partially_refunded", "refunded"]
    email: str
    customer: str
    amount_total: int
    amount_refunded: int
    currency: str
    fee: int = Field(..., description=(
        "The processing fee the sale paid: a card sale's card fee; a wallet sale's share of the "
        "card fee its buyer's top-up cost; a tab sale's share of the card fee settling the tab "
        "cost (0 until the tab is settled)."
    ))
    fee_refunded: int = Field(..., description=(
        "Of fee, what refunds gave back: a wallet sale's share goes back to its buyer's wallet "
        "(the fee pool) in proportion to what is refunded; card processors keep theirs (0 for "
        "card and tab sales)."
    ))
    fee_net: int = Field(..., description=(
        "What processing costs the store for this order: fee − fee_refunded."
    ))
    platform_fee: int = Field(..., description="The operator's share of the sale.")
    platform_fee_refunded: int = Field(..., description=(
        "Of platform_fee, what the operator gave back with refunds, in proportion to them."
    ))
    platform_fee_net: int = Field(..., description="platform_fee − platform_fee_refunded.")
    amount_disputed: int = Field(..., description=(
        "What a chargeback took back from the store (the cardholder disputed the card payment), "
        "less what came back when the store won."
    ))
    dispute_fee: int = Field(..., description="The card processor's dispute fee the store paid (less any returned).")
    disputed: bool = Field(..., description="True when the order's payment was ever disputed (dispute_status says how it stands).")
    dispute_status: Literal["", "open", "won", "lost", "closed"] = Field(..., description=(
        "Where the order's chargeback stands: '' never disputed; open (awaiting the bank's "
        "decision; license keys disabled, refunds refused); won (money and keys back); lost "
        "(money gone, downloads revoked); closed (an inquiry closed without a chargeback)."
    ))
    net: int = Field(..., description=(
        "What the order moved into the store's balance: amount_total − amount_refunded − "
        "amount_disputed − dispute_fee − fee_net − platform_fee_net. The nets of a store's orders "
        "in a currency add up to its balance in that currency."
    ))
    lines: list[OrderLineOut]
    payment: str | None = Field(..., description="None for a free order.")
    checkout: str | None = Field(..., description="None for a one-click spend from the wallet or the tab (an unlock, a tip, a charge).")
    livemode: bool = Field(
        ..., description="False for a test order (paid with test money): it is not in the balance."
    )
    created: int


class OrderList(Schema):
    object: Literal["list"]
    data: list[OrderOut]
    has_more: bool


def order_out(order: Order, *, lines: list | None = None) -> dict:
    """The order as the API and its events show it; ``lines``, when the caller holds them, saves
    reading them from the order."""
    return {
        "id": order.pk,
        "object": "order",
        "status": order.status,
        "email": order.email,
        "customer": order.customer_id,
        "amount_total": order.amount_total,
        "amount_refunded": order.amount_refunded,
        "currency": order.currency,
        "fee": order.fee,
        "fee_refunded": order.fee_refunded,
        "fee_net": order.fee_net,
        "platform_fee": order.platform_fee,
        "platform_fee_refunded": order.platform_fee_refunded,
        "platform_fee_net": order.platform_fee_net,
        "amount_disputed": order.amount_disputed,
        "dispute_fee": order.dispute_fee,
        "disputed": order.disputed,
        "dispute_status": order.dispute_state,
        "net": order.net,
        "lines": [
            {"id": line.pk, "product": line.product_id, "name": line.name, "unit_amount": line.unit_amount,
             "quantity": line.quantity, "amount_discount": line.amount_discount, "amount_refunded": line.amount_refunded}
            for line in (order.lines.all() if lines is None else lines)
        ],
        "payment": order.payment_id,
        "checkout": order.checkout_id,
        "livemode": order.livemode,
        "created": timestamp(order.created_at),
    }


class DisputeOut(Schema):
    id: str
    object: Literal["dispute"]
    amount: int
    currency: str
    fee: int
    reason: str = Field(..., description="The card network's reason, as the processor gives it (fraudulent, product_not_received, …).")
    status: str = Field(..., description="The processor's status: needs_response, under_review, won, lost, or warning_* for an inquiry.")
    evidence_due_by: int | None = Field(..., description="When the evidence must reach the processor.")
    created: int


def dispute_out(dispute) -> dict:
    return {
        "id": dispute.pk, "object": "dispute", "amount": dispute.amount, "currency": dispute.currency,
        "fee": dispute.fee, "reason": dispute.reason, "status": dispute.status,
        "evidence_due_by": timestamp(dispute.evidence_due_by), "created": timestamp(dispute.created_at),
    }


# --- license keys (the public, key-authenticated API) ----------------------------------------


class LicenseActivateIn(InputSchema):
    license_key: Text = Field(..., max_length=100)
    instance_name: Annotated[Text, NotBlank] = Field(..., max_length=200, description="What the key is activated on: a machine, a site.")


class LicenseValidateIn(InputSchema):
    license_key: Text = Field(..., max_length=100)
    instance_id: Text | None = Field(None, max_length=40, description="With it, also checks that instance is active.")


class LicenseDeactivateIn(InputSchema):
    license_key: Text = Field(..., max_length=100)
    instance_id: Text = Field(..., max_length=40)


class LicenseProductOut(Schema):
    id: str
    name: str


class LicenseKeyInfo(Schema):
    id: str
    status: str = Field(..., description="active, disabled or expired.")
    product: LicenseProductOut
    customer_email: str
    order: str
    activation_limit: int | None = Field(..., description="None: unlimited.")
    activations_used: int
    expires_at: int | None
    created: int


class LicenseInstanceOut(Schema):
    id: str
    name: str
    created: int


class LicenseErrorOut(Schema):
    code: str
    message: str
    param: str | None = None


class LicenseValidateOut(Schema):
    valid: bool
    error: LicenseErrorOut | None = Field(None, description="Why the key is not valid now, when it is not.")
    license_key: LicenseKeyInfo
    instance: LicenseInstanceOut | None = None


class SeatChargedOut(Schema):
    amount: int
    currency: str
    order: str = Field(..., description="The order of the seat (refunding it in full gives the seat up).")


class LicenseActivateOut(Schema):
    activated: bool
    license_key: LicenseKeyInfo
    instance: LicenseInstanceOut
    charged: SeatChargedOut | None = Field(None, description=(
        "A paid extra seat bought for this activation from the key owner's wallet or tab; null when none was."
    ))


class LicenseDeactivateOut(Schema):
    deactivated: bool
    license_key: LicenseKeyInfo
