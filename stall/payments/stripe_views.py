"""The buyer's Stripe page, the return from Stripe, and Stripe's webhooks."""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.core.errors import NotFound, StallError

from .models import PaymentStatus
from .selectors import StripeConfig, stripe_config_for_store
from .stripe_services import stripe_checkout_page, stripe_checkout_return, stripe_webhook_receive

logger = logging.getLogger(__name__)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_csp(config: StripeConfig) -> dict[str, list[str]]:
    """What the Stripe page adds to our Content-Security-Policy: Stripe.js, its frames, its API.
    Only this page gets it; every other page keeps the policy with no third party at all."""
    js = _origin(settings.STRIPE_JS_URL)
    extra = {"script-src": [js], "frame-src": [js], "connect-src": [js]}
    if js == "https://js.stripe.com":
        # Stripe's published list for Stripe.js and the Payment Element.
        extra["script-src"].append("https://*.js.stripe.com")
        extra["frame-src"] += ["https://*.js.stripe.com", "https://hooks.stripe.com"]
        extra["connect-src"].append("https://api.stripe.com")
    if config.api_base:
        extra["connect-src"].append(_origin(config.api_base))
    return extra


def stripe_pay(request, checkout):
    """The hosted payment page of a store that takes cards through Stripe: the Payment Element."""
    config = stripe_config_for_store(checkout.store)
    expired = checkout.status == CheckoutStatus.EXPIRED or checkout.expires_at <= timezone.now()
    context = {
        "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(), "expired": expired,
        "error": "", "client_secret": "", "processing": False,
    }
    status = 200
    if not expired:
        try:
            page = stripe_checkout_page(checkout_id=checkout.pk)
        except StallError as exc:
            context["error"], status = exc.message, exc.status
        else:
            checkout = context["checkout"] = page.checkout
            if checkout.status == CheckoutStatus.COMPLETE:
                return redirect("checkout:complete", checkout_id=checkout.pk)
            if page.payment is not None and page.payment.rail != "stripe":
                # A sandbox payment started through the API waits for its own 3-D Secure page.
                return redirect("checkout:authenticate", checkout_id=checkout.pk)
            context["client_secret"] = page.client_secret
            context["next_action"] = page.next_action
            context["processing"] = page.payment is not None and page.payment.status == PaymentStatus.PROCESSING
            context["error"] = checkout.last_error_message
    context |= {
        "publishable_key": config.publishable_key,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "return_url": request.build_absolute_uri(reverse("checkout:stripe_return", args=[checkout.pk])),
    }
    if not expired and checkout.status != CheckoutStatus.COMPLETE:
        from stall.wallets.views import pay_page_context

        context |= pay_page_context(request, checkout)  # the wallet and the tab, for a signed-in buyer
    request.csp_extra = stripe_csp(config)
    return render(request, "payments/stripe_pay.html", context, status=status)


@require_GET
def stripe_return(request, checkout_id):
    """Stripe sends the buyer back here (``return_url``) with ``payment_intent`` in the query."""
    try:
        checkout = checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None
    try:
        checkout = stripe_checkout_return(checkout_id=checkout.pk, payment_intent=request.GET.get("payment_intent", ""))
    except StallError as exc:
        messages.error(request, exc.message)
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    # Back to the page, which shows Stripe's reason (kept on the checkout) and a fresh attempt.
    return redirect("checkout:pay", checkout_id=checkout.pk)


@csrf_exempt
@require_POST
def stripe_webhook(request, store_id=None):
    """Stripe's events: the platform's account at /webhooks/stripe, a store's own at /webhooks/stripe/<store>."""
    try:
        event, new = stripe_webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", ""), store_id=store_id
        )
    except StallError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return JsonResponse({"received": True, "id": event.pk, "duplicate": not new})
