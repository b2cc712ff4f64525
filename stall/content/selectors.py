"""Reads for posts and tips. Everything is scoped to a store; a draft post is "not found" to readers."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from stall.catalog.models import Product, ProductStatus
from stall.core.rows import model_columns, model_from_row
from stall.orders.access import (
    FeedReader,
    access_gated,
    access_gated_among,
    access_granted,
    access_offers,
    access_reader_for_token,
)
from stall.orders.models import Entitlement, OrderStatus
from stall.payments.rails import card_minimum_charge
from stall.payments.rails.wallet import wallet_get
from stall.stores.models import Store

from .errors import PostNotFound
from .models import Post, Tip, TipJar, UnlockRefund
from .preview import Split, post_split


def post_split_for(post: Post) -> Split:
    return post_split(post.body, paragraphs=settings.STALL_POST_PREVIEW_PARAGRAPHS, priced=not post.is_free)


def posts_for_store(*, store) -> QuerySet[Post]:
    return Post.objects.filter(store=store).select_related("product", "store").order_by("-pk")


def post_get(*, store, post_id: str) -> Post:
    """A post of ``store``, any status; another store's post is "not found"."""
    post = posts_for_store(store=store).filter(pk=post_id).first()
    if post is None:
        raise PostNotFound()
    return post


def posts_public(*, store) -> QuerySet[Post]:
    return (
        Post.objects.filter(store=store, product__status=ProductStatus.PUBLISHED)
        .select_related("product", "store")
        .order_by("-published_at", "-pk")
    )


def post_get_public(*, store, slug: str) -> Post:
    post = posts_public(store=store).filter(product__slug=slug).first()
    if post is None:
        raise PostNotFound()
    return post


def post_get_for_reader(*, store=None, store_slug: str = "", slug: str, email: str = "", user=None) -> Post:
    """A published post; or, for its creator, any post (to preview a draft); or an archived post
    the reader unlocked (it stays in their library). Anything else is "not found".

    By ``store``, or by ``store_slug``: then the store comes in the same query as the post (a
    reader's one-click unlock reads both), and a store that does not exist is "not found" too."""
    post = _post_with_product_and_store(store=store, store_slug=store_slug, slug=slug)
    if post is None:
        raise PostNotFound()
    if post.product.status == ProductStatus.PUBLISHED or post_is_creator(post=post, user=user):
        return post
    if post.product.status == ProductStatus.ARCHIVED and post_unlock_get(post=post, email=email) is not None:
        return post
    raise PostNotFound()


# A post by its store and slug, with its product and store, in one SELECT written out (every
# one-click unlock reads it; stall.core.rows says why not the ORM). The product is found by its
# (store, slug) unique index and the post by its product: looked up through the post's own store
# column instead, SQLite walks every post of the store.
_POST_SQL = (
    f"SELECT {model_columns(Post, 'p')}, {model_columns(Product, 'pr')}, {model_columns(Store, 's')} "
    "FROM catalog_product pr JOIN content_post p ON p.product_id = pr.id "
    "JOIN stores_store s ON s.id = p.store_id AND s.id = pr.store_id "
    "WHERE pr.slug = %s AND "
)


def _post_with_product_and_store(*, store, store_slug: str, slug: str) -> Post | None:
    if store is not None:
        sql, params = _POST_SQL + "pr.store_id = %s", [slug, store.pk]
    else:
        sql, params = _POST_SQL + "pr.store_id = (SELECT id FROM stores_store WHERE slug = %s)", [slug, store_slug]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    posts, products = len(Post._meta.concrete_fields), len(Product._meta.concrete_fields)
    post = model_from_row(Post, row[:posts])
    post.product = model_from_row(Product, row[posts:posts + products])
    post.store = store if store is not None else model_from_row(Store, row[posts + products:])
    return post


def post_unlock_get(*, post: Post, email: str) -> Entitlement | None:
    """The reader's live unlock of the post (an unrevoked entitlement), newest first."""
    if not email:
        return None
    return (
        Entitlement.objects.filter(product_id=post.product_id, email__iexact=email, revoked_at__isnull=True)
        .select_related("order")
        .order_by("-pk")
        .first()
    )


def post_gated(*, post: Post) -> bool:
    """Whether the post is gated to membership tiers (stall.orders.access): then even a free one
    is read in full by members only, and a priced one by members and those who unlocked it."""
    return access_gated(product_id=post.product_id)


def posts_gated_among(*, posts) -> set[str]:
    """The product ids of those of ``posts`` that are gated to tiers, in one query."""
    return access_gated_among(product_ids=[p.product_id for p in posts])


def feed_reader_for_token(*, store, token: str) -> FeedReader | None:
    """The reader a private feed address belongs to (a member's secret token: their email and
    language), or None."""
    return access_reader_for_token(store_id=store.pk, token=token)


def posts_gated_marked(posts: list[Post]) -> list[Post]:
    """``posts`` with ``gated`` set on each (one query), for lists that tag members' posts."""
    gated = posts_gated_among(posts=posts)
    for post in posts:
        post.gated = post.product_id in gated
    return posts


def post_offers(*, post: Post, email: str = ""):
    """What a gated post's paywall offers besides unlocking it (joining a tier), from whoever
    registered with ``orders.access``: content knows nothing of tiers."""
    return access_offers(store_id=post.store_id, product_id=post.product_id, email=email)


def post_member_access(*, post: Post, email: str) -> bool:
    """Whether the reader reads the post as a member of a tier it is gated to."""
    return access_granted(store_id=post.store_id, product_id=post.product_id, email=email)


def post_readable_by(*, post: Post, email: str, gated: bool | None = None) -> bool:
    """Whether ``email`` gets the post's body: a free post not gated, one they unlocked, or one
    gated to a tier they are a member of. (The creator's own view is the views' concern.)"""
    gated = post_gated(post=post) if gated is None else gated
    if post.is_free and not gated:
        return True
    if not email:
        return False
    return post_unlock_get(post=post, email=email) is not None or (gated and post_member_access(post=post, email=email))


def post_unlock_by_checkouts(*, post: Post, checkout_ids) -> Entitlement | None:
    """A live unlock bought in one of these checkouts: a signed-out reader's card unlock, known to
    the browser that started it (the ids come from its session, never from the URL)."""
    ids = [c for c in (checkout_ids or []) if isinstance(c, str)][-20:]
    if not ids:
        return None
    return (
        Entitlement.objects.filter(product_id=post.product_id, order__checkout_id__in=ids, revoked_at__isnull=True)
        .select_related("order")
        .first()
    )


def post_is_creator(*, post: Post, user) -> bool:
    return bool(user is not None and user.is_authenticated and post.store.owner_id == user.pk)


@dataclass(frozen=True)
class RefundOffer:
    """Whether the reader may give this unlock back, and until when."""

    allowed: bool
    deadline: datetime | None = None
    left_this_month: int = 0
    reason: str = ""  # why not, when not allowed


def unlock_refund_offer(*, post: Post, buyer, entitlement: Entitlement | None, now=None) -> RefundOffer:
    if buyer is None or entitlement is None or entitlement.order.payment_id is None:
        return RefundOffer(allowed=False)
    now = now or timezone.now()
    deadline = entitlement.order.created_at + timedelta(hours=settings.STALL_UNLOCK_REFUND_HOURS)
    local = timezone.localtime(now)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = UnlockRefund.objects.filter(buyer=buyer, created_at__gte=month_start).count()
    left = max(0, settings.STALL_UNLOCK_REFUNDS_PER_MONTH - used)
    if now > deadline:
        return RefundOffer(allowed=False, deadline=deadline, left_this_month=left, reason="window")
    if not left:
        return RefundOffer(allowed=False, deadline=deadline, left_this_month=0, reason="limit")
    return RefundOffer(allowed=True, deadline=deadline, left_this_month=left)


# --- Tips -----------------------------------------------------------------------------------


def tip_jar_get(*, store) -> TipJar | None:
    return TipJar.objects.select_related("product").filter(store=store).first()


def tip_jar_public(*, store) -> TipJar | None:
    return TipJar.objects.select_related("product").filter(store=store, enabled=True).first()


def tips_for_store(*, store) -> QuerySet[Tip]:
    return Tip.objects.filter(store=store).select_related("order").order_by("-pk")


def tip_jar_raised(*, jar: TipJar) -> int:
    """What the jar has taken in: its tip orders' totals less what was refunded."""
    total = Tip.objects.filter(store_id=jar.store_id, currency=jar.currency).aggregate(
        s=Coalesce(Sum(F("order__amount_total") - F("order__amount_refunded")), 0)
    )["s"]
    return int(total)


@dataclass(frozen=True)
class Supporter:
    name: str
    amount: int
    currency: str
    message: str
    created_at: datetime


def supporters_public(*, jar: TipJar, limit: int = 20) -> list[Supporter]:
    """The public supporters list, newest first. A tipper who did not opt in is "Someone", with no
    message: their name and words never leave the dashboard."""
    if not jar.show_supporters:
        return []
    tips = (
        Tip.objects.filter(store_id=jar.store_id)
        .exclude(order__status=OrderStatus.REFUNDED)
        .only("name", "message", "public", "amount", "currency", "created_at")
        .order_by("-pk")[:limit]
    )
    return [
        Supporter(
            name=(t.name if t.public and t.name else "Someone"), amount=t.amount, currency=t.currency,
            message=t.message if t.public else "", created_at=t.created_at,
        )
        for t in tips
    ]


@dataclass(frozen=True)
class TipJarPanel:
    """Everything the tip jar box on a store or product page shows."""

    jar: TipJar
    raised: int
    percent: int | None
    supporters: list[Supporter] = field(default_factory=list)
    buyer: object = None
    wallet_balance: int = 0
    card_minimum: int = 0


def tip_jar_panel(*, store, buyer=None) -> TipJarPanel | None:
    jar = tip_jar_public(store=store)
    if jar is None:
        return None
    raised = tip_jar_raised(jar=jar)
    percent = min(100, raised * 100 // jar.goal_amount) if jar.goal_amount else None
    return TipJarPanel(
        jar=jar, raised=raised, percent=percent, supporters=supporters_public(jar=jar), buyer=buyer,
        wallet_balance=wallet_balance_for(buyer=buyer, currency=jar.currency), card_minimum=card_minimum_charge(jar.currency),
    )


def wallet_balance_for(*, buyer, currency: str) -> int:
    if buyer is None:
        return 0
    wallet = wallet_get(buyer=buyer, currency=currency)
    return wallet.account.balance if wallet is not None else 0
