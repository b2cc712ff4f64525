"""Dashboard pages for license keys: a product's license settings, and on an order's page its keys
and their activations, with disable, re-enable, reset activations and raise the limit. Thin views
over stall.orders.licenses; another store's product or key is a 404."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.orders import licenses
from stall.orders.models import LicensePolicy

from .forms import AmountField, _AmountsForm, amount_for_input
from .views import _locale, _product, _render, _store


class LicensePolicyForm(_AmountsForm):
    enabled = forms.BooleanField(label="Issue a license key with each purchase", required=False)
    key_format = forms.CharField(label="Key format", max_length=80, initial=licenses.DEFAULT_FORMAT,
                                 help_text="Each # becomes a random character; the rest stays as written, "
                                           "e.g. ACME-#####-#####-#####-#####. At least 20 #.")
    activation_limit = forms.IntegerField(label="Activation limit", required=False, min_value=1, max_value=10**6,
                                          help_text="How many machines a key works on at once. Empty: no limit.")
    valid_days = forms.IntegerField(label="Valid for (days)", required=False, min_value=1, max_value=100000,
                                    help_text="Empty: keys never expire.")
    extra_seat_amount = AmountField(label="Extra seat price", required=False,
                                    help_text="Sell one more activation past the limit at this price, from the "
                                              "buyer's wallet or tab, to buyers who allow it on their library "
                                              "page. Empty: no extra seats.")


class LicenseLimitForm(forms.Form):
    activation_limit = forms.IntegerField(label="New limit", required=False, min_value=1, max_value=10**6)


@login_required
@require_http_methods(["GET", "POST"])
def product_license(request, slug, product_id):
    store = _store(request, slug)
    product = _product(store, product_id)
    policy = LicensePolicy.objects.filter(product=product).first()
    initial = ({"enabled": policy.enabled, "key_format": policy.key_format, "activation_limit": policy.activation_limit,
                "valid_days": policy.valid_days,
                "extra_seat_amount": amount_for_input(policy.extra_seat_amount, product.currency, _locale(request))}
               if policy else {"key_format": licenses.DEFAULT_FORMAT})
    form = LicensePolicyForm(request.POST or None, initial=initial, currency=product.currency, locale=_locale(request))
    if request.method == "POST" and form.is_valid():
        try:
            licenses.license_policy_set(product=product, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "License keys saved." if form.cleaned_data["enabled"] else "License keys are off.")
            return redirect("dashboard:product_license", slug=store.slug, product_id=product.pk)
    context = {"store": store, "section": "products", "product": product, "form": form, "policy": policy}
    return _render(request, "dashboard/product_license.html", context, form)


ACTIONS = {"disable", "enable", "reset", "limit"}


@login_required
@require_POST
def license_action(request, slug, license_id, action):
    store = _store(request, slug)
    if action not in ACTIONS:
        raise Http404
    try:
        lic = licenses.license_get(store=store, license_id=license_id)
    except NotFound:
        raise Http404 from None
    try:
        if action == "disable":
            licenses.license_disable(store=store, license_id=lic.pk)
            messages.success(request, "License key disabled.")
        elif action == "enable":
            licenses.license_enable(store=store, license_id=lic.pk)
            messages.success(request, "License key enabled.")
        elif action == "reset":
            licenses.license_activations_reset(store=store, license_id=lic.pk)
            messages.success(request, "Activations reset.")
        else:
            form = LicenseLimitForm(request.POST)
            if not form.is_valid():
                raise licenses.LicenseInvalid("Enter a limit of at least 1, or leave it empty for no limit.")
            lic = licenses.license_limit_raise(store=store, license_id=lic.pk,
                                               activation_limit=form.cleaned_data["activation_limit"])
            messages.success(request, f"Activation limit now {lic.activation_limit or 'unlimited'}.")
    except StallError as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:order", slug=store.slug, order_id=lic.order_id)
