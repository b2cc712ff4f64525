"""API v1 shapes of orders (read-only: orders are made by paying a checkout)."""

from typing import Literal

from ninja import Field, Schema

from stall.core.api import Text, timestamp

from .models import Order


class OrderListFilter(Schema):
    email: Text | None = Field(None, max_length=254, description="Only this buyer's orders (exact address, any case).")


class OrderLineOut(Schema):
    product: str
    name: str
    unit_amount: int
    quantity: int


class OrderOut(Schema):
    id: str
    object: Literal["order"]
    status: Literal["paid", "partially_refunded", "refunded"]
    email: str
    customer: str
    amount_total: int
    amount_refunded: int
    currency: str
    fee: int = Field(..., description="The payment processor's fee, kept by the processor.")
    platform_fee: int = Field(..., description="The operator's share of the sale.")
    lines: list[OrderLineOut]
    payment: str | None = Field(..., description="None for a free order.")
    checkout: str | None = Field(..., description="None for a one-click spend from the wallet or the tab (an unlock, a tip, a charge).")
    created: int


class OrderList(Schema):
    object: Literal["list"]
    data: list[OrderOut]
    has_more: bool


def order_out(order: Order) -> dict:
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
        "platform_fee": order.platform_fee,
        "lines": [
            {"product": line.product_id, "name": line.name, "unit_amount": line.unit_amount, "quantity": line.quantity}
            for line in order.lines.all()
        ],
        "payment": order.payment_id,
        "checkout": order.checkout_id,
        "created": timestamp(order.created_at),
    }
