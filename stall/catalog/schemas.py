"""API v1 shapes of products: what a client sends (…In) and what it gets back (…Out)."""

from typing import Annotated, Literal

from django.conf import settings
from django.urls import reverse
from ninja import Field, Schema
from pydantic import ConfigDict

from stall.core.api import (
    SLUG_PATTERN,
    Amount,
    Currency,
    InputSchema,
    NotBlank,
    ObjectId,
    Text,
    timestamp,
)

from .models import Product, ProductFile, ProductKind
from .services import product_kind_terms_out

PriceTypeIn = Literal["fixed", "pay_what_you_want"]
StatusIn = Literal["draft", "published", "archived"]

_PG_INT_MAX = 2_147_483_647  # PositiveIntegerField's ceiling on every database


class ServiceTermsIn(InputSchema):
    slots: int | None = Field(None, strict=True, ge=1, le=1000, description=(
        "How many commissions may be open at once; none (null) for no limit."
    ))
    auto_accept_days: int = Field(7, strict=True, ge=1, le=60, description=(
        "Days the buyer has to accept a delivery before it is accepted for them and the held payment released."
    ))


class ServiceTermsOut(Schema):
    slots: int | None
    slots_left: int | None = Field(..., description="Slots not taken by open commissions; none for no limit.")
    auto_accept_days: int


class ProductCreateIn(InputSchema):
    # A suggested amount only for pay what you want (and not below amount: no schema says that).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["price_type"], "properties": {"price_type": {"const": "pay_what_you_want"}}},
        {"properties": {"suggested_amount": {"type": "null"}}},
    ]})

    name: Annotated[Text, NotBlank] = Field(..., max_length=120)
    amount: Amount = Field(..., description="Fixed: the price. Pay what you want: the minimum. Minor units.")
    currency: Currency | None = Field(None, description="Optional; must be the store's currency.")
    price_type: PriceTypeIn = "fixed"
    suggested_amount: Amount | None = Field(None, description="Pay what you want only: the amount offered first.")
    description: Text = Field("", max_length=20000, description="Markdown.")
    status: StatusIn = "draft"
    slug: Text = Field(
        "", max_length=80, json_schema_extra={"pattern": SLUG_PATTERN},
        description="The product page's address; made from the name when empty.",
    )
    download_limit: int | None = Field(None, strict=True, ge=1, le=_PG_INT_MAX, description="Downloads per file per purchase.")
    kind: Literal["download", "bundle", "service"] = Field(
        "download", description=(
            "bundle: other products of the store (parts) sold together at this price. service: a "
            "commission; the buyer sends a brief, the creator delivers, the payment is held until "
            "the buyer accepts (terms in service)."
        ),
    )
    parts: list[ObjectId] | None = Field(
        None, max_length=100, description="A bundle's products (prod_…, downloads of this store; not itself nor a bundle).",
    )
    service: ServiceTermsIn | None = Field(None, description="A service's terms; the defaults when left out.")


class ProductUpdateIn(InputSchema):
    """Only the parameters sent are changed. ``suggested_amount: null`` clears it."""

    name: Annotated[Text, NotBlank] = Field(None, max_length=120)
    amount: Amount = None
    currency: Currency | None = None
    price_type: PriceTypeIn = None
    suggested_amount: Amount | None = None
    description: Text = Field(None, max_length=20000)
    status: StatusIn = None
    slug: Text = Field(None, max_length=80, json_schema_extra={"pattern": SLUG_PATTERN})
    download_limit: int = Field(None, strict=True, ge=1, le=_PG_INT_MAX)
    parts: list[ObjectId] = Field(None, max_length=100, description="A bundle's products, replacing the ones it had.")
    service: ServiceTermsIn = Field(None, description="A service's terms: only the ones sent change.")


class ProductListFilter(Schema):
    status: StatusIn | None = None


class ProductFileOut(Schema):
    id: str
    object: Literal["file"]
    name: str
    size: int
    content_type: str
    created: int


class ProductOut(Schema):
    id: str
    object: Literal["product"]
    name: str
    kind: str
    parts: list[str] = Field(..., description="A bundle's products; empty for any other kind.")
    slug: str
    description: str
    price_type: PriceTypeIn
    amount: int
    suggested_amount: int | None
    currency: str
    status: StatusIn
    download_limit: int
    url: str = Field(..., description="The public product page.")
    files: list[ProductFileOut]
    service: ServiceTermsOut | None = Field(..., description="A service's terms; none for any other kind.")
    created: int


class ProductList(Schema):
    object: Literal["list"]
    data: list[ProductOut]
    has_more: bool


def file_out(file: ProductFile) -> dict:
    return {
        "id": file.pk, "object": "file", "name": file.name, "size": file.size,
        "content_type": file.content_type, "created": timestamp(file.created_at),
    }


def product_out(product: Product) -> dict:
    return {
        "id": product.pk,
        "object": "product",
        "name": product.name,
        "kind": product.kind,
        "parts": [item.part_id for item in product.bundle_items.all()] if product.kind == "bundle" else [],
        "slug": product.slug,
        "description": product.description,
        "price_type": product.price_type,
        "amount": product.amount,
        "suggested_amount": product.suggested_amount,
        "currency": product.currency,
        "status": product.status,
        "download_limit": product.download_limit,
        "url": settings.BASE_URL + reverse("stores:product", args=[product.store.slug, product.slug]),
        "files": [file_out(f) for f in product.files.all()],
        "service": product_kind_terms_out(product) if product.kind == ProductKind.SERVICE else None,
        "created": timestamp(product.created_at),
    }
