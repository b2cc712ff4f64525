"""API v1 shapes of charges and customers: what a client sends (…In) and what it gets back (…Out)."""

from datetime import datetime
from typing import Annotated, Literal

from ninja import Field, Schema

from stall.accounts.models import Customer
from stall.core.api import Amount, Currency, InputSchema, NotBlank, ObjectId, Text, timestamp

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


# --- gift cards ------------------------------------------------------------------------------


class GiftCardCreateIn(InputSchema):
    amount: Amount = Field(..., description="The card's value in minor units of the store's currency; more than 0.",
                           json_schema_extra={"minimum": 1})
    recipient_email: Text | None = Field(None, max_length=254, description="Emailed the code (at send_at, if given).")
    recipient_name: Text = Field("", max_length=120)
    sender_name: Text = Field("", max_length=120)
    message: Text = Field("", max_length=1000)
    send_at: datetime | None = Field(None, description="When to email it; now if absent or past.")
    expires_at: datetime | None = Field(None, description="After this the card cannot be redeemed.")


class GiftCardRedeemIn(InputSchema):
    code: Annotated[Text, NotBlank] = Field(..., max_length=64, description="The card's code, as the recipient received it.")
    customer: ObjectId = Field(..., description="The customer (cus_…) whose wallet receives the balance.")


class GiftCardOut(Schema):
    id: str
    object: str = "gift_card"
    code_last4: str
    currency: str
    initial_amount: int
    balance: int
    status: str
    expires_at: int | None
    order: str | None
    recipient_email: str | None
    send_at: int | None
    emailed_at: int | None
    redeemed_at: int | None
    livemode: bool
    created: int


class GiftCardCreatedOut(GiftCardOut):
    code: str = Field(..., description="The card's code. Shown in this response only: Stall keeps only its hash.")


class GiftCardList(Schema):
    object: str = "list"
    data: list[GiftCardOut]
    has_more: bool
