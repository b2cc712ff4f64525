"""API v1 shapes of charges and customers: what a client sends (…In) and what it gets back (…Out)."""

from typing import Literal

from ninja import Field, Schema

from stall.accounts.models import Customer
from stall.core.api import Amount, Currency, InputSchema, ObjectId, Text, timestamp

from .models import Charge


class ChargeCreateIn(InputSchema):
    customer: ObjectId = Field(..., description="The customer to charge: cus_… (see GET /customers?email=).")
    amount: Amount = Field(
        ..., description="Minor units, at least 1.", json_schema_extra={"minimum": 1}
    )
    currency: Currency = Field(..., description="The store's currency.")
    description: Text = Field("", max_length=120, description="What the charge is for; the order line's name.")


class ChargeOut(Schema):
    id: str
    object: Literal["charge"]
    customer: str
    amount: int
    currency: str
    description: str
    order: str = Field(..., description="The paid order this charge made: ord_…")
    allowance: str = Field(..., description="The allowance it was charged against: alw_…")
    fee: int = Field(..., description="This charge's share of the card fee the customer's top-up cost.")
    fee_refunded: int = Field(..., description=(
        "Of fee, what refunds of the charge's order gave back to the customer's wallet, in "
        "proportion to what they refunded."
    ))
    fee_net: int = Field(..., description=(
        "What the charge still costs in fees: fee − fee_refunded."
    ))
    livemode: bool = Field(
        ..., description="False when the customer's wallet held test money: a test charge."
    )
    created: int


class ChargeList(Schema):
    object: Literal["list"]
    data: list[ChargeOut]
    has_more: bool


def charge_out(charge: Charge) -> dict:
    order = charge.order
    return {
        "id": charge.pk,
        "object": "charge",
        "customer": order.customer_id,
        "amount": charge.amount,
        "currency": charge.currency,
        "description": charge.description,
        "order": charge.order_id,
        "allowance": charge.allowance_id,
        "fee": order.fee,
        "fee_refunded": order.fee_refunded,
        "fee_net": order.fee_net,
        "livemode": order.livemode,
        "created": timestamp(charge.created_at),
    }


class CustomerListFilter(Schema):
    email: Text | None = Field(None, max_length=254, description="Only the customer with this address (any case).")


class CustomerOut(Schema):
    id: str
    object: Literal["customer"]
    email: str
    name: str
    created: int


class CustomerList(Schema):
    object: Literal["list"]
    data: list[CustomerOut]
    has_more: bool


def customer_out(customer: Customer) -> dict:
    return {
        "id": customer.pk,
        "object": "customer",
        "email": customer.email,
        "name": customer.name,
        "created": timestamp(customer.created_at),
    }


class AllowanceOut(Schema):
    id: str
    amount: int = Field(..., description="What the store may charge a period, in minor units.")
    period: Literal["day", "week", "month"] = Field(..., description="Calendar periods in UTC; weeks start on Monday.")
    used: int = Field(..., description="Charged this period, less refunds.")
    remaining: int
    period_start: int
    period_end: int
    expires: int | None


class CustomerWalletOut(Schema):
    object: Literal["customer_wallet"]
    customer: str
    currency: str
    balance: int = Field(..., description="What the customer's wallet holds now, in minor units.")
    allowance: AllowanceOut


def customer_wallet_out(summary) -> dict:
    usage = summary.usage
    allowance = usage.allowance
    return {
        "object": "customer_wallet",
        "customer": summary.customer.pk,
        "currency": summary.currency,
        "balance": summary.balance,
        "allowance": {
            "id": allowance.pk,
            "amount": allowance.amount,
            "period": allowance.period,
            "used": usage.used,
            "remaining": usage.remaining,
            "period_start": timestamp(usage.period_start),
            "period_end": timestamp(usage.period_end),
            "expires": timestamp(allowance.expires_at),
        },
    }
