"""Who a broadcast goes to: a registry of segments, each a function from (store, ref) to a
queryset of email addresses.

Every segment is intersected with the store's subscribed list (``recipients``), so a segment can
only narrow the list, never reach an address that did not consent or has unsubscribed or bounced.

Audience sits above the product domains, so the segments of each domain's people (buyers of a
product, members of a tier, unlockers of a post, backers of a campaign) are read here from their
tables; a later domain adds its own with ``segment_register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet

from stall.campaigns.models import Campaign, Pledge, PledgeStatus
from stall.catalog.models import ProductKind
from stall.content.models import Post
from stall.memberships.models import ACCESS_STATUSES, Subscription, Tier, TierStatus
from stall.orders.models import Order, OrderLine, OrderStatus
from stall.stores.models import Store

from .models import SUBSCRIBED, Subscriber

# An order that still counts as a purchase: paid, or only partly refunded.
PURCHASED = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    # emails(store=, ref=) -> a values_list queryset of lower-case emails (may repeat)
    emails: Callable[..., QuerySet]
    # choices(store=) -> [(ref, label)] for the segment's object; None for a segment with no object
    choices: Callable[..., list] | None = None


_SEGMENTS: dict[str, Segment] = {}


def segment_register(segment: Segment) -> None:
    _SEGMENTS[segment.key] = segment


def segments() -> list[Segment]:
    return list(_SEGMENTS.values())


def segment_get(key: str) -> Segment | None:
    return _SEGMENTS.get(key)


def recipients(*, store: Store, segment: str, ref: str = "") -> QuerySet:
    """The subscribed addresses of ``store`` in the segment, each once, as a values_list of emails."""
    found = _SEGMENTS[segment]
    subscribed = Subscriber.objects.filter(SUBSCRIBED, store=store)
    if found.key != "subscribers":
        subscribed = subscribed.filter(email__in=found.emails(store=store, ref=ref))
    return subscribed.order_by("email").values_list("email", flat=True)


def _all_subscribers(*, store, ref=""):
    return Subscriber.objects.filter(SUBSCRIBED, store=store).values_list("email", flat=True)


def _product_buyers(*, store, ref):
    order_ids = OrderLine.objects.filter(product_id=ref, product__store=store).values("order_id")
    return Order.objects.filter(store=store, pk__in=order_ids, status__in=PURCHASED).values_list("customer__email", flat=True)


def _product_choices(*, store):
    lines = OrderLine.objects.filter(order__store=store).exclude(product__kind__in=[ProductKind.TIP, ProductKind.CHARGE])
    return list(lines.values_list("product_id", "product__name").distinct().order_by("product__name"))


def _tier_members(*, store, ref):
    return Subscription.objects.filter(store=store, tier_id=ref, status__in=ACCESS_STATUSES).values_list("customer__email", flat=True)


def _tier_choices(*, store):
    return list(Tier.objects.filter(store=store).exclude(status=TierStatus.ARCHIVED).values_list("pk", "name").order_by("position", "name"))


def _post_unlockers(*, store, ref):
    post = Post.objects.filter(store=store, pk=ref).values("product_id")
    order_ids = OrderLine.objects.filter(product_id__in=post).values("order_id")
    return Order.objects.filter(store=store, pk__in=order_ids, status__in=PURCHASED).values_list("customer__email", flat=True)


def _post_choices(*, store):
    return list(Post.objects.filter(store=store).values_list("pk", "product__name").order_by("-created_at"))


segment_register(Segment(key="subscribers", label="All subscribers", emails=_all_subscribers))
segment_register(Segment(key="product", label="Buyers of a product", emails=_product_buyers, choices=_product_choices))
segment_register(Segment(key="tier", label="Members of a tier", emails=_tier_members, choices=_tier_choices))
# Backers who still stand behind a campaign: pledges held, saved or collected (not canceled,
# released or dropped).
BACKING = (PledgeStatus.HELD, PledgeStatus.SAVED, PledgeStatus.CHARGING, PledgeStatus.COLLECTED, PledgeStatus.FAILED)


def _campaign_backers(*, store, ref):
    return Pledge.objects.filter(campaign__store=store, campaign_id=ref, status__in=BACKING).values_list("email", flat=True)


def _campaign_choices(*, store):
    return list(Campaign.objects.filter(store=store).exclude(status="draft").values_list("pk", "title").order_by("-created_at"))


segment_register(Segment(key="post", label="Readers who unlocked a post", emails=_post_unlockers, choices=_post_choices))
segment_register(Segment(key="campaign", label="Backers of a campaign", emails=_campaign_backers, choices=_campaign_choices))
