"""Backer pages: the public campaign page (works without JavaScript: the form posts; a script only
refreshes the progress bar), a pledge's page (change, cancel, or pay another way after a failed
charge) and "Your pledges" (reached from the library). Thin views: parse, call one service, render.

A card pledge on a store with Stripe goes through Stripe's card form: the pledge service starts a
SetupIntent and answers PaymentMethodNeedsAction; the pledge waits in the session, keyed by the
SetupIntent, while the card page runs Stripe.js (the card typed and confirmed, the bank's check
passed if it asks for one); Stripe sends the buyer back to the return page, which makes the pledge
with the finished SetupIntent as its card.

A pledge whose card failed at the deadline is paid another way on the checkout's hosted payment
page (a checkout for the pledge's amount), so the backer has every rail a buyer of the store has.

A pledge is the signed-in buyer's: another email's pledge is "not found" (404), never "forbidden".
"""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import amount_for_input, format_money
from stall.payments.errors import PaymentMethodNeedsAction
from stall.payments.rails import rail_get, sandbox_enabled
from stall.payments.selectors import stripe_config_for_store, stripe_csp

from . import services
from .collect import recovery_checkout_open
from .forms import PledgeChangeForm, PledgeForm
from .models import Campaign, CampaignStatus, PledgeStatus, RewardTier
from .selectors import (
    campaign_totals,
    days_left,
    pledge_of_setup,
    pledges_for_email,
    pledges_public,
    time_left,
)


def _cards(store) -> list[tuple[str, str]]:
    """The cards the pledge form offers: the test cards where the sandbox is on, and "Card"
    (typed into Stripe's form) where the store takes cards through Stripe."""
    cards = list(rail_get("sandbox").payment_methods()) if sandbox_enabled(store_id=store.pk) else []
    if stripe_config_for_store(store) is not None:
        cards.append(("stripe", gettext("Card")))
    return cards


_CARD_PLEDGES = "campaigns_card_pledges"  # session: SetupIntent id -> the pledge waiting for its card


def _card_step(request, campaign, exc: PaymentMethodNeedsAction, pledge: dict):
    """Keep the pledge until Stripe's card form (or the bank's check) is done; go to that page."""
    kept = request.session.get(_CARD_PLEDGES, {})
    kept[exc.reference] = {**pledge, "campaign": campaign.pk, "secret": exc.client_secret, "form": exc.card_form}
    request.session[_CARD_PLEDGES] = kept
    return redirect("campaigns:card", campaign_id=campaign.pk, setup_id=exc.reference)


def _card_pledge(request, campaign_id, setup_id):
    """The signed-in buyer's pledge waiting for this SetupIntent: (buyer, campaign, kept), or a
    response (sign in; the pledge this SetupIntent made already). Anything else is not found."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return None, None, None, redirect(sign_in_url(request.get_full_path()))
    kept = request.session.get(_CARD_PLEDGES, {}).get(setup_id)
    if kept is None or kept["campaign"] != campaign_id:
        # Done with already (the return page reloaded, or hit twice at once): its pledge, if any.
        made = pledge_of_setup(campaign_id=campaign_id, setup_ref=setup_id, email=buyer.email)
        if made is not None:
            return None, None, None, redirect("campaigns:pledge", pledge_id=made.pk)
        raise Http404
    return buyer, _campaign_public(campaign_id), kept, None


def _campaign_public(campaign_id: str) -> Campaign:
    campaign = Campaign.objects.select_related("store").filter(pk=campaign_id).exclude(
        status=CampaignStatus.DRAFT).first()
    if campaign is None:
        raise Http404
    return campaign


def _tier(campaign, tier_id):
    if not tier_id:
        return None
    tier = RewardTier.objects.filter(campaign=campaign, pk=tier_id).first()
    if tier is None:
        raise services.RewardTierNotFound(param="tier")
    return tier


def _progress(campaign) -> dict:
    totals = campaign_totals(campaign=campaign)
    ended = campaign.status != CampaignStatus.LIVE
    shown = totals.collected if ended and campaign.status == CampaignStatus.SUCCEEDED else totals.raised
    return {
        "totals": totals, "shown": format_money(shown, campaign.currency),
        "goal": format_money(campaign.goal, campaign.currency),
        "percent": int(shown * 100 // campaign.goal), "bar": min(100, int(shown * 100 // campaign.goal)),
        "days_left": days_left(campaign), "time_left": time_left(campaign), "ended": ended,
    }


@require_http_methods(["GET", "POST"])
def campaign_page(request, campaign_id):
    campaign = _campaign_public(campaign_id)
    store = campaign.store
    buyer = buyer_from_request(request)
    cards = _cards(store)
    form = PledgeForm(request.POST or None, currency=campaign.currency, cards=cards,
                      initial={"tier": request.GET.get("tier", "")})
    error = None
    if request.method == "POST":
        if buyer is None:
            return redirect(sign_in_url(request.get_full_path()))
        if form.is_valid():
            data = form.cleaned_data
            try:
                pledge = services.pledge_create(
                    campaign=campaign, buyer=buyer, amount=data["amount"], method=data["method"],
                    tier=_tier(campaign, data["tier"]), payment_method=data["payment_method"] or "",
                    message=data["message"],
                )
            except PaymentMethodNeedsAction as exc:
                return _card_step(request, campaign, exc, {"amount": data["amount"], "tier": data["tier"] or "",
                                                           "message": data["message"]})
            except StallError as exc:
                form_add_stall_error(form, exc)
                error = exc
            else:
                messages.success(request, gettext("Thank you: your pledge is in."))
                return redirect("campaigns:pledge", pledge_id=pledge.pk)
    tiers = list(campaign.tiers.select_related("product"))
    context = {
        "campaign": campaign, "store": store, "buyer": buyer, "form": form, "tiers": tiers, "cards": cards,
        "progress": _progress(campaign), "backers": pledges_public(campaign=campaign),
        "open": campaign.status == CampaignStatus.LIVE and not _past(campaign),
        "sign_in_url": sign_in_url(request.get_full_path()),
        "tier_amounts": {t.pk: amount_for_input(t.min_amount, campaign.currency) for t in tiers},
        "updates": campaign.updates.filter(tier__isnull=True)[:10],
    }
    status = error.status if error else 400 if form.errors else 200
    return render(request, "campaigns/campaign.html", context, status=status)


@require_GET
def card_page(request, campaign_id, setup_id):
    """Stripe's card form for a card pledge (or only the bank's check, once the card is in)."""
    buyer, campaign, kept, response = _card_pledge(request, campaign_id, setup_id)
    if response is not None:
        return response
    config = stripe_config_for_store(campaign.store)
    if config is None:
        raise Http404
    context = {
        "campaign": campaign, "store": campaign.store, "amount": kept["amount"], "client_secret": kept["secret"],
        "publishable_key": config.publishable_key, "stripe_js_url": settings.STRIPE_JS_URL,
        "mode": "setup" if kept["form"] else "next_action",
        "return_url": request.build_absolute_uri(reverse("campaigns:card_return", args=[campaign.pk, setup_id])),
        "back": reverse("campaigns:campaign", args=[campaign.pk]),
    }
    request.csp_extra = stripe_csp(config)
    return render(request, "campaigns/card.html", context)


@require_GET
def card_return(request, campaign_id, setup_id):
    """Stripe sends the buyer back here: make the pledge with the SetupIntent as its card (the
    service asks Stripe whether it is finished), or back to the card page if it is not yet."""
    buyer, campaign, kept, response = _card_pledge(request, campaign_id, setup_id)
    if response is not None:
        return response
    try:
        pledge = services.pledge_create(
            campaign=campaign, buyer=buyer, amount=kept["amount"], method="card", tier=_tier(campaign, kept["tier"]),
            payment_method=setup_id, message=kept["message"],
        )
    except PaymentMethodNeedsAction as exc:
        return _card_step(request, campaign, exc, {k: kept[k] for k in ("amount", "tier", "message")})
    except StallError as exc:
        pledge = None
        messages.error(request, gettext(str(exc.message)))
    waiting = request.session.get(_CARD_PLEDGES, {})
    waiting.pop(setup_id, None)  # done with: a reload finds nothing to pledge twice
    request.session[_CARD_PLEDGES] = waiting
    if pledge is None:
        return redirect("campaigns:campaign", campaign_id=campaign.pk)
    messages.success(request, gettext("Thank you: your pledge is in."))
    return redirect("campaigns:pledge", pledge_id=pledge.pk)


def _past(campaign) -> bool:
    return timezone.now() >= campaign.deadline


def campaign_progress(request, campaign_id):
    """The progress bar's figures, for the page's script (the page shows them without it)."""
    campaign = _campaign_public(campaign_id)
    p = _progress(campaign)
    return JsonResponse({"shown": p["shown"], "goal": p["goal"], "percent": p["percent"], "bar": p["bar"],
                         "backers": p["totals"].backers, "time_left": p["time_left"]})


def _my_pledge(request, pledge_id):
    buyer = buyer_from_request(request)
    if buyer is None:
        return None, redirect(sign_in_url(request.get_full_path()))
    try:
        return services.pledge_get(pledge_id=pledge_id, email=buyer.email), None
    except NotFound:
        raise Http404 from None


@require_http_methods(["GET", "POST"])
def pledge_page(request, pledge_id):
    pledge, response = _my_pledge(request, pledge_id)
    if response is not None:
        return response
    campaign = pledge.campaign
    change = PledgeChangeForm(None, currency=campaign.currency, initial={
        "amount": amount_for_input(pledge.amount, pledge.currency), "tier": pledge.tier_id or "",
        "message": pledge.message})
    error = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "cancel":
                services.pledge_cancel(pledge=pledge)
                messages.success(request, gettext("Your pledge is canceled. Nothing was charged."))
                return redirect("campaigns:pledge", pledge_id=pledge.pk)
            if action == "change":
                change = PledgeChangeForm(request.POST, currency=campaign.currency)
                if change.is_valid():
                    data = change.cleaned_data
                    services.pledge_change(pledge=pledge, amount=data["amount"], tier=_tier(campaign, data["tier"]),
                                           message=data["message"])
                    messages.success(request, gettext("Your pledge is changed."))
                    return redirect("campaigns:pledge", pledge_id=pledge.pk)
            elif action == "pay":
                # A failed card, paid another way: the hosted payment page, with every rail the
                # store takes (its card form, Lightning) and the buyer's wallet and tab.
                checkout = recovery_checkout_open(pledge=pledge)
                return redirect("checkout:pay", checkout_id=checkout.pk)
        except StallError as exc:
            error = exc
            if action == "change":
                form_add_stall_error(change, exc)
    pledge.refresh_from_db()
    context = {
        "pledge": pledge, "campaign": campaign, "store": campaign.store, "change": change,
        "error": error, "tiers": list(campaign.tiers.all()),
        "changeable": pledge.status in (PledgeStatus.HELD, PledgeStatus.SAVED) and campaign.status == CampaignStatus.LIVE
        and not _past(campaign),
        "payable": pledge.status == PledgeStatus.FAILED, "amount": format_money(pledge.amount, pledge.currency),
    }
    status = error.status if error else 400 if change.errors else 200
    return render(request, "campaigns/pledge.html", context, status=status)


def pledges_mine(request):
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(reverse("campaigns:mine")))
    pledges = list(pledges_for_email(email=buyer.email)[:200])
    return render(request, "campaigns/mine.html", {"pledges": pledges, "buyer": buyer})
