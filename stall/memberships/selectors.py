"""Reads for tiers and members, scoped to a store; and the answers memberships gives to
``orders.access`` (who may read a gated post, whose private feed a token is)."""

import functools
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from stall.accounts.models import Customer
from stall.core.errors import NotFound
from stall.core.money import format_money
from stall.orders.access import AccessHandler, FeedReader, Offer
from stall.orders.models import Order

from .errors import SubscriptionNotFound, TierNotFound
from .models import (
    ACCESS_STATUSES,
    LIVE_STATUSES,
    Interval,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
    Tier,
    TierGate,
    TierPrice,
    TierStatus,
)
from .services import cap_limit, cap_progress


def tiers_for_store(*, store) -> QuerySet[Tier]:
    return Tier.objects.filter(store=store).prefetch_related("prices", "gates").order_by("-pk")


def tier_choices(*, store_id: str) -> list[tuple[str, str]]:
    """A store's tiers as (id, name), oldest first (``orders.tiers.TierDirectory``)."""
    return list(Tier.objects.filter(store_id=store_id).order_by("pk").values_list("pk", "name"))


def tier_get(*, store, tier_id: str) -> Tier:
    """A tier of ``store``; another store's tier is "not found"."""
    tier = tiers_for_store(store=store).filter(pk=tier_id).first()
    if tier is None:
        raise TierNotFound()
    return tier


def tiers_public(*, store) -> list[Tier]:
    """The tiers a store page offers, in the creator's order."""
    return list(
        Tier.objects.filter(store=store, status=TierStatus.ACTIVE).prefetch_related("prices__product", "gates")
        .order_by("position", "pk")
    )


def tiers_gating(*, product_id: str) -> list[Tier]:
    """The active tiers a post (its product) is gated to: the offers on its paywall."""
    return list(
        Tier.objects.filter(gates__product_id=product_id, status=TierStatus.ACTIVE).select_related("store")
        .prefetch_related("prices__product").order_by("position", "pk")
    )


def subscriptions_for_store(*, store, status: str | None = None, tier_id: str | None = None) -> QuerySet[Subscription]:
    qs = Subscription.objects.filter(store=store).select_related("price", "store").order_by("-pk")
    if status:
        qs = qs.filter(status=status)
    if tier_id:
        qs = qs.filter(tier_id=tier_id)
    return qs


def subscription_get(*, store, subscription_id: str) -> Subscription:
    sub = subscriptions_for_store(store=store).filter(pk=subscription_id).first()
    if sub is None:
        raise SubscriptionNotFound()
    return sub


def subscriptions_for_customer(*, store, customer_id: str) -> QuerySet[Subscription]:
    """A customer's subscriptions; a customer of another store is "not found"."""
    if not Customer.objects.filter(store=store, pk=customer_id).exists():
        raise NotFound("No such customer.")
    return subscriptions_for_store(store=store).filter(customer_id=customer_id)


def subscriptions_for_email(*, email: str) -> QuerySet[Subscription]:
    """A reader's memberships in every store, live first: their management page."""
    return (
        Subscription.objects.filter(email=email.lower()).select_related("tier", "price", "store", "pending_price__tier", "saved_method")
        .order_by("status", "-pk")
    )


def subscription_live_for(*, store_id: str, email: str) -> Subscription | None:
    return Subscription.objects.filter(store_id=store_id, email=(email or "").lower(), status__in=LIVE_STATUSES).first()


def subscription_payments(*, subscription: Subscription) -> QuerySet[SubscriptionPeriod]:
    """A member's payment history: each period, what it cost and the order that paid it."""
    return subscription.periods.select_related("order", "price").order_by("-number")


def subscription_orders(*, subscription: Subscription) -> QuerySet[Order]:
    """Every membership order of the member at the store, newest first: joins, renewals, and
    upgrades' prorated differences (which belong to no period)."""
    return (
        Order.objects.filter(store_id=subscription.store_id, email__iexact=subscription.email, lines__product__kind="membership")
        .distinct().select_related("payment").prefetch_related("lines").order_by("-pk")
    )


def tier_member_emails(*, tier: Tier) -> list[str]:
    """The emails of a tier's members with access (for broadcasts, issue #10)."""
    return list(Subscription.objects.filter(tier=tier, status__in=ACCESS_STATUSES).order_by("email").values_list("email", flat=True))


@dataclass(frozen=True)
class TierFigures:
    members: int  # live members (paused ones too)
    mrr: int


def tier_figures(*, store) -> dict[str, TierFigures]:
    """Members and monthly recurring revenue of each of the store's tiers, for the dashboard's list."""
    counts = dict(
        Subscription.objects.filter(store=store, status__in=LIVE_STATUSES).values("tier_id").order_by()
        .annotate(n=Count("pk")).values_list("tier_id", "n")
    )
    mrr: dict[str, int] = {}
    paying = Subscription.objects.filter(store=store, status__in=ACCESS_STATUSES, price__isnull=False).exclude(pay_with="none")
    for sub in paying.select_related("price").only("tier_id", "price__amount", "price__interval").iterator():
        mrr[sub.tier_id] = mrr.get(sub.tier_id, 0) + _monthly(sub.price)
    return {t: TierFigures(members=counts.get(t, 0), mrr=mrr.get(t, 0)) for t in {*counts, *mrr}}


def subscription_for_order(*, order) -> Subscription | None:
    """The membership an order paid for (a join, a renewal or an upgrade), if any."""
    period = SubscriptionPeriod.objects.filter(order=order).select_related("subscription__tier").first()
    if period is not None:
        return period.subscription
    if not order.lines.filter(product__kind="membership").exists():
        return None
    return (
        Subscription.objects.filter(store_id=order.store_id, email=order.email.lower(), status__in=LIVE_STATUSES)
        .select_related("tier").first()
    )


# In the active language: the reader's on their pages, English on the dashboard and in the API.
PRICE_LABELS = {
    Interval.WEEK: gettext_lazy("%(amount)s a week"),
    Interval.MONTH: gettext_lazy("%(amount)s a month"),
    Interval.YEAR: gettext_lazy("%(amount)s a year"),
}


def price_label(price, locale: str | None = None) -> str:
    """"$3.00 a month"."""
    return str(PRICE_LABELS[price.interval]) % {"amount": format_money(price.amount, price.currency, locale)}


def tier_prices_label(tier: Tier, locale: str | None = None) -> str:
    """"$3.00 a month or $30.00 a year"; "Free" for a tier with no price."""
    order = list(Interval.values)
    prices = sorted(tier.prices.all(), key=lambda p: order.index(p.interval))
    live = [p for p in prices if p.product.status != "archived"] if tier.status == TierStatus.ACTIVE else prices
    labels = [price_label(p, locale) for p in live]
    if not labels:
        return gettext("Free")
    # "$3.00 a month or $30.00 a year": a tier has at most three prices.
    return functools.reduce(lambda left, right: gettext("%(first)s or %(second)s") % {"first": left, "second": right}, labels)


def paywall_offers(*, store_id: str, product_id: str, email: str = "") -> list[Offer]:
    """The tiers a gated post's paywall offers (registered with ``orders.access``), with a capped
    tier's "x of y paid this month" for a signed-in reader."""
    offers = []
    for tier in tiers_gating(product_id=product_id):
        if tier.store_id != store_id:
            continue
        progress = cap_progress(tier=tier, email=email) if email else None
        text = ""
        if progress is not None:
            paid, cap = progress
            text = gettext("%(paid)s of %(cap)s paid this month") % {
                "paid": format_money(paid, tier.store.currency), "cap": format_money(cap, tier.store.currency),
            }
        offers.append(Offer(
            name=tier.name, price=tier_prices_label(tier), description=tier.description,
            url=reverse("memberships:join", args=[tier.store.slug, tier.pk]), progress=text,
            progress_value=progress[0] if progress else 0, progress_max=progress[1] if progress else 0,
        ))
    return offers


def _monthly(price) -> int:
    if price.interval == Interval.YEAR:
        return price.amount // 12
    if price.interval == Interval.WEEK:
        return price.amount * 52 // 12
    return price.amount


@dataclass(frozen=True)
class MembershipStats:
    members: int
    mrr: int  # monthly recurring revenue of paying members, in minor units
    new: int  # joined in the last 30 days
    canceled: int  # set to cancel in the last 30 days
    churned: int  # ended in the last 30 days
    currency: str


def membership_stats(*, store, now=None) -> MembershipStats:
    """What the creator's dashboard shows: members, MRR, and the last 30 days' movement."""
    now = now or timezone.now()
    since = now - timedelta(days=30)
    live = Subscription.objects.filter(store=store, status__in=ACCESS_STATUSES).select_related("price")
    members, mrr = 0, 0
    for sub in live.iterator():
        members += 1
        if sub.price is not None and sub.pay_with != "none":
            mrr += _monthly(sub.price)
    subs = Subscription.objects.filter(store=store)
    return MembershipStats(
        members=members, mrr=mrr, new=subs.filter(created_at__gte=since).count(),
        canceled=subs.filter(canceled_at__gte=since).count(),
        churned=subs.filter(status=SubscriptionStatus.ENDED, ended_at__gte=since).count(), currency=store.currency,
    )


# --- Access to gated posts (registered with orders.access) ---------------------------------------

_ACCESS_IN = ", ".join(f"'{s}'" for s in ACCESS_STATUSES)

# A member of a tier that gates the product: one indexed lookup, read in the unlock's first SELECT.
GRANTED_SQL = (
    "EXISTS (SELECT 1 FROM memberships_tiergate g JOIN memberships_subscription s ON s.tier_id = g.tier_id "
    f"WHERE g.product_id = %s AND s.email = %s AND s.status IN ({_ACCESS_IN}))"
)


def access_granted(*, store_id: str, product_id: str, email: str) -> bool:
    """A member (trialing, active, or past due within the grace period) of a tier gating it, or a
    reader who paid a capped tier gating it its whole price this month (cap-to-subscribe) without
    being made its member: a member of another tier, or one whose capped membership the creator
    ended. They are charged nothing more for its posts this month (``services.cap_limit``)."""
    email = email.lower()
    member = Subscription.objects.filter(
        store_id=store_id, email=email, status__in=ACCESS_STATUSES, tier__gates__product_id=product_id,
    ).exists()
    if member:
        return True
    left = cap_limit(product_id=product_id, email=email)
    return left is not None and left <= 0


def access_gated(*, product_ids: list[str]) -> set[str]:
    return set(TierGate.objects.filter(product_id__in=product_ids).values_list("product_id", flat=True))


def access_reader_for_token(*, store_id: str, token: str) -> FeedReader | None:
    """The member whose private feed this is, while their membership gives access, with the
    language they joined in."""
    if not token or not isinstance(token, str):
        return None
    found = Subscription.objects.filter(store_id=store_id, feed_token=token, status__in=ACCESS_STATUSES).values_list(
        "email", "language").first()
    return FeedReader(email=found[0], language=found[1]) if found is not None else None


ACCESS = AccessHandler(
    granted=access_granted, gated=access_gated, granted_sql=GRANTED_SQL, reader_for_token=access_reader_for_token,
    offers=paywall_offers,
)



def tier_members_count(*, tier: Tier) -> int:
    return Subscription.objects.filter(tier=tier, status__in=LIVE_STATUSES).count()


def tier_closed_reason(*, tier: Tier) -> str:
    """Why the tier takes no new members now ("" when it does): the join page says it up front."""
    if tier.status != TierStatus.ACTIVE:
        return gettext_noop("This tier is archived: it takes no new members.")
    if tier.member_limit is not None and tier_members_count(tier=tier) >= tier.member_limit:
        return gettext_noop("This tier is full: it has reached its member limit.")
    return ""


def tier_change_options(*, subscription: Subscription) -> list:
    """The prices a member may move to: every other active tier price of the store."""
    return list(
        TierPrice.objects.filter(tier__store_id=subscription.store_id, tier__status=TierStatus.ACTIVE)
        .exclude(product__status="archived").exclude(pk=subscription.price_id)
        .select_related("tier").order_by("tier__position", "tier_id", "amount")
    )
