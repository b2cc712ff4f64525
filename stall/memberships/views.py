"""Member pages: a tier's join page, the welcome after joining, and "Your memberships" (reached
from the library) where a member manages each membership. Thin views: parse a form, call one
service, render or redirect. Work without JavaScript.

A member is whoever the buyer's magic-link session says: a membership of another email is "not
found" (404), never "forbidden".
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.core.dates import date_format
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import format_money
from stall.payments.rails import rail_get, sandbox_enabled
from stall.payments.selectors import stripe_config_for_store
from stall.stores.selectors import store_get_public

from . import services
from .forms import ChangeForm, JoinForm, PauseForm, PayWithForm
from .models import LIVE_STATUSES, Interval, Subscription, SubscriptionStatus
from .selectors import (
    price_label,
    subscription_live_for,
    subscriptions_for_email,
    tier_change_options,
    tier_closed_reason,
    tier_get,
    tier_prices_label,
)

# Memberships this browser joined while signed out (a free tier by email): their welcome page
# shows without signing in.
JOINED_KEY = "memberships_joined"
# A card trial waiting for its card on Stripe's form: the tier, email, interval and next page.
JOIN_CARD_KEY = "memberships_join_card"
WALLET_ERRORS = {"insufficient_funds"}


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


def _safe_next(request, value: str | None) -> str:
    if value and value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}):
        return value
    return ""


def _store_tier(slug, tier_id):
    try:
        store = store_get_public(slug=slug)
        return store, tier_get(store=store, tier_id=tier_id)
    except NotFound:
        raise Http404 from None


def _cards(store) -> list[tuple[str, str]]:
    """The test cards a member may keep for renewals where the sandbox is on; none elsewhere."""
    return rail_get("sandbox").payment_methods() if sandbox_enabled(store_id=store.pk) else []


def _stripe_cards(store) -> bool:
    """Whether the store takes Stripe cards: a member may then keep one, entered on Stripe's form."""
    return stripe_config_for_store(store) is not None


def _wallet_url(currency: str, store, next_path: str) -> str:
    return f"{reverse('wallets:wallet')}?{urlencode({'currency': currency, 'store': store.slug, 'next': next_path})}"


def _prices(tier, locale):
    order = list(Interval.values)
    return [(p, price_label(p, locale)) for p in sorted(tier.prices.all(), key=lambda p: order.index(p.interval))
            if p.product.status != "archived"]


@require_http_methods(["GET", "POST"])
def join(request, slug, tier_id):
    """A tier's page: what it gives, its prices, and how to join (wallet, card, trial, free)."""
    store, tier = _store_tier(slug, tier_id)
    buyer = buyer_from_request(request)
    cards = _cards(store) if tier.trial_days else []
    form = JoinForm(request.POST or None, cards=cards, signed_in=buyer is not None,
                    initial={"next": _safe_next(request, request.GET.get("next"))})
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if (tier.trial_days and data["method"] == "card" and not data["payment_method"] and _stripe_cards(store)
                and tier_closed_reason(tier=tier) == ""):
            # The card for after the trial is entered on Stripe's form (join_card).
            request.session[JOIN_CARD_KEY] = {
                "tier": tier.pk, "email": buyer.email if buyer else data["email"], "interval": data["interval"] or "",
                "next": data["next"] or "",
            }
            return redirect("memberships:join_card", slug=store.slug, tier_id=tier.pk)
        try:
            joined = services.subscription_join(
                tier=tier, method=data["method"], interval=data["interval"] or None, buyer=buyer,
                email=data["email"] or "", payment_method=data["payment_method"] or "",
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
            error = exc
        else:
            if joined.checkout is not None:
                return redirect("checkout:pay", checkout_id=joined.checkout.pk)
            sub = joined.subscription
            request.session[JOINED_KEY] = [*request.session.get(JOINED_KEY, [])[-9:], sub.pk]
            url = reverse("memberships:welcome", args=[sub.pk])
            back = _safe_next(request, data["next"])
            return redirect(f"{url}?{urlencode({'next': back})}" if back else url)
    locale = _locale(request)
    prices = _prices(tier, locale)
    here = request.get_full_path()
    shown_by_field = ("email", "payment_method", *(("interval",) if len(prices) > 1 else ()))
    alert = error.message if error and error.param not in shown_by_field else " ".join(form.non_field_errors())
    context = {
        "alert": alert,
        "store": store, "tier": tier, "buyer": buyer, "form": form, "error": error, "prices": prices,
        "prices_label": tier_prices_label(tier, locale), "closed": tier_closed_reason(tier=tier),
        "membership": subscription_live_for(store_id=store.pk, email=buyer.email) if buyer else None,
        "one_price": prices[0][0] if len(prices) == 1 else None, "cards": cards,
        "stripe_cards": bool(tier.trial_days) and _stripe_cards(store),
        "wallet_url": _wallet_url(store.currency, store, here) if error and error.code in WALLET_ERRORS else "",
        "sign_in_url": sign_in_url(here), "here": here,
    }
    status = error.status if error else 400 if form.errors else 200
    return render(request, "memberships/join.html", context, status=status)


def welcome(request, subscription_id):
    """After joining: what the member has now, and where to manage it."""
    buyer = buyer_from_request(request)
    sub = Subscription.objects.select_related("tier", "store", "price").filter(pk=subscription_id).first()
    mine = sub is not None and (
        (buyer is not None and buyer.email.lower() == sub.email) or sub.pk in request.session.get(JOINED_KEY, [])
    )
    if not mine:
        raise Http404
    context = {
        "store": sub.store, "sub": sub, "buyer": buyer, "next": _safe_next(request, request.GET.get("next")),
        "renewal": _renewal(sub, _locale(request)),
    }
    return render(request, "memberships/welcome.html", context)


def _renewal(sub, locale) -> str:
    """"$3.00 on Mar 31, 2026", or what happens instead at the period's end (in the reader's language)."""
    end = sub.current_period_end
    if sub.status == SubscriptionStatus.ENDED:
        return ""
    if end is None:
        return _("Free, with no end")
    when = date_format(end)
    if sub.cancel_at_period_end:
        return _("Ends on %(date)s") % {"date": when}
    if sub.pay_with == "none":
        return _("Ends on %(date)s unless you choose how to pay") % {"date": when}
    price = sub.pending_price or sub.price
    if sub.pause_periods:
        return ngettext("Paused from %(date)s for %(count)s period", "Paused from %(date)s for %(count)s periods",
                        sub.pause_periods) % {"date": when, "count": sub.pause_periods}
    return _("%(amount)s on %(date)s") % {"amount": format_money(price.amount, price.currency, locale), "date": when}


def _options(sub, locale) -> list[dict]:
    """Each price the member may move to, as an upgrade now (with its prorated amount) or a
    change at the next renewal."""
    if sub.price is None or sub.status not in LIVE_STATUSES:
        return []
    options = []
    for price in tier_change_options(subscription=sub):
        now = (price.interval == sub.price.interval and price.amount > sub.price.amount
               and sub.status == SubscriptionStatus.ACTIVE)
        due = services.upgrade_amount(sub=sub, price=price) if now else 0
        options.append({
            "price": price, "label": _("%(tier)s: %(price)s") % {"tier": price.tier.name, "price": price_label(price, locale)}, "now": now,
            "due": format_money(due, price.currency, locale) if now else "",
            "pending": sub.pending_price_id == price.pk,
        })
    return options


def _manage_page(request, buyer, *, errors=None, forms=None, status=200):
    locale = _locale(request)
    rows = []
    for sub in subscriptions_for_email(email=buyer.email):
        cards = _cards(sub.store)
        rows.append({
            "sub": sub, "renewal": _renewal(sub, locale), "options": _options(sub, locale),
            "live": sub.status in LIVE_STATUSES, "error": (errors or {}).get(sub.pk),
            "pay_form": (forms or {}).get(sub.pk) or PayWithForm(cards=cards, auto_id=f"{sub.pk}_%s",
                                                                  initial={"pay_with": sub.pay_with if sub.pay_with != "none" else "wallet",
                                                                           "card_fallback": sub.card_fallback}),
            "pause_form": PauseForm(auto_id=f"{sub.pk}_%s"), "cards": cards, "stripe_cards": _stripe_cards(sub.store),
            "feed_url": request.build_absolute_uri(reverse("content:private_feed", args=[sub.store.slug, sub.feed_token])),
            "price_label": price_label(sub.price, locale) if sub.price else _("Free"),
        })
    context = {"buyer": buyer, "rows": rows}
    return render(request, "memberships/manage.html", context, status=status)


def manage(request):
    """Your memberships: every membership of the signed-in buyer, in every store."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    return _manage_page(request, buyer)


ACTIONS = ("cancel", "undo", "pause", "resume", "change", "change-undo", "pay-with", "feed")


@require_POST
def manage_action(request, subscription_id, action):
    """One change to one of the buyer's memberships; an error shows on that membership's card."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(reverse("memberships:manage")))
    sub = Subscription.objects.select_related("store", "tier").filter(pk=subscription_id, email=buyer.email.lower()).first()
    if sub is None or action not in ACTIONS:
        raise Http404
    form = None
    try:
        done = _act(request, sub, action, buyer)
    except _FormInvalid as invalid:
        form = invalid.form
        error = StallError(next(iter(form.errors.values()))[0])
    except StallError as exc:
        error = exc
        if action == "pay-with":
            form = PayWithForm(request.POST, cards=_cards(sub.store), auto_id=f"{sub.pk}_%s")
            form.is_valid()
            form_add_stall_error(form, exc)
    else:
        messages.success(request, done)
        return redirect(reverse("memberships:manage") + f"#{sub.pk}")
    status = error.status if error.status >= 400 else 400
    return _manage_page(request, buyer, errors={sub.pk: error}, forms={sub.pk: form} if form else None, status=status)


class _FormInvalid(Exception):
    def __init__(self, form):
        self.form = form


def _valid(form):
    if not form.is_valid():
        raise _FormInvalid(form)
    return form.cleaned_data


def _act(request, sub, action, buyer) -> str:
    """Do ``action`` and say what was done."""
    name = sub.tier.name
    if action == "cancel":
        sub = services.subscription_cancel(subscription=sub, at_period_end=True)
        end = sub.current_period_end
        if end:
            return _("Your %(tier)s membership ends on %(date)s.") % {"tier": name, "date": date_format(end)}
        return _("You left %(tier)s.") % {"tier": name}
    if action == "undo":
        services.subscription_cancel_undo(subscription=sub)
        return _("Your %(tier)s membership goes on: it renews as before.") % {"tier": name}
    if action == "pause":
        periods = _valid(PauseForm(request.POST))["periods"]
        services.subscription_pause(subscription=sub, periods=periods)
        return ngettext("Paused for %(count)s period from the end of this one.",
                        "Paused for %(count)s periods from the end of this one.", periods) % {"count": periods}
    if action == "resume":
        was_paused = sub.status == SubscriptionStatus.PAUSED
        sub = services.subscription_resume(subscription=sub, buyer=buyer)
        if was_paused and sub.status == SubscriptionStatus.ACTIVE:
            return _("Resumed: your membership is active again and renews on %(date)s.") % {"date": date_format(sub.current_period_end)}
        return _("Resumed: your membership renews as before.")
    if action == "change":
        return _change(request, sub, buyer)
    if action == "change-undo":
        sub = services.subscription_change_undo(subscription=sub)
        return _("You stay on %(tier)s: it renews at its current price.") % {"tier": sub.tier.name}
    if action == "pay-with":
        data = _valid(PayWithForm(request.POST, cards=_cards(sub.store), auto_id=f"{sub.pk}_%s"))
        services.subscription_pay_with_set(subscription=sub, pay_with=data["pay_with"], buyer=buyer,
                                           payment_method=data["payment_method"], card_fallback=data["card_fallback"])
        return _("Renewals are paid from your wallet.") if data["pay_with"] == "wallet" else _("Renewals are charged to your card.")
    services.subscription_feed_token_rotate(subscription=sub)
    return _("Your private feed has a new address; the old one no longer works.")


def _change(request, sub, buyer) -> str:
    data = _valid(ChangeForm(request.POST))
    try:
        tier = tier_get(store=sub.store, tier_id=data["tier"])
    except NotFound:
        raise StallError(_("No such tier in this store."), param="tier") from None
    before = sub.tier_id
    sub = services.subscription_change(subscription=sub, tier=tier, interval=data["interval"] or None, buyer=buyer)
    if sub.pending_price_id:
        return _("You move to %(tier)s at your next renewal.") % {"tier": tier.name}
    if before != sub.tier_id:
        return _("Upgraded to %(tier)s.") % {"tier": tier.name}
    return _("Changed to %(tier)s.") % {"tier": tier.name}


# --- A Stripe card, entered on Stripe's Payment Element (setup mode) ---------------------------------


def _card_page(request, *, setup, store, return_url: str, back: str, title: str):
    """The page where the reader enters a card on Stripe's form; Stripe sends them to ``return_url``."""
    request.csp_extra = setup.csp
    context = {
        "store": store, "client_secret": setup.client_secret, "publishable_key": setup.publishable_key,
        "stripe_js_url": settings.STRIPE_JS_URL, "return_url": request.build_absolute_uri(return_url), "back": back,
        "title": title,
    }
    return render(request, "memberships/card.html", context)


def _my_subscription(request, subscription_id):
    buyer = buyer_from_request(request)
    if buyer is None:
        return None, redirect(sign_in_url(reverse("memberships:manage")))
    sub = Subscription.objects.select_related("store", "tier").filter(pk=subscription_id, email=buyer.email.lower()).first()
    if sub is None:
        raise Http404
    return (buyer, sub), None


@require_GET
def card(request, subscription_id):
    """A new card for a membership's renewals, entered on Stripe's form."""
    found, away = _my_subscription(request, subscription_id)
    if away:
        return away
    buyer, sub = found
    try:
        setup = services.subscription_card_setup(subscription=sub)
    except StallError as exc:
        return _manage_page(request, buyer, errors={sub.pk: exc}, status=exc.status if exc.status >= 400 else 400)
    return _card_page(request, setup=setup, store=sub.store, return_url=reverse("memberships:card_return", args=[sub.pk]),
                      back=reverse("memberships:manage") + f"#{sub.pk}", title=_("A card for your %(tier)s membership") % {"tier": sub.tier.name})


@require_GET
def card_return(request, subscription_id):
    """Back from Stripe's form: keep the card and charge renewals to it."""
    found, away = _my_subscription(request, subscription_id)
    if away:
        return away
    buyer, sub = found
    try:
        services.subscription_pay_with_set(subscription=sub, pay_with="card", buyer=buyer,
                                           payment_method=request.GET.get("setup_intent", "") or "")
    except StallError as exc:
        return _manage_page(request, buyer, errors={sub.pk: exc}, status=exc.status if exc.status >= 400 else 400)
    messages.success(request, _("Renewals are charged to your card."))
    return redirect(reverse("memberships:manage") + f"#{sub.pk}")


def _join_card_pending(request, store, tier):
    pending = request.session.get(JOIN_CARD_KEY) or {}
    if pending.get("tier") != tier.pk or not pending.get("email"):
        return None
    return pending


@require_GET
def join_card(request, slug, tier_id):
    """The card a trial starts with (charged when it ends), entered on Stripe's form."""
    store, tier = _store_tier(slug, tier_id)
    pending = _join_card_pending(request, store, tier)
    if pending is None:
        return redirect("memberships:join", slug=store.slug, tier_id=tier.pk)
    try:
        setup = services.join_card_setup(tier=tier, email=pending["email"])
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect("memberships:join", slug=store.slug, tier_id=tier.pk)
    return _card_page(request, setup=setup, store=store, return_url=reverse("memberships:join_card_return", args=[store.slug, tier.pk]),
                      back=reverse("memberships:join", args=[store.slug, tier.pk]), title=_("Start your %(tier)s trial with a card") % {"tier": tier.name})


@require_GET
def join_card_return(request, slug, tier_id):
    """Back from Stripe's form: the card is kept and the trial starts."""
    store, tier = _store_tier(slug, tier_id)
    pending = _join_card_pending(request, store, tier)
    if pending is None:
        return redirect("memberships:join", slug=store.slug, tier_id=tier.pk)
    try:
        joined = services.subscription_join(
            tier=tier, method="card", interval=pending["interval"] or None, buyer=buyer_from_request(request),
            email=pending["email"], payment_method=request.GET.get("setup_intent", "") or "",
        )
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect("memberships:join", slug=store.slug, tier_id=tier.pk)
    request.session.pop(JOIN_CARD_KEY, None)
    sub = joined.subscription
    request.session[JOINED_KEY] = [*request.session.get(JOINED_KEY, [])[-9:], sub.pk]
    url = reverse("memberships:welcome", args=[sub.pk])
    back = _safe_next(request, pending.get("next"))
    return redirect(f"{url}?{urlencode({'next': back})}" if back else url)
