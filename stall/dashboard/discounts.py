"""Dashboard pages for discount codes: the list with uses, create, edit, deactivate. Thin views over
stall.checkout.discounts; another store's discount is a 404."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from stall.catalog.models import LISTED_KINDS, Product, ProductStatus
from stall.checkout import discounts as discount_services
from stall.checkout.models import DiscountKind
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error

from .forms import AmountField, _AmountsForm, amount_for_input
from .views import _locale, _render, _store


class DiscountForm(_AmountsForm):
    code = forms.CharField(label="Code", max_length=40, help_text="What buyers type, e.g. SPRING. Letters, digits, - and _.",
                           widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}))
    kind = forms.ChoiceField(label="Discount", choices=DiscountKind.choices, widget=forms.RadioSelect, initial=DiscountKind.PERCENT)
    percent_off = forms.IntegerField(label="Percent off", required=False, min_value=1, max_value=100)
    amount_off = AmountField(label="Amount off", required=False)
    products = forms.MultipleChoiceField(label="Only these products", required=False, widget=forms.CheckboxSelectMultiple,
                                         help_text="None ticked: every product of the store.")
    minimum_subtotal = AmountField(label="Minimum subtotal", required=False, help_text="Optional: the code applies from this subtotal.")
    starts_at = forms.DateTimeField(label="Starts (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(label="Ends (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                  help_text="Optional. Buyers can use it until this moment.")
    max_uses = forms.IntegerField(label="Use limit", required=False, min_value=1, max_value=10**9,
                                  help_text="Optional: how many orders in all may use it.")
    once_per_customer = forms.BooleanField(label="Once per customer (by email and by account)", required=False)

    def __init__(self, *args, products=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["products"].choices = [(p.pk, p.name) for p in products]
        self.fields["amount_off"].label += f" ({self.currency})"
        self.fields["minimum_subtotal"].label += f" ({self.currency})"

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == DiscountKind.PERCENT and data.get("percent_off") is None and "percent_off" not in self.errors:
            self.add_error("percent_off", "Enter the percent off.")
        if kind == DiscountKind.FIXED and data.get("amount_off") is None and "amount_off" not in self.errors:
            self.add_error("amount_off", "Enter the amount off.")
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        percent = data["kind"] == DiscountKind.PERCENT
        return {
            "code": data["code"], "kind": data["kind"],
            "percent_off": data["percent_off"] if percent else None, "amount_off": None if percent else data["amount_off"],
            "products": data["products"], "minimum_subtotal": data["minimum_subtotal"] or 0,
            "starts_at": data["starts_at"], "ends_at": data["ends_at"], "max_uses": data["max_uses"],
            "once_per_customer": data["once_per_customer"],
        }


def _products(store):
    return Product.objects.filter(store=store, kind__in=LISTED_KINDS).exclude(status=ProductStatus.ARCHIVED).order_by("name")


def _discount(store, discount_id):
    try:
        return discount_services.discount_get(store=store, discount_id=discount_id)
    except NotFound:
        raise Http404 from None


def _share_link(request, store, discount) -> str:
    return request.build_absolute_uri(reverse("stores:store", args=[store.slug])) + "?" + urlencode({"code": discount.code})


@login_required
def discounts(request, slug):
    store = _store(request, slug)
    locale = _locale(request)
    rows = [(d, discount_services.discount_label(d, locale), _share_link(request, store, d))
            for d in discount_services.discounts_for_store(store=store)]
    return _render(request, "dashboard/discounts.html", {"store": store, "section": "discounts", "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def discount_new(request, slug):
    store = _store(request, slug)
    form = DiscountForm(request.POST or None, currency=store.currency, locale=_locale(request), products=_products(store))
    if request.method == "POST" and form.is_valid():
        try:
            discount = discount_services.discount_create(store=store, **form.service_kwargs())
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, f"{discount.code} is ready. Share {_share_link(request, store, discount)} to apply it.")
            return redirect("dashboard:discounts", slug=store.slug)
    return _render(request, "dashboard/discount_form.html", {"store": store, "section": "discounts", "form": form}, form)


@login_required
@require_http_methods(["GET", "POST"])
def discount_edit(request, slug, discount_id):
    store = _store(request, slug)
    discount = _discount(store, discount_id)
    locale = _locale(request)
    initial = {
        "code": discount.code, "kind": discount.kind, "percent_off": discount.percent_off,
        "amount_off": amount_for_input(discount.amount_off, store.currency, locale),
        "minimum_subtotal": amount_for_input(discount.minimum_subtotal or None, store.currency, locale),
        "products": [p.pk for p in discount.products.all()],
        "starts_at": discount.starts_at, "ends_at": discount.ends_at, "max_uses": discount.max_uses,
        "once_per_customer": discount.once_per_customer,
    }
    form = DiscountForm(request.POST or None, currency=store.currency, locale=locale, products=_products(store), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            discount = discount_services.discount_update(discount=discount, **form.service_kwargs())
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Discount saved.")
            return redirect("dashboard:discount", slug=store.slug, discount_id=discount.pk)
    context = {"store": store, "section": "discounts", "form": form, "discount": discount,
               "share_link": _share_link(request, store, discount)}
    return _render(request, "dashboard/discount_form.html", context, form)


@login_required
@require_POST
def discount_active(request, slug, discount_id):
    """Deactivate (or reactivate) a code: a deactivated code is refused, even on open checkouts."""
    store = _store(request, slug)
    discount = _discount(store, discount_id)
    active = request.POST.get("active") == "1"
    discount_services.discount_update(discount=discount, active=active)
    messages.success(request, f"{discount.code} is {'active again' if active else 'deactivated: buyers can no longer use it'}.")
    return redirect("dashboard:discount", slug=store.slug, discount_id=discount.pk)
