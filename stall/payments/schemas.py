"""API v1 shapes of refunds: what a client sends (…In) and what it gets back (…Out)."""

from typing import Literal

from ninja import Field, Schema
from pydantic import StrictInt

from stall.core.api import Amount, InputSchema, ObjectId, Text, timestamp

from .models import Payment, Refund


class RefundCreateIn(InputSchema):
    order: ObjectId = Field(..., description="The order to refund: ord_…")
    amount: Amount | None = Field(None, description="Minor units; the whole refundable remainder when left out.")
    line: StrictInt | None = Field(
        None, ge=1, le=2**62, description="Refund this line of the order alone (its id in the order's lines): up to what "
        "was paid for it; a line refunded in full loses its downloads.",
    )
    reason: Text = Field("", max_length=255)


class RefundOut(Schema):
    id: str
    object: Literal["refund"]
    order: str
    amount: int
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    reason: str
    # Where the money went: back through the payment's rail, or into the buyer's Stall wallet
    # (what a rail that cannot pay back, Lightning, gives for a payment past a capped tier).
    destination: Literal["payment_method", "wallet"]
    created: int


class RefundList(Schema):
    object: Literal["list"]
    data: list[RefundOut]
    has_more: bool


def refund_out(refund: Refund) -> dict:
    return {
        "id": refund.pk,
        "object": "refund",
        "order": refund.order_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "destination": "wallet" if refund.to_wallet else "payment_method",
        "created": timestamp(refund.created_at),
    }


def payment_out(payment: Payment) -> dict:
    """A payment as webhook events carry it (payment.failed)."""
    return {
        "id": payment.pk,
        "object": "payment",
        "checkout": payment.checkout_id,
        "rail": payment.rail,
        "payment_method": payment.payment_method,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "livemode": payment.livemode,
        "created": timestamp(payment.created_at),
    }
