"""The sandbox rail's hosted payment page: what a buyer sees at a card processor in test mode."""

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from stall.checkout.forms import PayForm
from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error

from .models import Payment, PaymentStatus
from .rails import rail_get
from .selectors import stripe_config_for_store
from .services import checkout_confirm, payment_confirm_action
from .stripe_views import stripe_pay


def _checkout_or_404(checkout_id):
    try:
        return checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None


@require_http_methods(["GET", "POST"])
def sandbox_pay(request, checkout_id):
    checkout = _checkout_or_404(checkout_id)
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    if stripe_config_for_store(checkout.store) is not None:
        return stripe_pay(request, checkout)
    waiting = checkout.payments.filter(status=PaymentStatus.REQUIRES_ACTION).first()
    if waiting:
        return redirect("checkout:authenticate", checkout_id=checkout.pk)
    expired = checkout.status == CheckoutStatus.EXPIRED or checkout.expires_at <= timezone.now()
    form = PayForm(request.POST or None, methods=rail_get("sandbox").payment_methods())
    if request.method == "POST" and not expired and form.is_valid():
        try:
            checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=form.cleaned_data["payment_method"])
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            if checkout.status == CheckoutStatus.COMPLETE:
                return redirect("checkout:complete", checkout_id=checkout.pk)
            return redirect("checkout:authenticate", checkout_id=checkout.pk)
    context = {"checkout": checkout, "store": checkout.store, "form": form, "expired": expired, "lines": checkout.lines.all()}
    if not expired:
        from stall.wallets.views import pay_page_context

        context.update(pay_page_context(request, checkout))  # the wallet and the tab, for a signed-in buyer
    return render(request, "payments/sandbox_pay.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def sandbox_authenticate(request, checkout_id):
    checkout = _checkout_or_404(checkout_id)
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
            return render(request, "payments/sandbox_pay.html", {
                "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(),
                "form": PayForm(methods=rail_get("sandbox").payment_methods()), "error": error,
            }, status=402)
        return redirect("checkout:complete", checkout_id=checkout.pk)
    return render(request, "payments/sandbox_authenticate.html", {"checkout": checkout, "store": checkout.store, "payment": payment})
