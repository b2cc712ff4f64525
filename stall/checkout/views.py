from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from stall.catalog.models import LISTED_KINDS, Product, ProductStatus
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.orders.models import Order
from stall.orders.services import download_url
from stall.payments.services import checkout_confirm

from .forms import BuyForm
from .models import CheckoutStatus
from .selectors import checkout_get
from .services import CheckoutItem, checkout_create


@require_http_methods(["GET", "POST"])
def buy(request, product_id):
    # Only listed products have a payment link: posts and tips are paid on their own pages, which
    # check what this form cannot (a tip jar's maximum, an unlock already made).
    product = Product.objects.select_related("store").filter(
        pk=product_id, status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS
    ).first()
    if product is None:
        raise Http404
    locale = getattr(request, "LANGUAGE_CODE", "en") or "en"
    form = BuyForm(request.POST or None, product=product, locale=locale)
    if request.method == "POST" and form.is_valid():
        try:
            checkout = checkout_create(
                store=product.store,
                email=form.cleaned_data["email"],
                items=[CheckoutItem(product_id=product.pk, amount=form.cleaned_data.get("amount"))],
            )
            if checkout.amount_total == 0:
                checkout_confirm(checkout_id=checkout.pk)
                return redirect("checkout:complete", checkout_id=checkout.pk)
            return redirect("checkout:pay", checkout_id=checkout.pk)
        except StallError as exc:
            form_add_stall_error(form, exc)
    return render(request, "checkout/buy.html", {"product": product, "store": product.store, "form": form},
                  status=400 if form.errors else 200)


def complete(request, checkout_id):
    try:
        checkout = checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None
    if checkout.status != CheckoutStatus.COMPLETE:
        return redirect("checkout:pay", checkout_id=checkout.pk)
    order = Order.objects.get(checkout=checkout)
    entitlements = {e.product_id: e for e in order.entitlements.all()}
    items = []  # (line, product, entitlement or None, [(file, url)])
    for line in order.lines.select_related("product").prefetch_related("product__files"):
        entitlement = entitlements.get(line.product_id)
        files = [(f, download_url(entitlement=entitlement, file=f)) for f in line.product.files.all()] if entitlement and entitlement.active else []
        items.append((line, line.product, entitlement, files))
    receipt_sent = order.payment is None or order.payment.rail not in ("wallet", "tab")
    context = {"checkout": checkout, "order": order, "store": checkout.store, "items": items, "receipt_sent": receipt_sent}
    return render(request, "checkout/complete.html", context)
