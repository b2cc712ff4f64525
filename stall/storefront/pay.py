"""The hosted payment page of a checkout, and what comes back to it from a card's bank or Stripe.

One page serves every rail: the store's card rail (the sandbox's test cards, or Stripe's Payment
Element when the store takes cards through Stripe), Lightning where the store has an LNbits wallet,
and the wallet and the tab of a signed-in buyer. It sits above orders and wallets, which it shows
together.
"""

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.checkout.forms import PayForm
from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.core.csrf import csrf_by_origin
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.middleware import frame_ancestors_allow
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.errors import PriceChanged
from stall.orders.pricing import checkout_prices_check
from stall.payments.lightning_services import (
    lightning_checkout_start,
    lightning_invoice_page,
    lightning_open_payment,
    lightning_payment_cancel,
    lightning_payment_refresh,
)
from stall.payments.models import Payment, PaymentStatus
from stall.payments.rails import rail_get, rail_livemode, sandbox_enabled
from stall.payments.selectors import lightning_config_for_store, stripe_config_for_store, stripe_csp
from stall.payments.services import checkout_card_payments_abandon, payment_confirm_action
from stall.payments.stripe_services import stripe_checkout_page, stripe_checkout_return
from stall.wallets.selectors import pay_options_for, wallet_page_url


def pay_page_context(request, checkout) -> dict:
    """What the hosted payment page needs to offer the wallet and the tab."""
    buyer = buyer_from_request(request)
    pay_url = reverse("checkout:pay", args=[checkout.pk])
    lightning = lightning_config_for_store(checkout.store) is not None
    if buyer is None:
        return {"wallet_sign_in_url": sign_in_url(pay_url), "lightning": lightning}
    return {
        "lightning": lightning,
        "pay_options": pay_options_for(buyer=buyer, checkout=checkout),
        "top_up_url": wallet_page_url(currency=checkout.currency, store=checkout.store, next_path=pay_url),
        "settle_and_buy_url": reverse("wallets:settle_and_buy", args=[checkout.pk]),
    }


def pay_form(checkout, data=None) -> PayForm:
    """The test cards where the sandbox is on for the checkout's store; else no card to choose."""
    on = sandbox_enabled(store_id=checkout.store_id)
    return PayForm(data, methods=rail_get("sandbox").payment_methods() if on else [])


def _checkout_or_404(request, checkout_id):
    """The checkout, its pages framable by the store's embed sites (the buy button's overlay)."""
    try:
        checkout = checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None
    frame_ancestors_allow(request, checkout.store.embed_origin_list)
    return checkout


@csrf_by_origin  # the buy button's overlay: see stall.core.csrf
@require_http_methods(["GET", "POST"])
def pay(request, checkout_id):
    """The hosted payment page of a checkout: the store's card rail (Stripe's Payment Element, or
    the sandbox's test cards), and the wallet and the tab for a signed-in buyer."""
    checkout = _checkout_or_404(request, checkout_id)
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    if lightning_open_payment(checkout_id=checkout.pk) is not None:
        return redirect("checkout:lightning", checkout_id=checkout.pk)
    if stripe_config_for_store(checkout.store) is not None:
        return stripe_pay(request, checkout)
    waiting = checkout.payments.filter(status=PaymentStatus.REQUIRES_ACTION).first()
    if waiting:
        return redirect("checkout:authenticate", checkout_id=checkout.pk)
    expired = checkout.status == CheckoutStatus.EXPIRED or checkout.expires_at <= timezone.now()
    form = pay_form(checkout, request.POST or None)
    if request.method == "POST" and not expired and form.is_valid():
        try:
            checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=form.cleaned_data["payment_method"],
                                        buyer=buyer_from_request(request), checkout=checkout)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            if checkout.status == CheckoutStatus.COMPLETE:
                return redirect("checkout:complete", checkout_id=checkout.pk)
            if checkout.payments.filter(status=PaymentStatus.REQUIRES_ACTION).exists():
                return redirect("checkout:authenticate", checkout_id=checkout.pk)
            return redirect("checkout:pay", checkout_id=checkout.pk)  # still processing: says so
    context = {
        "checkout": checkout, "store": checkout.store, "form": form, "expired": expired,
        "lines": checkout.lines.all(), "test_cards": bool(form.fields["payment_method"].choices),
    }
    # Test cards where the Stall takes real money: the page says "test mode" plainly.
    context["test_mode"] = context["test_cards"] and not rail_livemode("sandbox")
    # A payment still with the rail (another tab's, or one a crash interrupted, which the next
    # Pay resumes): say so rather than show the page as if nothing had happened.
    processing = checkout.payments.filter(status=PaymentStatus.PROCESSING).exists()
    context["processing"] = not expired and processing
    if not expired:
        context.update(pay_page_context(request, checkout))  # the wallet and the tab, for a signed-in buyer
    return render(request, "payments/sandbox_pay.html", context, status=400 if form.errors else 200)


@csrf_by_origin  # the buy button's overlay: see stall.core.csrf
@require_http_methods(["GET", "POST"])
def authenticate(request, checkout_id):
    """The sandbox bank's 3-D Secure page for a checkout's card payment."""
    checkout = _checkout_or_404(request, checkout_id)
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    payment = Payment.objects.filter(checkout=checkout, status=PaymentStatus.REQUIRES_ACTION).first()
    if payment is None or payment.rail == "stripe":
        # Stripe's bank check runs in Stripe.js on the Stripe page, not on this sandbox bank page.
        return redirect("checkout:pay", checkout_id=checkout.pk)
    error = None
    if request.method == "POST":
        try:
            checkout = payment_confirm_action(payment_id=payment.pk, approve=request.POST.get("decision") == "approve")
        except StallError as exc:
            error = exc.message
            form = pay_form(checkout)
            test_cards = bool(form.fields["payment_method"].choices)
            return render(request, "payments/sandbox_pay.html", {
                "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(),
                "form": form, "error": error, "test_cards": test_cards,
                "test_mode": test_cards and not rail_livemode("sandbox"),
            }, status=402)
        return redirect("checkout:complete", checkout_id=checkout.pk)
    return render(request, "payments/sandbox_authenticate.html", {"checkout": checkout, "store": checkout.store, "payment": payment})


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
            # Priced when it was made: a membership's cap may have been reached since (a wallet
            # unlock), and the card must not be charged past it. Its intent, if one was shown
            # before, is given up so that the page's Stripe.js cannot confirm it either.
            checkout_prices_check(checkout_id=checkout.pk)
            page = stripe_checkout_page(checkout_id=checkout.pk)
        except PriceChanged as exc:
            checkout_card_payments_abandon(checkout_id=checkout.pk)
            context["error"], status = exc.message, exc.status
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
        messages.error(request, gettext(str(exc.message)))
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    # Back to the page, which shows Stripe's reason (kept on the checkout) and a fresh attempt.
    return redirect("checkout:pay", checkout_id=checkout.pk)


@csrf_by_origin  # the buy button's overlay: see stall.core.csrf
@require_http_methods(["GET", "POST"])
def lightning_pay(request, checkout_id):
    """The checkout's Lightning invoice. POST ``start`` makes it (the pay page's "Pay with
    Lightning"), ``check`` asks LNbits whether it was paid (works without script), ``cancel`` gives it
    up to pay another way."""
    checkout = _checkout_or_404(request, checkout_id)
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    action = request.POST.get("action") if request.method == "POST" else None
    try:
        if action == "start":
            checkout = lightning_checkout_start(checkout_id=checkout.pk)
        payment = lightning_open_payment(checkout_id=checkout.pk)
        if payment is not None and action == "check":
            payment = lightning_payment_refresh(payment_id=payment.pk)
            if payment.status == PaymentStatus.REQUIRES_ACTION:
                messages.info(request, gettext("Not paid yet. Lightning payments arrive in seconds: check again in a moment."))
        elif payment is not None and action == "cancel":
            payment = lightning_payment_cancel(payment_id=payment.pk)
    except StallError as exc:
        messages.error(request, gettext(str(exc.message)))
        return redirect("checkout:pay", checkout_id=checkout.pk)
    checkout.refresh_from_db()
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    if payment is None or payment.status != PaymentStatus.REQUIRES_ACTION:
        if payment is not None and payment.status == PaymentStatus.FAILED:
            messages.error(request, gettext(payment.failure_message))
        return redirect("checkout:pay", checkout_id=checkout.pk)
    if request.method == "POST":
        return redirect("checkout:lightning", checkout_id=checkout.pk)
    return render(request, "payments/lightning_pay.html", {
        "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(),
        "invoice": lightning_invoice_page(payment=payment),
        "check_url": reverse("checkout:lightning", args=[checkout.pk]),
        "status_url": reverse("payments:lightning_status", args=[payment.pk]),
        "done_url": reverse("checkout:complete", args=[checkout.pk]),
    })
