"""Dashboard pages for bundles: make one from the store's downloads, and change its parts. The
bundle's other settings (name, price, status, cover) are edited on its product page."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from stall.catalog.models import BUNDLE_PART_KINDS, Product, ProductKind, ProductStatus
from stall.catalog.services import product_create, product_update
from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error

from .forms import AmountField, _AmountsForm
from .views import _locale, _product, _render, _store


class BundlePartsForm(forms.Form):
    parts = forms.MultipleChoiceField(label="Products in the bundle", widget=forms.CheckboxSelectMultiple,
                                      help_text="Buying the bundle gives the buyer each of these, with its files.")

    def __init__(self, *args, products=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parts"].choices = [(p.pk, p.name) for p in products]

    def add_stall_error(self, exc: StallError) -> None:
        if (exc.param or "").startswith("parts"):
            self.add_error("parts", exc.message)
        else:
            form_add_stall_error(self, exc)


class BundleCreateForm(_AmountsForm, BundlePartsForm):
    name = forms.CharField(label="Name", max_length=120)
    amount = AmountField(label="Price", help_text="The bundle's own price, whatever its parts cost alone.")
    status = forms.ChoiceField(label="Status", choices=ProductStatus.choices, initial=ProductStatus.PUBLISHED)

    field_order = ["name", "amount", "parts", "status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Price ({self.currency})"


def _parts_choices(store):
    qs = Product.objects.filter(store=store, kind__in=BUNDLE_PART_KINDS).exclude(status=ProductStatus.ARCHIVED)
    return qs.order_by("name")


@login_required
@require_http_methods(["GET", "POST"])
def bundle_new(request, slug):
    store = _store(request, slug)
    form = BundleCreateForm(request.POST or None, currency=store.currency, locale=_locale(request),
                            products=_parts_choices(store))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            bundle = product_create(store=store, name=data["name"], amount=data["amount"] or 0, kind=ProductKind.BUNDLE,
                                    status=data["status"], parts=data["parts"])
        except StallError as exc:
            form.add_stall_error(exc)
        else:
            messages.success(request, f"“{bundle.name}” bundles {len(data['parts'])} products.")
            return redirect("dashboard:product", slug=store.slug, product_id=bundle.pk)
    return _render(request, "dashboard/bundle_form.html", {"store": store, "section": "products", "form": form}, form)


@login_required
@require_http_methods(["GET", "POST"])
def bundle_parts(request, slug, product_id):
    store = _store(request, slug)
    bundle = _product(store, product_id)
    initial = {"parts": [item.part_id for item in bundle.bundle_items.all()]}
    form = BundlePartsForm(request.POST or None, products=_parts_choices(store), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            product_update(product=bundle, parts=form.cleaned_data["parts"])
        except StallError as exc:
            form.add_stall_error(exc)
        else:
            messages.success(request, "Bundle saved.")
            return redirect("dashboard:product", slug=store.slug, product_id=bundle.pk)
    context = {"store": store, "section": "products", "form": form, "bundle": bundle}
    return _render(request, "dashboard/bundle_form.html", context, form)
