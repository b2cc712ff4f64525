"""API v1 shape of a store's balance."""

from typing import Literal

from ninja import Field, Schema

from stall.core.api import Money


class BalanceOut(Schema):
    object: Literal["balance"]
    available: list[Money] = Field(..., description="What the store holds, per currency, after refunds and fees.")
    store: str


def balance_out(*, store_id: str, available: list) -> dict:
    return {"object": "balance", "available": [m.as_dict() for m in available], "store": store_id}
