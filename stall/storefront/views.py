"""The storefront: the store's page, a product's page, buying it, and the paid order's page.

These pages span domains (the catalog, the posts and tip jar of ``content``, checkouts and
orders), so they sit above them all; each app below keeps its own services and selectors.
"""

import functools
import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.html import strip_tags
from django.utils.text import Truncator
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_GET, require_http_methods

from stall.accounts.services import buyer_from_request
from stall.catalog.models import LISTED_KINDS, PriceType, Product, ProductKind, ProductStatus
from stall.catalog.selectors import product_get_public, products_public
from stall.checkout.cart import cart_count
from stall.checkout.discounts import code_normalize
from stall.checkout.forms import BuyForm
from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.checkout.services import CheckoutItem, checkout_create
from stall.commissions.forms import BriefForm
from stall.commissions.selectors import commission_for_order, service_offer_for
from stall.commissions.services import commission_reserve, slots_left
from stall.content.selectors import post_split_for, posts_gated_marked, posts_public, tip_jar_panel
from stall.core.csrf import csrf_by_origin
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address, limits_hit
from stall.core.markdown import render_markdown
from stall.core.middleware import frame_ancestors_allow
from stall.core.money import Money, amount_for_input
from stall.memberships.selectors import subscription_for_order, tier_prices_label, tiers_public
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.services import download_url
from stall.stores.models import Store
from stall.stores.selectors import store_get_public

EMBED_JS_SOURCE = (Path(__file__).parent / "embed.js").read_text()
# The overlay's words; the script picks the visitor's language from the table the server writes in.
EMBED_WORDS = {"checkout": gettext_noop("Checkout"), "away": gettext_noop("Open in a new tab"), "close": gettext_noop("Close")}


@functools.cache
def embed_js_bytes() -> bytes:
    """embed.js with every language's words written in: one script for every site and visitor
    (cached by browsers and proxies as one file, no Vary), which chooses by the visitor's
    browser languages, as the checkout it opens does. Built once, at the first request."""
    table = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            table[code] = {key: gettext(text) for key, text in EMBED_WORDS.items()}
    words = json.dumps(table, ensure_ascii=True, separators=(",", ":"))
    source = re.sub(r"/\*stall:words\*/.*?/\*stall:end\*/", lambda _match: words, EMBED_JS_SOURCE, count=1)
    return source.encode()


@require_GET
def embed_js(request):
    """The buy button's optional script (see embed.js), for creators' sites to load from here."""
    response = HttpResponse(embed_js_bytes(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


def share_meta(request, *, title: str, description: str, url: str, image=None, price: Money | None = None) -> dict:
    """What a shared link's preview shows (Open Graph and Twitter card tags): the description as
    plain text (Markdown rendered, tags stripped, cut to a preview's length), absolute addresses."""
    text = re.sub(r"\s+", " ", html.unescape(strip_tags(render_markdown(description or "")))).strip()
    return {
        "title": title, "description": Truncator(text).chars(200), "url": request.build_absolute_uri(url),
        "image": request.build_absolute_uri(image.url) if image else "",
        "price": f"{price.decimal:.{price.exponent}f}" if price is not None else "", "currency": price.currency if price else "",
    }


def front(request):
    """Stall's landing page: what it is, "Start selling" and "Log in".

    A Stall that runs one store alone is that store's site, so its buyers are sent to the store's
    own address (a redirect rather than the store drawn here: one address to share, bookmark and
    cache, whose links all resolve). A signed-in creator still gets the landing page, with the way
    to their dashboard; the store page's footer leads newcomers to sign-up.
    """
    stores = list(Store.objects.order_by("created_at")[:50])
    if len(stores) == 1 and not request.user.is_authenticated:
        return redirect("stores:store", slug=stores[0].slug)
    return render(request, "stores/front.html", {"stores": stores})


DISCOUNT_CODE_SESSION_KEY = "discount_codes"


def remembered_code(request, store) -> str:
    """The discount code a shared link (``?code=SPRING``) brought the buyer with, kept in the
    session for the store so the product, buy and cart pages all apply it. The session is written
    only when a link brings a new code."""
    codes = request.session.get(DISCOUNT_CODE_SESSION_KEY, {})
    given = request.GET.get("code")
    if isinstance(given, str) and given.strip():
        code = code_normalize(given)[:40]
        if codes.get(store.pk) != code:
            request.session[DISCOUNT_CODE_SESSION_KEY] = {**codes, store.pk: code}
        return code
    return codes.get(store.pk, "")


CART_SESSION_KEY = "carts"  # {store id: {product id: quantity or [quantity, amount]}}: see checkout.cart


def _cart_count(request, store) -> int:
    return cart_count(cart=request.session.get(CART_SESSION_KEY, {}).get(store.pk, {}))


def store_page(request, slug):
    try:
        store = store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None
    remembered_code(request, store)
    posts = [(post, render_markdown(post_split_for(post).preview)) for post in posts_gated_marked(list(posts_public(store=store)[:5]))]
    locale = getattr(request, "LANGUAGE_CODE", None) or "en"
    context = {
        "store": store, "products": products_public(store=store), "posts": posts,
        "tip_jar": tip_jar_panel(store=store, buyer=buyer_from_request(request)),
        "tiers": [(tier, tier_prices_label(tier, locale)) for tier in tiers_public(store=store)],
        "cart_count": _cart_count(request, store),
        "share": share_meta(request, title=store.name, description=store.bio, url=request.path, image=store.avatar),
    }
    request.page_view = (store.pk, "store", "")  # counted by stall.insights.pageviews
    return render(request, "stores/store.html", context)


def product_page(request, slug, product_slug):
    try:
        store = store_get_public(slug=slug)
        product = product_get_public(store=store, slug=product_slug)
    except NotFound:
        raise Http404 from None
    # Posts and the tip jar are products too, with pages of their own.
    if product.kind == ProductKind.POST:
        return redirect("content:post", slug=store.slug, post_slug=product.slug)
    if product.kind == ProductKind.TIP:
        return redirect("content:tip", slug=store.slug)
    if product.kind == ProductKind.GIFT_CARD:
        return redirect("gift_cards:buy", slug=store.slug, product_slug=product.slug)
    if product.kind not in LISTED_KINDS:
        raise Http404  # the API charges product has no page
    context = {
        "store": store, "product": product, "files": product.files.all(),
        "tip_jar": tip_jar_panel(store=store, buyer=buyer_from_request(request)),
        "code": remembered_code(request, store),
        "parts": [item.part for item in product.bundle_items.select_related("part")] if product.kind == ProductKind.BUNDLE else [],
        "cart_count": _cart_count(request, store),
        "share": share_meta(request, title=product.name, description=product.description, url=request.path,
                            image=product.cover, price=Money(product.amount, product.currency)),
        "slots_left": slots_left(service_offer_for(product=product)) if product.kind == ProductKind.SERVICE else None,
        # A pay-what-you-want product goes into the cart at the amount the buyer types, starting
        # from the suggested one, written the page's way ("2,50" in Portuguese).
        "cart_amount": amount_for_input(
            product.suggested_amount if product.suggested_amount is not None else product.amount, product.currency,
            getattr(request, "LANGUAGE_CODE", "en") or "en",
        ) if product.price_type == PriceType.PAY_WHAT_YOU_WANT else None,
    }
    request.page_view = (store.pk, "product", product.pk)  # counted by stall.insights.pageviews
    return render(request, "stores/product.html", context)


@csrf_by_origin  # shown in the buy button's overlay on the creator's site, where our cookies are not sent
@require_http_methods(["GET", "POST"])
def buy(request, product_id):
    # Only listed products have a payment link: posts and tips are paid on their own pages, which
    # check what this form cannot (a tip jar's maximum, an unlock already made).
    product = Product.objects.select_related("store").filter(
        pk=product_id, status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).first()
    if product is None:
        raise Http404
    frame_ancestors_allow(request, product.store.embed_origin_list)  # the buy button's overlay
    locale = getattr(request, "LANGUAGE_CODE", "en") or "en"
    code = remembered_code(request, product.store)
    form = BuyForm(request.POST or None, product=product, locale=locale, initial={"discount_code": code})
    # A commission is bought with its brief: what to make, and reference files.
    service = product.kind == ProductKind.SERVICE
    brief_form = BriefForm(request.POST or None, request.FILES or None) if service else None
    context = {"product": product, "store": product.store, "form": form, "brief_form": brief_form,
               "slots_left": slots_left(service_offer_for(product=product)) if service else None}
    if request.method == "POST" and form.is_valid() and (brief_form is None or brief_form.is_valid()):
        try:
            limits_hit(("checkout_address", client_address(request)), what="checkouts")
            if form.cleaned_data.get("discount_code"):
                # Codes are short enough to guess: tries are counted on their own, tighter limit.
                limits_hit(("discount_code_address", client_address(request)), what="code attempts")
            with transaction.atomic():  # a full commission offer leaves no checkout behind
                checkout = checkout_create(
                    store=product.store,
                    email=form.cleaned_data["email"],
                    items=[CheckoutItem(product_id=product.pk, amount=form.cleaned_data.get("amount"))],
                    email_consent=form.cleaned_data.get("email_consent", False),
                    discount_code=form.cleaned_data.get("discount_code", ""),
                    buyer=buyer_from_request(request),
                )
                if brief_form is not None:
                    commission_reserve(checkout=checkout, brief=brief_form.cleaned_data["brief"],
                                       files=brief_form.cleaned_data["brief_files"])
            if checkout.amount_total == 0:
                checkout_confirm(checkout_id=checkout.pk)
                return redirect("checkout:complete", checkout_id=checkout.pk)
            return redirect("checkout:pay", checkout_id=checkout.pk)
        except RateLimited as exc:
            form_add_stall_error(form, exc)
            response = render(request, "checkout/buy.html", context, status=exc.status)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except StallError as exc:
            target = brief_form if brief_form is not None and exc.param in ("brief", "files") else form
            if exc.param == "files":
                exc.param = "brief_files"
            form_add_stall_error(target, exc)
    errors = form.errors or (brief_form is not None and brief_form.errors)
    return render(request, "checkout/buy.html", context, status=400 if errors else 200)


def complete(request, checkout_id):
    try:
        checkout = checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None
    frame_ancestors_allow(request, checkout.store.embed_origin_list)
    if checkout.status != CheckoutStatus.COMPLETE:
        return redirect("checkout:pay", checkout_id=checkout.pk)
    order = Order.objects.get(checkout=checkout)
    by_line, by_product = {}, {}
    for e in order.entitlements.select_related("product").prefetch_related("product__files"):
        by_line.setdefault(e.line_id, []).append(e)
        by_product.setdefault(e.product_id, e)

    def files_of(entitlement):
        if entitlement is None or not entitlement.active:
            return []
        return [(f, download_url(entitlement=entitlement, file=f)) for f in entitlement.product.files.all()]

    items = []  # (line, product, entitlement or None, [(file, url)])
    for line in order.lines.select_related("product").prefetch_related("product__files"):
        if line.product.kind == ProductKind.BUNDLE:
            # Each part of a bundle is delivered as its own item, with its own files.
            for part_entitlement in by_line.get(line.pk, []):
                part = part_entitlement.product
                items.append((SimpleNamespace(name=f"{line.name}: {part.name}"), part, part_entitlement, files_of(part_entitlement)))
            continue
        entitlement = next(iter(by_line.get(line.pk, [])), None) or by_product.get(line.product_id)
        items.append((line, line.product, entitlement, files_of(entitlement)))
    receipt_sent = order.payment is None or order.payment.rail not in ("wallet", "tab")
    context = {"checkout": checkout, "order": order, "store": checkout.store, "items": items, "receipt_sent": receipt_sent,
               "membership": subscription_for_order(order=order), "commission": commission_for_order(order=order)}
    return render(request, "checkout/complete.html", context)
