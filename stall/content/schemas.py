"""API v1 shapes of posts and tips, and the objects their events carry."""

from typing import Annotated, Literal

from django.conf import settings
from django.urls import reverse
from ninja import Field, Schema

from stall.core.api import SLUG_PATTERN, Amount, Currency, InputSchema, NotBlank, Text, timestamp

from .selectors import post_split_for

StatusIn = Literal["draft", "published", "archived"]


class PostCreateIn(InputSchema):
    title: Annotated[Text, NotBlank] = Field(..., max_length=120)
    body: Text = Field("", max_length=100_000, description='Markdown. The free preview ends at a line "<!-- more -->", or after the first paragraphs.')
    amount: Amount = Field(0, description="The price to unlock, in minor units; 0 makes the post free.")
    currency: Currency | None = Field(None, description="Optional; must be the store's currency.")
    status: StatusIn = "draft"
    slug: Text = Field(
        "", max_length=80, json_schema_extra={"pattern": SLUG_PATTERN},
        description="The post's address; made from the title when empty.",
    )


class PostUpdateIn(InputSchema):
    """Only the parameters sent are changed."""

    title: Annotated[Text, NotBlank] = Field(None, max_length=120)
    body: Text = Field(None, max_length=100_000)
    amount: Amount = None
    status: StatusIn = None
    slug: Text = Field(None, max_length=80, json_schema_extra={"pattern": SLUG_PATTERN})


class PostOut(Schema):
    id: str
    object: Literal["post"]
    title: str
    slug: str
    body: str
    preview: str = Field(..., description="The Markdown everyone sees; the rest is behind the paywall.")
    amount: int
    currency: str
    status: StatusIn
    product: str = Field(..., description="The product a reader buys to unlock the post.")
    url: str
    published: int | None
    created: int


class PostList(Schema):
    object: Literal["list"]
    data: list[PostOut]
    has_more: bool


class TipOut(Schema):
    id: str
    object: Literal["tip"]
    order: str
    amount: int
    currency: str
    email: str
    name: str
    message: str
    public: bool = Field(..., description="The tipper agreed to show their name and message publicly.")
    created: int


class TipList(Schema):
    object: Literal["list"]
    data: list[TipOut]
    has_more: bool


def post_url(post) -> str:
    return settings.BASE_URL + reverse("content:post", args=[post.store.slug, post.product.slug])


def post_out(post) -> dict:
    return {
        "id": post.pk,
        "object": "post",
        "title": post.product.name,
        "slug": post.product.slug,
        "body": post.body,
        "preview": post_split_for(post).preview,
        "amount": post.product.amount,
        "currency": post.product.currency,
        "status": post.product.status,
        "product": post.product_id,
        "url": post_url(post),
        "published": timestamp(post.published_at),
        "created": timestamp(post.created_at),
    }


def tip_out(tip) -> dict:
    return {
        "id": tip.pk,
        "object": "tip",
        "order": tip.order_id,
        "amount": tip.amount,
        "currency": tip.currency,
        "email": tip.order.email,
        "name": tip.name,
        "message": tip.message,
        "public": tip.public,
        "created": timestamp(tip.created_at),
    }


def unlock_out(*, post, order, url: str | None = None) -> dict:
    """What ``post.unlocked`` carries: who unlocked which post, for how much, in which order.
    ``url`` is the post's, when the caller worked it out already."""
    return {
        "object": "post_unlock",
        "post": post.pk,
        "product": post.product_id,
        "title": post.product.name,
        "url": url or post_url(post),
        "order": order.pk,
        "email": order.email,
        "amount": order.amount_total,
        "currency": order.currency,
        "created": timestamp(order.created_at),
    }
