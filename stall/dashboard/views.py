"""The creator's dashboard: thin views that parse a form, call one service and render.

Every view finds the store through ``store_for_user``, and every object through a selector scoped
to that store, so another creator's store, product, order or key is "not found" (404), never
"forbidden": the answer does not reveal that it exists.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from stall.catalog.errors import ProductHasNoFiles
from stall.catalog.models import ProductStatus
from stall.catalog.selectors import product_get, products_for_store
from stall.catalog.services import (
    product_create,
    product_file_add,
    product_file_delete,
    product_update,
)
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import format_money
from stall.insights.economics import order_processing_cost, store_economics
from stall.integrations.services import api_key_create, api_key_revoke
from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance
from stall.orders.checkout_pay import checkout_test_purchase
from stall.orders.disputes import disputes_for_order
from stall.orders.licenses import licenses_for_order
from stall.orders.models import DisputeState
from stall.orders.refunds import refund_create
from stall.orders.selectors import order_get, orders_for_store
from stall.payments.models import RefundStatus, StripeAccount
from stall.payments.rails import sandbox_enabled, sandbox_test_mode
from stall.stores.selectors import store_for_user, stores_for_user
from stall.stores.services import store_create, store_link_shared, store_update

from .embeds import embed_button
from .forms import (
    ApiKeyCreateForm,
    OrderSearchForm,
    ProductCreateForm,
    ProductFilesForm,
    ProductForm,
    RefundForm,
    StoreCreateForm,
    StoreSettingsForm,
    amount_for_input,
)
from .selectors import api_keys_for_store, first_steps, sales_summary

ORDERS_PER_PAGE = 50


def _store(request, slug):
    try:
        return store_for_user(user=request.user, slug=slug)
    except NotFound:
        raise Http404 from None


def _store_url(request, store) -> str:
    """The store's public link as the creator reaches this Stall: the one to copy and share."""
    return request.build_absolute_uri(reverse("stores:store", args=[store.slug]))


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


def _render(request, template, context, form=None):
    """Render a page; a form with errors makes it a 400 so tests and tools see the refusal."""
    failed = form is not None and form.is_bound and bool(form.errors)
    return render(request, template, context, status=400 if failed else 200)


@login_required
def home(request):
    store = stores_for_user(user=request.user).first()
    if store is None:
        return redirect("dashboard:store_new")
    return redirect("dashboard:overview", slug=store.slug)


@login_required
@require_http_methods(["GET", "POST"])
def store_new(request):
    form = StoreCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            store = store_create(owner=request.user, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, f"{store.name} is ready. Add your first product.")
            return redirect("dashboard:overview", slug=store.slug)
    has_store = stores_for_user(user=request.user).exists()
    return _render(request, "dashboard/store_new.html", {"form": form, "has_store": has_store}, form)


@login_required
def overview(request, slug):
    store = _store(request, slug)
    context = {
        "store": store,
        "section": "overview",
        "balance": account_balance(kind=AccountKind.STORE_BALANCE, owner=store.id, currency=store.currency),
        "summary": sales_summary(store=store),
        "economics": store_economics(store=store),
        "recent_orders": orders_for_store(store=store)[:10],
        "other_stores": stores_for_user(user=request.user).exclude(pk=store.pk),
        "has_products": products_for_store(store=store).exists(),
        "steps": first_steps(store=store),
        "store_url": _store_url(request, store),
    }
    return render(request, "dashboard/overview.html", context)


@login_required
@require_POST
def link_shared(request, slug):
    """The last first step: the creator copied the store's link (``copied``, set by the copy
    button's script once the clipboard took it) or says they shared it."""
    store = _store(request, slug)
    store_link_shared(store=store)
    copied = request.POST.get("copied") == "1"
    messages.success(request, "Link copied. Share it where your buyers are." if copied else "Marked as shared.")
    return redirect("dashboard:overview", slug=store.slug)


@login_required
@require_http_methods(["GET", "POST"])
def store_settings(request, slug):
    store = _store(request, slug)
    initial = {f: getattr(store, f) for f in ("name", "slug", "bio", "currency", "support_email", "embed_origins")}
    form = StoreSettingsForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            updated = store_update(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("dashboard:settings", slug=updated.slug)
    return _render(request, "dashboard/settings.html", {"store": store, "section": "settings", "form": form}, form)


@login_required
def products(request, slug):
    store = _store(request, slug)
    return render(request, "dashboard/products.html",
                  {"store": store, "section": "products", "products": products_for_store(store=store)})


@login_required
@require_http_methods(["GET", "POST"])
def product_new(request, slug):
    store = _store(request, slug)
    form = ProductCreateForm(request.POST or None, request.FILES or None, currency=store.currency, locale=_locale(request))
    if request.method == "POST" and form.is_valid():
        try:
            product = product_create(store=store, **form.service_kwargs())
        except ProductHasNoFiles as exc:
            form.add_error("files", f"{exc.message} Or save it as a draft and add files later.")
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, _created_message(product))
            return redirect("dashboard:product", slug=store.slug, product_id=product.pk)
    context = {"store": store, "section": "products", "form": form,
               "files_dropped": form.is_bound and bool(form.errors) and bool(request.FILES)}
    return _render(request, "dashboard/product_new.html", context, form)


def _created_message(product) -> str:
    if product.status == ProductStatus.PUBLISHED:
        return f"“{product.name}” is on your store. Share its link, or send yourself a test purchase."
    if product.files.exists():
        return f"“{product.name}” is saved as a draft. Publish it when it is ready."
    return f"“{product.name}” is saved as a draft. Add the files buyers will download, then publish it."


def _product(store, product_id):
    try:
        return product_get(store=store, product_id=product_id)
    except NotFound:
        raise Http404 from None


def _product_page(request, store, product, form=None, files_form=None, status=200):
    locale = _locale(request)
    if form is None:
        form = ProductForm(
            currency=store.currency, locale=locale,
            initial={
                "name": product.name, "slug": product.slug, "description": product.description,
                "price_type": product.price_type, "amount": amount_for_input(product.amount, store.currency, locale),
                "suggested_amount": amount_for_input(product.suggested_amount, store.currency, locale),
                "status": product.status, "download_limit": product.download_limit,
            },
        )
    context = {
        "store": store, "section": "products", "product": product, "form": form,
        "files_form": files_form or ProductFilesForm(), "files": product.files.all(),
        "test_cards": sandbox_enabled(store_id=store.pk), "test_mode": sandbox_test_mode(store_id=store.pk),
        "stripe_test_keys": StripeAccount.objects.filter(
            Q(secret_key__startswith="sk_test_") | Q(secret_key__startswith="rk_test_"), store=store).exists(),
        "product_url": request.build_absolute_uri(reverse("stores:product", args=[store.slug, product.slug])),
        "embed": embed_button(request, path=reverse("checkout:buy", args=[product.pk]),
                              label=f"Buy {product.name}"),
    }
    return render(request, "dashboard/product_edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def product_edit(request, slug, product_id):
    store = _store(request, slug)
    product = _product(store, product_id)
    if request.method == "GET":
        return _product_page(request, store, product)
    form = ProductForm(request.POST, request.FILES, currency=store.currency, locale=_locale(request))
    if form.is_valid():
        try:
            product = product_update(product=product, **form.service_kwargs())
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Product saved.")
            return redirect("dashboard:product", slug=store.slug, product_id=product.pk)
    return _product_page(request, store, product, form=form, status=400)


@login_required
@require_POST
def product_files_add(request, slug, product_id):
    store = _store(request, slug)
    product = _product(store, product_id)
    form = ProductFilesForm(request.POST, request.FILES)
    added = []
    if form.is_valid():
        try:
            for upload in form.cleaned_data["files"]:
                added.append(product_file_add(product=product, upload=upload))
        except StallError as exc:
            form.add_error("files", f"{upload.name}: {exc.message}")
    if added:
        names = ", ".join(f.name for f in added)
        messages.success(request, f"Added {names}." if len(added) < 4 else f"Added {len(added)} files.")
    if not form.errors:
        return redirect(reverse("dashboard:product", args=[store.slug, product.pk]) + "#files")
    return _product_page(request, store, product, files_form=form, status=400)


@login_required
@require_POST
def product_file_remove(request, slug, product_id, file_id):
    store = _store(request, slug)
    product = _product(store, product_id)
    file = product.files.filter(pk=file_id).first()
    if file is None:
        raise Http404
    try:
        product_file_delete(file=file)
    except StallError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Deleted {file.name}.")
    return redirect(reverse("dashboard:product", args=[store.slug, product.pk]) + "#files")


@login_required
@require_POST
def product_test_purchase(request, slug, product_id):
    """Buy the product for the creator's own email with a test card, then show them the order."""
    store = _store(request, slug)
    product = _product(store, product_id)
    try:
        order = checkout_test_purchase(product=product, email=request.user.email)
    except StallError as exc:
        messages.error(request, exc.message)
        return redirect(reverse("dashboard:product", args=[store.slug, product.pk]) + "#try")
    messages.success(request, f"Test purchase made: this is the order your buyer would make. The receipt went to {order.email}.")
    return redirect("dashboard:order", slug=store.slug, order_id=order.pk)


@login_required
def orders(request, slug):
    store = _store(request, slug)
    form = OrderSearchForm(request.GET)
    form.is_valid()  # both fields are optional and free text: nothing to refuse
    query = form.cleaned_data.get("q", "")
    before = form.cleaned_data.get("before", "")
    found = orders_for_store(store=store, query=query)
    if before:
        # Ids sort by creation time, so "older than the last one shown" is a cheap keyset page.
        found = found.filter(pk__lt=before)
    page = list(found[: ORDERS_PER_PAGE + 1])
    older = page[ORDERS_PER_PAGE - 1].pk if len(page) > ORDERS_PER_PAGE else None
    context = {
        "store": store, "section": "orders", "form": form, "query": query, "before": before,
        "orders": page[:ORDERS_PER_PAGE], "older": older,
    }
    return render(request, "dashboard/orders.html", context)


def _refundable(order) -> int:
    if order.dispute_state in (DisputeState.OPEN, DisputeState.LOST):
        return 0  # refund_create refuses it: the processor does not refund a disputed charge
    pending = sum(r.amount for r in order.refunds.all() if r.status == RefundStatus.PENDING)
    return max(0, order.amount_total - order.amount_refunded - pending)


@login_required
@require_http_methods(["GET", "POST"])
def order_detail(request, slug, order_id):
    store = _store(request, slug)
    try:
        order = order_get(store=store, order_id=order_id)
    except NotFound:
        raise Http404 from None
    form = RefundForm(request.POST or None, currency=order.currency, locale=_locale(request), lines=list(order.lines.all()))
    if request.method == "POST" and form.is_valid():
        try:
            refund = refund_create(
                store=store, order_id=order.pk, amount=form.cleaned_data["amount"], reason=form.cleaned_data["reason"],
                line_id=form.cleaned_data.get("line"),
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, f"Refunded {format_money(refund.amount, refund.currency, _locale(request))}.")
            return redirect("dashboard:order", slug=store.slug, order_id=order.pk)
    context = {
        "store": store, "section": "orders", "order": order, "form": form,
        "refundable": _refundable(order), "refunds": order.refunds.order_by("-created_at", "-pk"),
        "entitlements": order.entitlements.select_related("product"),
        "cost": order_processing_cost(order=order),
        "license_keys": licenses_for_order(order=order),
        "disputes": disputes_for_order(order=order),
    }
    return _render(request, "dashboard/order.html", context, form)


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def api_keys(request, slug):
    store = _store(request, slug)
    form = ApiKeyCreateForm(request.POST or None)
    created = secret = None
    if request.method == "POST" and form.is_valid():
        # The secret is rendered in this response only: it is never stored, put in a URL or a session.
        created, secret = api_key_create(store=store, name=form.cleaned_data["name"])
        form = ApiKeyCreateForm()
    context = {
        "store": store, "section": "api_keys", "form": form, "keys": api_keys_for_store(store=store),
        "created": created, "secret": secret,
    }
    return _render(request, "dashboard/api_keys.html", context, form)


@login_required
@require_POST
def api_key_revoke_view(request, slug, key_id):
    store = _store(request, slug)
    try:
        key = api_key_revoke(store=store, key_id=key_id)
    except NotFound:
        raise Http404 from None
    messages.success(request, f"Revoked the key {key.prefix}….")
    return redirect("dashboard:api_keys", slug=store.slug)
