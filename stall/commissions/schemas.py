"""API v1 schemas for commissions (the creator's side)."""

from typing import Literal

from ninja import Schema

from stall.core.api import InputSchema, Money, timestamp


class CommissionFileOut(Schema):
    id: str
    name: str
    size: int
    content_type: str
    role: Literal["brief", "delivery"]


class CommissionMessageOut(Schema):
    author: Literal["buyer", "creator"]
    body: str
    created: int


class CommissionOut(Schema):
    id: str
    object: Literal["commission"]
    status: Literal["reserved", "awaiting_delivery", "delivered", "accepted", "declined", "expired"]
    product: str
    order: str | None
    email: str
    brief: str
    amount_held: Money
    delivery_note: str
    decline_reason: str
    created: int
    delivered_at: int | None
    auto_accept_at: int | None
    closed_at: int | None
    files: list[CommissionFileOut]
    messages: list[CommissionMessageOut]


class CommissionList(Schema):
    object: Literal["list"]
    data: list[CommissionOut]
    has_more: bool


class CommissionListFilter(Schema):
    status: Literal["reserved", "awaiting_delivery", "delivered", "accepted", "declined", "expired"] | None = None


class CommissionDeclineIn(InputSchema):
    reason: str = ""


class CommissionMessageIn(InputSchema):
    body: str


def commission_out(commission, *, detail: bool = False) -> dict:
    """The commission as the API and webhooks show it; ``detail`` adds its files and messages
    (a list shows them empty: one query per page, not per commission)."""
    return {
        "id": commission.pk,
        "object": "commission",
        "status": commission.status,
        "product": commission.product_id,
        "order": commission.order_id,
        "email": commission.email,
        "brief": commission.brief,
        "amount_held": {"amount": commission.amount_held, "currency": commission.currency},
        "delivery_note": commission.delivery_note,
        "decline_reason": commission.decline_reason,
        "created": timestamp(commission.created_at),
        "delivered_at": timestamp(commission.delivered_at),
        "auto_accept_at": timestamp(commission.auto_accept_at),
        "closed_at": timestamp(commission.closed_at),
        "files": [
            {"id": f.pk, "name": f.name, "size": f.size, "content_type": f.content_type, "role": f.role}
            for f in commission.files.all()
        ] if detail else [],
        "messages": [
            {"author": m.author, "body": m.body, "created": timestamp(m.created_at)} for m in commission.messages.all()
        ] if detail else [],
    }
