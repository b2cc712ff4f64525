"""Reader pages: posts and their paywall, unlocks and refunds, the tip jar. Thin views: parse a
form, call one service, render. Works without JavaScript."""

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from stall.accounts.services import buyer_from_request, magic_link_request_allowed
from stall.core.csrf import csrf_by_origin
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address, limits_hit
from stall.core.markdown import render_markdown
from stall.core.middleware import frame_ancestors_allow
from stall.core.money import format_money
from stall.stores.selectors import store_get_public

from .errors import ConfirmRequired
from .forms import RefundRequestForm, SignInForm, TipForm, UnlockForm
from .selectors import (
    post_gated,
    post_get_for_reader,
    post_is_creator,
    post_member_access,
    post_offers,
    post_split_for,
    post_unlock_by_checkouts,
    post_unlock_get,
    posts_gated_marked,
    posts_public,
    tip_jar_panel,
    unlock_refund_offer,
    wallet_balance_for,
)
from .services import card_minimum, post_unlock, tip_send, unlock_refund_request
from .tasks import reader_sign_in_link_send

# Where a reader tops up and settles; the wallets app serves these pages.
WALLET_PATH = "/wallet/"
TAB_PATH = "/wallet/tab/"
WALLET_ERRORS = {"insufficient_funds"}
# Checkouts this browser opened to unlock a post by card while signed out: once paid, the post
# reads here without signing in.
CARD_CHECKOUTS_KEY = "content_card_checkouts"
TAB_ERRORS = {"tab_limit_reached", "tab_overdue"}


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


def _store(slug):
    try:
        return store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None


def _post(request, store, post_slug):
    buyer = buyer_from_request(request)
    try:
        return post_get_for_reader(store=store, slug=post_slug, email=buyer.email if buyer else "", user=request.user)
    except NotFound:
        raise Http404 from None


def _safe_next(request, value: str | None, default: str) -> str:
    if value and value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}):
        return value
    return default


def posts(request, slug):
    store = _store(slug)
    posts = posts_gated_marked(list(posts_public(store=store)[:50]))
    items = [(post, render_markdown(post_split_for(post).preview)) for post in posts]
    return render(request, "content/posts.html", {"store": store, "items": items})


def _post_page(request, store, post, *, error=None, unlock_form=None, refund_form=None, status=200):
    frame_ancestors_allow(request, store.embed_origin_list)  # the post's button on the creator's site
    buyer = buyer_from_request(request)
    split = post_split_for(post)
    unlock = post_unlock_get(post=post, email=buyer.email if buyer else "")
    if unlock is None and buyer is None:
        unlock = post_unlock_by_checkouts(post=post, checkout_ids=request.session.get(CARD_CHECKOUTS_KEY))
    creator = post_is_creator(post=post, user=request.user)
    gated = post.gated = post_gated(post=post)
    member = gated and buyer is not None and post_member_access(post=post, email=buyer.email)
    readable = (post.is_free and not gated) or creator or unlock is not None or member
    balance = wallet_balance_for(buyer=buyer, currency=post.currency)
    minimum = card_minimum(post.currency)
    context = {
        "store": store, "post": post, "buyer": buyer, "creator": creator, "readable": readable, "unlock": unlock,
        "gated": gated, "member": member, "members_only": gated and post.is_free,
        "offers": post_offers(post=post, email=buyer.email if buyer else "") if gated and not readable else [],
        "preview_html": render_markdown(split.preview),
        "body_html": render_markdown(split.full) if readable else None,
        "has_more": bool(split.rest),
        "wallet_balance": balance,
        # One click: the wallet when it holds enough, else the tab (the button says which).
        "one_click": "wallet" if balance >= post.amount else "tab",
        "card_allowed": post.amount >= minimum, "card_minimum": minimum,
        "refund": unlock_refund_offer(post=post, buyer=buyer, entitlement=unlock) if buyer and unlock and not post.is_free else None,
        "refund_form": refund_form or RefundRequestForm(),
        "unlock_form": unlock_form or UnlockForm(),
        "sign_in_form": SignInForm(initial={"next": request.path}),
        "error": error,
        "error_link": _error_link(error),
        "tip_jar": tip_jar_panel(store=store, buyer=buyer),
        "here": request.path,
    }
    return render(request, "content/post.html", context, status=status)


def _error_link(error) -> tuple[str, str] | None:
    code = getattr(error, "code", None)
    if code in WALLET_ERRORS:
        return WALLET_PATH, _("Top up your wallet")
    if code in TAB_ERRORS:
        return TAB_PATH, _("Settle your tab")
    return None


def post_detail(request, slug, post_slug):
    store = _store(slug)
    post = _post(request, store, post_slug)
    # Counted by stall.insights' page-view middleware (no import: it reads the request).
    request.page_view = (store.pk, "post", post.product_id)
    return _post_page(request, store, post)


def _confirm_page(request, store, *, action: str, amount: int, currency: str, fields: dict, what: str, back: str):
    frame_ancestors_allow(request, store.embed_origin_list)
    buyer = buyer_from_request(request)
    context = {
        "store": store, "action": action, "amount": amount, "currency": currency, "fields": fields, "what": what,
        "back": back, "wallet_balance": wallet_balance_for(buyer=buyer, currency=currency),
    }
    return render(request, "content/confirm.html", context)


def _store_post(request, slug, post_slug):
    """The store and the post in one query, for the one-click unlock."""
    buyer = buyer_from_request(request)
    try:
        post = post_get_for_reader(store_slug=slug, slug=post_slug, email=buyer.email if buyer else "", user=request.user)
    except NotFound:
        raise Http404 from None
    return post.store, post


def _one_click_fields(data) -> dict | None:
    """The one-click button's fields read without the form, when they are what the button sends
    (a method from the wallet or the tab, no email, the confirm page's ``confirm=on`` or nothing):
    building and cleaning a Django form was about a fourteenth of an unlock's time. Anything else
    goes through UnlockForm, which says what to fix."""
    method, confirm = data.get("method"), data.get("confirm", "")
    if method in ("wallet", "tab") and not data.get("email") and confirm in ("", "on"):
        return {"method": method, "email": "", "confirm": confirm == "on"}
    return None


@require_POST
def post_unlock_view(request, slug, post_slug):
    store, post = _store_post(request, slug, post_slug)
    data = _one_click_fields(request.POST)
    form = None
    if data is None:
        form = UnlockForm(request.POST)
        if not form.is_valid():
            error = StallError(next(iter(form.errors.values()))[0], param="method")
            return _post_page(request, store, post, error=error, unlock_form=form, status=400)
        data = form.cleaned_data
    buyer = buyer_from_request(request)
    try:
        if data["method"] == "card":  # a card unlock makes a checkout: counted as the buy page's are
            limits_hit(("checkout_address", client_address(request)), what="checkouts")
        result = post_unlock(post=post, method=data["method"], buyer=buyer, email=data["email"] or "", confirmed=data["confirm"])
    except ConfirmRequired:
        return _confirm_page(
            request, store, action=request.path, amount=post.amount, currency=post.currency,
            fields={"method": data["method"]}, what=_("Unlock “%(title)s”") % {"title": post.title}, back=reverse("content:post", args=[store.slug, post.slug]),
        )
    except StallError as exc:
        if form is None:
            form = UnlockForm(request.POST)
            form.is_valid()
        form_add_stall_error(form, exc)
        response = _post_page(request, store, post, error=exc, unlock_form=form, status=exc.status)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if result.checkout is not None:
        if buyer is None:
            request.session[CARD_CHECKOUTS_KEY] = [*request.session.get(CARD_CHECKOUTS_KEY, [])[-19:], result.checkout.pk]
        return redirect("checkout:pay", checkout_id=result.checkout.pk)
    if result.member:
        messages.info(request, _("You read this as a member; nothing was charged."))
    elif result.already:
        messages.info(request, _("You have already unlocked this post; nothing was charged."))
    else:
        paid = format_money(result.order.amount_total, result.order.currency, _locale(request))
        if data["method"] == "wallet":
            messages.success(request, _("Unlocked for %(amount)s from your wallet. Enjoy the read.") % {"amount": paid})
        else:
            messages.success(request, _("Unlocked for %(amount)s from your tab. Enjoy the read.") % {"amount": paid})
    # A plain redirect to the URL: redirect() would first try the string as a view name.
    return HttpResponseRedirect(reverse("content:post", args=[store.slug, post.slug]) + "#post-body")


@require_POST
def post_refund_view(request, slug, post_slug):
    store = _store(slug)
    post = _post(request, store, post_slug)
    buyer = buyer_from_request(request)
    if buyer is None:
        messages.error(request, _("Sign in to ask for a refund."))
        return redirect("content:post", slug=store.slug, post_slug=post.slug)
    form = RefundRequestForm(request.POST)
    form.is_valid()
    try:
        refund = unlock_refund_request(post=post, buyer=buyer, reason=form.cleaned_data.get("reason", ""))
    except StallError as exc:
        form_add_stall_error(form, exc)
        return _post_page(request, store, post, refund_form=form, status=exc.status)
    amount = format_money(refund.amount, refund.currency, _locale(request))
    done = {
        "wallet": _("%(amount)s is back in your wallet. The post is locked again."),
        "tab": _("%(amount)s is taken off your tab. The post is locked again."),
    }.get(refund.payment.rail, _("%(amount)s is refunded to your card. The post is locked again."))
    messages.success(request, done % {"amount": amount})
    return redirect("content:post", slug=store.slug, post_slug=post.slug)


@require_POST
def reader_sign_in(request, slug):
    """Email a magic link that signs the reader in and brings them back to ``next``."""
    store = _store(slug)
    form = SignInForm(request.POST)
    back = _safe_next(request, request.POST.get("next"), reverse("stores:store", args=[store.slug]))
    if not form.is_valid():
        messages.error(request, _("Enter a valid email address to get a sign-in link."))
        return redirect(back)
    email = form.cleaned_data["email"].lower()
    if magic_link_request_allowed(email=email, address=client_address(request)):
        reader_sign_in_link_send(email, back, store.name, language=get_language())
    # The same answer for every address, and past the limit: the page does not tell who has an
    # account here.
    messages.success(request, _("A sign-in link is on its way to %(email)s. Open it on this device.") % {"email": form.cleaned_data["email"]})
    return redirect(back)


@csrf_by_origin  # the tip button's overlay on the creator's site: see stall.core.csrf
@require_http_methods(["GET", "POST"])
def tip(request, slug):
    store = _store(slug)
    frame_ancestors_allow(request, store.embed_origin_list)  # the tip button on the creator's site
    buyer = buyer_from_request(request)
    panel = tip_jar_panel(store=store, buyer=buyer)
    if panel is None:
        raise Http404
    store_url = reverse("stores:store", args=[store.slug])
    form = TipForm(request.POST or None, currency=store.currency, locale=_locale(request),
                   initial={"next": request.GET.get("next", "")})
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        back = _safe_next(request, data.get("next"), store_url)
        try:
            if data["method"] == "card":  # a card tip makes a checkout: counted as the buy page's are
                limits_hit(("checkout_address", client_address(request)), what="checkouts")
            sent = tip_send(
                store=store, amount=data["tip_amount"], method=data["method"], buyer=buyer, email=data.get("email") or "",
                name=data["name"], message=data["message"], public=data["public"], confirmed=data["confirm"],
                jar=panel.jar,
            )
        except ConfirmRequired:
            fields = {k: v for k, v in request.POST.items() if k in ("preset", "amount", "message", "name", "method", "next")}
            if data["public"]:
                fields["public"] = "on"
            return _confirm_page(
                request, store, action=request.path, amount=data["tip_amount"], currency=store.currency, fields=fields,
                what=_("Tip %(store)s") % {"store": store.name}, back=back,
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
            error = exc
        else:
            if sent.checkout is not None:
                return redirect("checkout:pay", checkout_id=sent.checkout.pk)
            amount = format_money(sent.tip.amount, sent.tip.currency, _locale(request))
            messages.success(request, _("Thank you for the %(amount)s tip!") % {"amount": amount})
            return redirect(back + ("#tip-jar" if "#" not in back else ""))
    context = {
        "store": store, "tip_jar": panel, "tip_form": form, "error": error, "error_link": _error_link(error),
        "next": _safe_next(request, request.POST.get("next") or request.GET.get("next"), store_url),
    }
    response = render(request, "content/tip.html", context, status=error.status if error else 400 if form.errors else 200)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response
