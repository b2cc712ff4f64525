"""The buyer's gift card pages: buying one for someone, and redeeming a code into the wallet.

Views parse, call one service, and render or redirect; the services are in ``gift_cards``.
"""

from datetime import UTC, datetime, time
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.catalog.models import Product, ProductKind, ProductStatus
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address, limits_hit
from stall.core.money import format_money
from stall.stores.selectors import store_get_public

from . import gift_cards
from .forms import GiftCardBuyForm, GiftCardRedeemForm

# A send date is a day; the email goes out that morning (UTC).
SEND_HOUR = time(9, 0)


def _store(slug):
    try:
        return store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


def _limited(response, exc: RateLimited):
    response.status_code = exc.status
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@require_http_methods(["GET", "POST"])
def gift_card_buy(request, slug, product_slug):
    store = _store(slug)
    product = Product.objects.filter(
        store=store, slug=product_slug, kind=ProductKind.GIFT_CARD, status=ProductStatus.PUBLISHED
    ).first()
    if product is None:
        raise Http404
    form = GiftCardBuyForm(request.POST or None, product=product, locale=_locale(request))
    context = {"store": store, "product": product, "form": form}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        send_at = datetime.combine(data["send_on"], SEND_HOUR, tzinfo=UTC) if data.get("send_on") else None
        try:
            limits_hit(("checkout_address", client_address(request)), what="checkouts")
            with transaction.atomic():
                checkout = checkout_create(
                    store=store, email=data["email"], items=[CheckoutItem(product_id=product.pk, amount=data.get("amount"))],
                )
                gift_cards.gift_card_purchase_note(
                    checkout=checkout, recipient_email=data["recipient_email"], recipient_name=data["recipient_name"],
                    sender_name=data["sender_name"], message=data["message"], send_at=send_at,
                )
            return redirect("checkout:pay", checkout_id=checkout.pk)
        except RateLimited as exc:
            form_add_stall_error(form, exc)
            return _limited(render(request, "wallets/gift_card_buy.html", context), exc)
        except StallError as exc:
            form_add_stall_error(form, exc)
    return render(request, "wallets/gift_card_buy.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def gift_card_redeem(request, slug):
    store = _store(slug)
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    form = GiftCardRedeemForm(request.POST or None)
    context = {"store": store, "form": form, "buyer": buyer}
    if request.method == "POST" and form.is_valid():
        try:
            card = gift_cards.gift_card_redeem(
                store=store, buyer=buyer, code=form.cleaned_data["code"], address=client_address(request)
            )
        except RateLimited as exc:
            form_add_stall_error(form, exc)
            return _limited(render(request, "wallets/gift_card_redeem.html", context), exc)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            amount = format_money(card.initial_amount, card.currency, _locale(request))
            messages.success(request, _("%(amount)s from your gift card is in your wallet.") % {"amount": amount})
            query = urlencode({"currency": card.currency, "store": store.slug})
            return redirect(f"{reverse('wallets:wallet')}?{query}")
    return render(request, "wallets/gift_card_redeem.html", context, status=400 if form.errors else 200)
