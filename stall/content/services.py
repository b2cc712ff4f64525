"""Writes for posts and tips: creating and publishing posts, unlocking them, a reader's refund of
an unlock, the tip jar's settings and sending a tip.

Unlocks and tips are purchases like any other: a checkout for the post's (or the tip jar's)
product, paid on a rail. From the wallet or the tab the checkout is created and paid in one
transaction, so a refusal (an empty wallet, a full tab) leaves no checkout, order or transfer
behind. By card the checkout goes to the hosted payment page, and what the paid order does
(``post_unlock_fulfil``, ``tip_fulfil``) is the same on every rail.
"""

import os
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext, gettext_noop

from stall.accounts.models import Buyer
from stall.accounts.services import buyer_for_email
from stall.catalog.errors import ProductInvalid
from stall.catalog.models import PriceType, Product, ProductKind, ProductStatus
from stall.catalog.services import product_create, product_update
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create, email_normalize
from stall.core.errors import InvalidRequest, StallError
from stall.core.ids import new_id
from stall.core.money import (
    MAX_AMOUNT,
    amount_validate,
    currency_exponent,
    format_money,
    money_setting,
    money_setting_list,
)
from stall.integrations.webhooks import EventRow
from stall.orders.access import access_granted_sql
from stall.orders.errors import PriceLimitPassed
from stall.orders.models import Order
from stall.orders.pricing import amount_charged, price_limits, price_limits_sql
from stall.orders.refunds import refund_create
from stall.orders.spend import SpendLine, order_spend, spend_read
from stall.payments.errors import BuyerRequired
from stall.payments.rails import card_minimum_charge, rail_get

from .errors import (
    CardNotAllowed,
    ConfirmRequired,
    MembersOnly,
    PostInvalid,
    PostNotFound,
    TipInvalid,
    TipJarInvalid,
    TipJarNotFound,
    UnlockRefundInvalid,
    UnlockRefundRefused,
)
from .models import PendingTip, Post, Tip, TipJar, UnlockRefund
from .schemas import post_url, tip_out, unlock_out
from .selectors import post_gated, post_member_access, post_unlock_get, tip_jar_public

_UNSET = object()

# How a reader pays for an unlock or a tip: from their wallet, on their tab (both one click, in
# the ledger), or by card on the hosted payment page.
IN_LEDGER_METHODS = ("wallet", "tab")
METHODS = (*IN_LEDGER_METHODS, "card")

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
IMAGE_MAX_BYTES = 10 * 1024 * 1024


def _minor(major: str, currency: str) -> int:
    return max(1, int(Decimal(major).scaleb(currency_exponent(currency))))


def card_minimum(currency: str) -> int:
    """The smallest card charge; below it a reader pays from the wallet or the tab."""
    return card_minimum_charge(currency)


# --- Posts ----------------------------------------------------------------------------------


def _post_error(exc: StallError) -> StallError:
    """The product's errors in the post's words: the product's "name" is the post's "title"."""
    param, message = exc.param, exc.message
    if param == "name":
        param = "title"
        message = "Give the post a title." if "blank" in message else message.replace("Name", "Title")
    if param == "slug" and message.startswith("Another product"):
        message = "Another post or product of this store has that address."
    if isinstance(exc, ProductInvalid):
        return PostInvalid(message, param=param, code=None if exc.code == ProductInvalid.code else exc.code)
    exc.param, exc.message = param, message
    return exc


def _body_checked(body) -> str:
    if not isinstance(body, str):
        raise PostInvalid("The body must be text.", param="body")
    if len(body) > Post._meta.get_field("body").max_length:
        raise PostInvalid("A post can be at most 100,000 characters long.", param="body")
    if "\x00" in body:
        raise PostInvalid("Text cannot contain NUL characters.", param="body")
    return body


@transaction.atomic
def post_create(
    *, store, title: str, body: str = "", amount: int = 0, status: str = ProductStatus.DRAFT, slug: str = "",
    currency: str | None = None,
) -> Post:
    """A post: a product of kind ``post`` at a fixed price (0 for free) with its Markdown body."""
    body = _body_checked(body)
    try:
        product = product_create(
            store=store, name=title, amount=amount, price_type=PriceType.FIXED, status=status, slug=slug, currency=currency,
            kind=ProductKind.POST,
        )
    except StallError as exc:
        raise _post_error(exc) from None
    published_at = timezone.now() if product.status == ProductStatus.PUBLISHED else None
    return Post.objects.create(store=store, product=product, body=body, published_at=published_at)


@transaction.atomic
def post_update(*, post: Post, title=_UNSET, body=_UNSET, amount=_UNSET, status=_UNSET, slug=_UNSET) -> Post:
    """Change only what is given, like the product services."""
    post = Post.objects.select_for_update().select_related("product", "store").get(pk=post.pk)
    changes = {k: v for k, v in {"name": title, "amount": amount, "status": status, "slug": slug}.items() if v is not _UNSET}
    if changes:
        try:
            post.product = product_update(product=post.product, **changes)
        except StallError as exc:
            raise _post_error(exc) from None
    if body is not _UNSET:
        post.body = _body_checked(body)
    if post.product.status == ProductStatus.PUBLISHED and post.published_at is None:
        post.published_at = timezone.now()
    post.save()
    return post


def post_publish(*, post: Post) -> Post:
    return post_update(post=post, status=ProductStatus.PUBLISHED)


def post_archive(*, post: Post) -> Post:
    """Off the store and the feed; readers who unlocked it keep it in their library."""
    return post_update(post=post, status=ProductStatus.ARCHIVED)


def post_image_add(*, post: Post, upload, alt: str = "") -> str:
    """Keep an image for the post's body in the public storage and add it to the end of the body
    as Markdown. Returns the image's URL."""
    if upload is None or not getattr(upload, "name", ""):
        raise PostInvalid("Choose an image to upload.", param="image")
    extension = os.path.splitext(upload.name)[1].lower()
    if extension not in IMAGE_TYPES:
        raise PostInvalid("Upload a PNG, JPEG, GIF or WebP image.", param="image")
    if not upload.size:
        raise PostInvalid("The image is empty.", param="image")
    if upload.size > IMAGE_MAX_BYTES:
        raise PostInvalid("Images can be at most 10 MB.", param="image")
    try:
        from PIL import Image

        upload.seek(0)
        Image.open(upload).verify()
        upload.seek(0)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds of errors for a file that is not an image
        raise PostInvalid("That file is not an image Stall can read.", param="image") from None
    safe = get_valid_filename(os.path.basename(upload.name)) or f"image{extension}"
    stored = default_storage.save(f"posts/{post.store_id}/{new_id('img')}/{safe}", upload)
    url = default_storage.url(stored)
    alt = (alt or "").replace("]", "").replace("[", "").strip()[:120] or os.path.splitext(safe)[0]
    with transaction.atomic():
        post = Post.objects.select_for_update().get(pk=post.pk)
        post.body = _body_checked(f"{post.body.rstrip()}\n\n![{alt}]({url})\n".lstrip())
        post.save(update_fields=["body", "updated_at"])
    return url


# --- Unlocks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unlock:
    """What unlocking did: ``order`` paid now or before (``already``), or a ``checkout`` to pay by
    card. ``member``: the reader reads it as a member of a tier it is gated to; nothing charged."""

    order: Order | None = None
    checkout: Checkout | None = None
    already: bool = False
    member: bool = False


def _method_checked(method) -> str:
    if method not in METHODS:
        raise InvalidRequest(f"Choose how to pay: {', '.join(METHODS)}.", param="method", code="invalid_payment_method")
    return method


def post_unlock(*, post: Post, method: str, buyer: Buyer | None = None, email: str = "", confirmed: bool = False) -> Unlock:
    """Unlock a post for a reader, with one click from the wallet or the tab, or by card.

    A post the reader has already unlocked (or a free one), or reads as a member of a tier it is
    gated to, is not charged (``already``; a free gated post raises MembersOnly for others). From the wallet
    or tab the checkout is created and paid in one transaction, under a lock on the buyer so
    that a double click pays once; a refusal (WalletEmpty, TabLimitReached, TabOverdue) leaves
    nothing behind. Above the wallet's one-click limit it raises ConfirmRequired until called
    with ``confirmed=True``. By card (only at or above the card minimum) it returns the open
    checkout for the hosted payment page; the order is made when the card is paid.
    """
    method = _method_checked(method)
    product = post.product
    if product.status != ProductStatus.PUBLISHED:
        raise PostNotFound()
    if post.is_free:
        if not post_gated(post=post):
            return Unlock(already=True)
        reader = buyer.email if buyer is not None else (email_normalize(email) if email else "")
        if reader and post_member_access(post=post, email=reader):
            return Unlock(already=True, member=True)
        raise MembersOnly()
    if method in IN_LEDGER_METHODS:
        if buyer is None:
            raise BuyerRequired()
        return _post_unlock_in_ledger(post=post, method=method, buyer=buyer, confirmed=confirmed)
    email = buyer.email if buyer is not None else email_normalize(email)
    existing = post_unlock_get(post=post, email=email)
    if existing is not None:
        return Unlock(order=existing.order, already=True)
    if post_member_access(post=post, email=email):
        return Unlock(already=True, member=True)
    minimum = card_minimum(product.currency)
    amount = amount_charged(amount=product.amount, limits=price_limits(product_id=product.pk, email=email))
    if amount < minimum:
        raise CardNotAllowed(
            gettext("Card payments start at %(amount)s; unlock this from your wallet or tab.") % {"amount": format_money(minimum, product.currency)},
            param="method",
        )
    item = CheckoutItem(product_id=product.pk, price_limit=amount if amount < product.amount else None)
    checkout = checkout_create(store=post.store, email=email, items=[item])
    return Unlock(checkout=checkout)


# Has this reader unlocked this post (a live entitlement)? Read in the spend's first SELECT, and
# again after the debit on PostgreSQL, where a double click's second request runs alongside the
# first (the wallet row's lock orders them; this sees the first's entitlement once it committed).
_UNLOCKED_SQL = (
    "(SELECT MAX(e.order_id) FROM orders_entitlement e "
    "WHERE e.product_id = %s AND LOWER(e.email) = %s AND e.revoked_at IS NULL)"
)


class _AlreadyUnlocked(Exception):
    def __init__(self, order_id: str):
        self.order_id = order_id


def _post_unlock_in_ledger(*, post: Post, method: str, buyer: Buyer, confirmed: bool) -> Unlock:
    """One click from the wallet or the tab: the lean spend (stall.orders.spend), with no checkout.
    The price charged is the product's, lowered by what ``orders.pricing`` says (a membership's
    cap), read in the spend's first SELECT."""
    product = post.product
    email = buyer.email.lower()

    def unlocked_meanwhile() -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {_UNLOCKED_SQL}", [product.pk, email])
                order_id = cursor.fetchone()[0]
            if order_id is not None:
                raise _AlreadyUnlocked(order_id)

    # A member of a tier the post is gated to reads it free: asked in the same SELECT
    # (stall.orders.access), so a store with no tiers pays no statement for it.
    member_sql, pairs = access_granted_sql()
    limit_columns, limit_params = price_limits_sql(product_id=product.pk, email=email)
    for attempt in range(1, _PRICE_TRIES + 1):
        try:
            return _spend_once(post=post, method=method, buyer=buyer, confirmed=confirmed, email=email, after_debit=unlocked_meanwhile,
                               extra_columns=", ".join([_UNLOCKED_SQL, member_sql, *limit_columns]),
                               extra_params=[product.pk, email] * (1 + pairs) + limit_params)
        except PriceLimitPassed:
            # Another payment reached a membership's cap after this one read the price (two
            # clicks at once on PostgreSQL): nothing moved; read the price again, now lower or nil.
            if attempt == _PRICE_TRIES:
                raise
        except _AlreadyUnlocked as already:
            return Unlock(order=Order.objects.get(pk=already.order_id), already=True)
    raise AssertionError("unreachable")


# Reading the price again after a cap was reached meanwhile: a third try needs yet another
# payment to have moved the cap in between.
_PRICE_TRIES = 3


def _spend_once(*, post: Post, method: str, buyer: Buyer, confirmed: bool, email: str, after_debit, extra_columns: str,
                extra_params: list) -> Unlock:
    product = post.product
    context = {"post": post, "post_url": post_url(post)}  # for post.unlocked, worked out before the lock
    with transaction.atomic():
        read = spend_read(
            buyer=buyer, store_id=post.store_id, currency=product.currency,
            extra_columns=extra_columns, extra_params=extra_params,
        )
        if read.extra[0][0] is not None:
            raise _AlreadyUnlocked(read.extra[0][0])
        if read.extra[0][1]:
            return Unlock(already=True, member=True)
        amount = amount_charged(amount=product.amount, limits=read.extra[0][2:])
        if amount <= 0:  # a membership's cap reached: nothing more to pay (orders.pricing)
            return Unlock(already=True, member=True)
        if method == "wallet" and not confirmed and read.funds.confirm_above is not None and amount > read.funds.confirm_above:
            raise ConfirmRequired(f"Confirm: pay {format_money(amount, product.currency)} from your wallet.")
        line = SpendLine(
            product_id=product.pk, name=product.name, unit_amount=amount, kind=ProductKind.POST,
            download_limit=product.download_limit,
        )
        order = order_spend(
            store_id=post.store_id, buyer=buyer, method=method, currency=product.currency, lines=[line], read=read,
            context=context, after_debit=after_debit,
        )
    return Unlock(order=order)


def _month_start(now):
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def unlock_refund_request(*, post: Post, buyer: Buyer, reason: str):
    """A reader gives an unlock back, Blendle's way: within STALL_UNLOCK_REFUND_HOURS of it, with
    a reason, at most STALL_UNLOCK_REFUNDS_PER_MONTH times a calendar month. The money goes back
    the way it came (wallet to wallet, tab to tab or wallet) through ``refund_create``, which
    revokes the entitlement: the post is locked again. A refusal moves no money. Returns the Refund.
    """
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason:
        raise UnlockRefundInvalid(gettext_noop("Tell the creator why you want your money back."), param="reason", code="reason_required")
    if len(reason) > 255:
        raise UnlockRefundInvalid(gettext_noop("Keep the reason to 255 characters."), param="reason", code="reason_too_long")
    now = timezone.now()
    with transaction.atomic():
        Buyer.objects.select_for_update().filter(pk=buyer.pk).first()
        entitlement = post_unlock_get(post=post, email=buyer.email)
        if entitlement is None:
            raise UnlockRefundRefused(gettext_noop("You have not unlocked this post."), code="not_unlocked")
        order = Order.objects.select_related("payment").get(pk=entitlement.order_id)
        if order.payment_id is None:
            raise UnlockRefundRefused(gettext_noop("This unlock was free; there is nothing to refund."), code="not_refundable")
        deadline = order.created_at + timedelta(hours=settings.STALL_UNLOCK_REFUND_HOURS)
        if now > deadline:
            raise UnlockRefundRefused(
                f"Refunds can be asked for within {settings.STALL_UNLOCK_REFUND_HOURS} hours of unlocking; "
                "that time has passed for this post.",
                code="refund_window_passed",
            )
        used = UnlockRefund.objects.filter(buyer=buyer, created_at__gte=_month_start(now)).count()
        if used >= settings.STALL_UNLOCK_REFUNDS_PER_MONTH:
            raise UnlockRefundRefused(
                f"You have had {used} unlocks refunded this month, the most allowed. "
                "You can ask again next month.",
                code="refund_limit_reached",
            )
        try:
            with transaction.atomic():
                reservation = UnlockRefund.objects.create(buyer=buyer, post=post, order=order, reason=reason)
        except IntegrityError:
            raise UnlockRefundRefused(gettext_noop("This unlock has already been refunded."), code="already_refunded") from None
        if getattr(rail_get(order.payment.rail), "in_ledger", False):
            # Wallet and tab refunds happen in the ledger, inside this transaction.
            refund = refund_create(store=post.store, order_id=order.pk, reason=reason)
            UnlockRefund.objects.filter(pk=reservation.pk).update(refund=refund)
            return refund
    # A card refund calls the processor: not while holding the lock (see stall.payments.services).
    try:
        refund = refund_create(store=post.store, order_id=order.pk, reason=reason)
    except Exception:
        UnlockRefund.objects.filter(pk=reservation.pk).delete()
        raise
    UnlockRefund.objects.filter(pk=reservation.pk).update(refund=refund)
    return refund


# --- Tips -----------------------------------------------------------------------------------


def tip_jar_defaults(currency: str) -> dict:
    return {
        "presets": money_setting_list("STALL_TIP_PRESETS", currency),
        "minimum": money_setting("STALL_TIP_MIN", currency),
        "maximum": money_setting("STALL_TIP_MAX", currency),
    }


def _jar_product(store, jar: TipJar | None, *, title: str, minimum: int, enabled: bool) -> Product:
    status = ProductStatus.PUBLISHED if enabled else ProductStatus.DRAFT
    if jar is not None:
        return product_update(product=jar.product, name=title, amount=minimum, status=status)
    for slug in ("tip-jar", f"tip-jar-{new_id('t')[-8:]}"):
        try:
            with transaction.atomic():
                product = product_create(
                    store=store, name=title, amount=minimum, price_type=PriceType.PAY_WHAT_YOU_WANT, status=status, slug=slug,
                    kind=ProductKind.TIP,
                )
                break
        except StallError as exc:
            if exc.param != "slug":
                raise
    return product


@transaction.atomic
def tip_jar_update(
    *, store, enabled=_UNSET, title=_UNSET, presets=_UNSET, minimum=_UNSET, maximum=_UNSET, goal_amount=_UNSET,
    goal_title=_UNSET, show_supporters=_UNSET,
) -> TipJar:
    """Set up or change the store's tip jar; the first call makes its ``tip`` product."""
    jar = TipJar.objects.select_for_update().select_related("product").filter(store=store).first()
    values = {
        "enabled": False, "title": gettext_noop("Leave a tip"), "goal_amount": None, "goal_title": "", "show_supporters": True,
        **tip_jar_defaults(store.currency),
    }
    if jar is not None:
        values.update({f: getattr(jar, f) for f in values})
    given = {
        "enabled": enabled, "title": title, "presets": presets, "minimum": minimum, "maximum": maximum,
        "goal_amount": goal_amount, "goal_title": goal_title, "show_supporters": show_supporters,
    }
    values.update({k: v for k, v in given.items() if v is not _UNSET})
    _tip_jar_check(values, store.currency)
    product = _jar_product(store, jar, title=values["title"], minimum=values["minimum"], enabled=values["enabled"])
    if jar is None:
        jar = TipJar(store=store, product=product)
    for field, value in values.items():
        setattr(jar, field, value)
    jar.product = product
    jar.save()
    return jar


def _tip_jar_check(values: dict, currency: str) -> None:
    values["title"] = (values["title"] or "").strip() if isinstance(values["title"], str) else ""
    if not values["title"]:
        raise TipJarInvalid("Give the tip jar a title.", param="title")
    if len(values["title"]) > 120:
        raise TipJarInvalid("Keep the title to 120 characters.", param="title")
    values["goal_title"] = (values["goal_title"] or "").strip() if isinstance(values["goal_title"], str) else ""
    if len(values["goal_title"]) > 120:
        raise TipJarInvalid("Keep the goal's title to 120 characters.", param="goal_title")
    low = amount_validate(values["minimum"], param="minimum", allow_zero=False)
    high = amount_validate(values["maximum"], param="maximum", allow_zero=False)
    if high < low:
        raise TipJarInvalid("The largest tip cannot be below the smallest.", param="maximum")
    if values["goal_amount"] is not None:
        amount_validate(values["goal_amount"], param="goal_amount", allow_zero=False)
    presets = values["presets"]
    if not isinstance(presets, list) or len(presets) > 6:
        raise TipJarInvalid("Offer at most 6 preset amounts.", param="presets")
    for amount in presets:
        amount_validate(amount, param="presets", allow_zero=False)
        if not low <= amount <= high:
            raise TipJarInvalid(
                f"Each preset must be between {format_money(low, currency)} and {format_money(high, currency)}.",
                param="presets",
            )
    values["presets"] = sorted(set(presets))
    for flag in ("enabled", "show_supporters"):
        values[flag] = bool(values[flag])


@dataclass(frozen=True)
class TipSent:
    """A tip paid now (``tip``), or a ``checkout`` to pay by card (the Tip is made when it is paid)."""

    tip: Tip | None = None
    checkout: Checkout | None = None


def tip_check(*, jar: TipJar, amount, name: str = "", message: str = "") -> tuple[int, str, str]:
    """Check a tip against the jar's limits; return (amount, name, message) cleaned."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TipInvalid(gettext_noop("Enter an amount."), param="amount", code="invalid_amount")
    currency = jar.currency
    if amount < jar.minimum:
        raise TipInvalid(gettext("The smallest tip is %(amount)s.") % {"amount": format_money(jar.minimum, currency)}, param="amount", code="amount_too_small")
    if amount > min(jar.maximum, MAX_AMOUNT):
        raise TipInvalid(gettext("The largest tip is %(amount)s.") % {"amount": format_money(jar.maximum, currency)}, param="amount", code="amount_too_large")
    name = (name or "").strip() if isinstance(name, str) else ""
    message = (message or "").strip() if isinstance(message, str) else ""
    if len(name) > 80:
        raise TipInvalid(gettext_noop("Keep your name to 80 characters."), param="name")
    if len(message) > 500:
        raise TipInvalid(gettext("Keep the message to 500 characters (it has %(length)s).") % {"length": len(message)}, param="message", code="message_too_long")
    if "\x00" in name + message:
        raise TipInvalid(gettext_noop("Text cannot contain NUL characters."), param="message")
    return amount, name, message


def tip_send(
    *, store, amount: int, method: str, buyer: Buyer | None = None, email: str = "", name: str = "", message: str = "",
    public: bool = False, confirmed: bool = False, jar: TipJar | None = None,
) -> TipSent:
    """Tip the store: from the wallet or the tab in one transaction (a refusal leaves nothing), or
    by card at or above the card minimum (returns the checkout for the hosted payment page).
    ``jar`` is the store's public tip jar when the caller has read it already."""
    if jar is None or jar.store_id != store.pk or not jar.enabled:
        jar = tip_jar_public(store=store)
    if jar is None:
        raise TipJarNotFound()
    method = _method_checked(method)
    amount, name, message = tip_check(jar=jar, amount=amount, name=name, message=message)
    currency = jar.currency
    items = [CheckoutItem(product_id=jar.product_id, amount=amount)]
    if method in IN_LEDGER_METHODS:
        if buyer is None:
            raise BuyerRequired()
        product = jar.product
        line = SpendLine(
            product_id=product.pk, name=product.name, unit_amount=amount, kind=ProductKind.TIP,
            download_limit=product.download_limit,
        )
        context = {"tip": {"buyer": buyer, "name": name, "message": message, "public": bool(public)}}
        with transaction.atomic():
            read = spend_read(buyer=buyer, store_id=store.pk, currency=currency)
            if method == "wallet" and not confirmed and read.funds.confirm_above is not None and amount > read.funds.confirm_above:
                raise ConfirmRequired(f"Confirm: pay {format_money(amount, currency)} from your wallet.")
            order_spend(
                store_id=store.pk, buyer=buyer, method=method, currency=currency, lines=[line], read=read, context=context,
            )
        return TipSent(tip=context["made"])
    minimum = card_minimum(currency)
    if amount < minimum:
        raise CardNotAllowed(
            gettext("Card payments start at %(amount)s; tip less from your wallet or tab.") % {"amount": format_money(minimum, currency)}, param="amount"
        )
    email = buyer.email if buyer is not None else email_normalize(email)
    with transaction.atomic():
        checkout = checkout_create(store=store, email=email, items=items)
        PendingTip.objects.create(checkout=checkout, buyer=buyer, name=name, message=message, public=bool(public))
    return TipSent(checkout=checkout)


# --- What a paid order does -----------------------------------------------------------------


def post_unlock_fulfil(*, order: Order, lines, context: dict | None = None) -> list[EventRow]:
    """Fulfilment of a paid order's post lines (registered with orders for the ``post`` kind): the
    order's entitlement is the right to read; this tells the store with ``post.unlocked``.
    ``context["post"]`` is the post when the caller has it (a one-click unlock), with its URL
    as ``context["post_url"]``: reversed before the spend's transaction, not while it holds the
    write lock."""
    context = context or {}
    events = []
    for line in lines:
        post, url = context.get("post"), context.get("post_url")
        if post is None or post.product_id != line.product_id:
            post = Post.objects.select_related("product", "store").filter(product_id=line.product_id).first()
            url = None
        if post is not None:
            events.append(EventRow("post.unlocked", unlock_out(post=post, order=order, url=url)))
    return events


def tip_fulfil(*, order: Order, lines, context: dict | None = None) -> list[EventRow]:
    """Fulfilment of a paid order's tip lines (registered with orders for the ``tip`` kind): the
    Tip row, from what the tipper wrote (``context["tip"]`` for a one-click tip, else kept with the
    card checkout as a PendingTip), and ``tip.created``."""
    events = []
    for line in lines:
        wrote = (context or {}).get("tip")
        if wrote is None:
            pending = PendingTip.objects.filter(checkout_id=order.checkout_id).first()
            wrote = {
                "buyer": pending.buyer if pending and pending.buyer_id else buyer_for_email(email=order.email),
                "name": pending.name if pending else "", "message": pending.message if pending else "",
                "public": pending.public if pending else False,
            }
        tip = Tip(
            store_id=order.store_id, order=order, buyer=wrote["buyer"], amount=line.unit_amount * line.quantity,
            currency=order.currency, name=wrote["name"], message=wrote["message"], public=wrote["public"],
        )
        tip.save(force_insert=True)
        if context is not None:
            context["made"] = tip
        events.append(EventRow("tip.created", tip_out(tip)))
    return events
