"""Dashboard page for how a store takes payments: cards through the built-in sandbox, the platform's
Stripe account or the store's own Stripe keys, and Lightning through the store's own LNbits wallet."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.payments.lightning_services import lightning_account_remove, lightning_account_set
from stall.payments.models import LightningAccount, StripeAccount
from stall.payments.rails import sandbox_enabled, sandbox_test_mode
from stall.payments.selectors import stripe_platform_config
from stall.payments.stripe_services import stripe_account_remove, stripe_account_set

from .views import _render, _store

STRIPE_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded", "refund.updated")


class StripeKeysForm(forms.Form):
    secret_key = forms.CharField(label="Secret key", max_length=255, help_text="sk_live_… or sk_test_… (or a restricted rk_ key).",
                                 widget=forms.PasswordInput(attrs={"autocomplete": "off"}, render_value=False))
    publishable_key = forms.CharField(label="Publishable key", max_length=255, help_text="pk_live_… or pk_test_…",
                                      widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    webhook_secret = forms.CharField(label="Webhook signing secret", max_length=255, required=False,
                                     help_text="whsec_… from the endpoint you add in Stripe (address below).",
                                     widget=forms.PasswordInput(attrs={"autocomplete": "off"}, render_value=False))
    api_base = forms.URLField(label="API address", required=False, max_length=200, assume_scheme="https",
                              help_text="Only for a local Stripe peer in development; leave empty for Stripe.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not settings.STRIPE_ALLOW_CUSTOM_API_BASE:
            del self.fields["api_base"]


class LightningForm(forms.Form):
    url = forms.URLField(label="LNbits address", max_length=255, assume_scheme="https",
                         help_text="The address of your LNbits server, such as https://lnbits.example.com.")
    invoice_key = forms.CharField(label="Invoice/read key", max_length=255,
                                  help_text="From your LNbits wallet's API info. Not the admin key: Stall never spends.",
                                  widget=forms.PasswordInput(attrs={"autocomplete": "off"}, render_value=False))


@login_required
@require_http_methods(["GET", "POST"])
def payment_settings(request, slug):
    store = _store(request, slug)
    lightning_post = request.method == "POST" and request.POST.get("action") == "lightning"
    form = StripeKeysForm(request.POST if request.method == "POST" and not lightning_post else None)
    lightning_form = LightningForm(request.POST if lightning_post else None)
    if lightning_post and lightning_form.is_valid():
        try:
            lightning_account_set(store=store, **lightning_form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(lightning_form, exc)
        else:
            messages.success(request, "Lightning is connected: buyers can now pay this store by Lightning invoice.")
            return redirect("dashboard:payments", slug=store.slug)
    if request.method == "POST" and not lightning_post and form.is_valid():
        try:
            stripe_account_set(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Stripe is connected: card payments of this store now go through your Stripe account.")
            return redirect("dashboard:payments", slug=store.slug)
    account = StripeAccount.objects.filter(store=store).first()
    context = {
        "store": store, "section": "payments", "form": form, "account": account,
        "platform_stripe": stripe_platform_config() is not None,
        "sandbox": sandbox_enabled(store_id=store.pk),
        "test_mode": sandbox_test_mode(store_id=store.pk),
        "webhook_url": settings.BASE_URL + reverse("payments:stripe_webhook_store", args=[store.pk]),
        "stripe_events": STRIPE_EVENTS,
        "mode": ("test" if account.secret_key.split("_")[1:2] == ["test"] else "live") if account else "",
        "lightning_form": lightning_form, "lightning_account": LightningAccount.objects.filter(store=store).first(),
    }
    response = _render(request, "dashboard/payments.html", context, lightning_form if lightning_post else form)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def payment_settings_remove_stripe(request, slug):
    store = _store(request, slug)
    stripe_account_remove(store=store)
    messages.success(request, "Your Stripe keys were removed.")
    return redirect("dashboard:payments", slug=store.slug)


@login_required
@require_POST
def payment_settings_remove_lightning(request, slug):
    store = _store(request, slug)
    lightning_account_remove(store=store)
    messages.success(request, "Your LNbits wallet was removed: this store no longer offers Lightning.")
    return redirect("dashboard:payments", slug=store.slug)
