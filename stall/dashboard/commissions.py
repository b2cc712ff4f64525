"""The creator's commissions: the queue, one commission (brief, thread, deliver, decline), and
making a commission offer (a service product with its slots). Thin: parse, call one service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from stall.catalog.models import ProductKind, ProductStatus
from stall.catalog.services import product_create
from stall.commissions import selectors as commission_selectors
from stall.commissions import services as commission_services
from stall.commissions.forms import DeclineForm, DeliverForm, MessageForm, OfferForm
from stall.commissions.models import Author, FileRole
from stall.commissions.views import file_response
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import parse_amount

from .views import _locale, _render, _store


def _commission(store, commission_id):
    try:
        return commission_services.commission_for_store(store=store, commission_id=commission_id)
    except StallError:
        raise Http404 from None


@login_required
@require_http_methods(["GET", "POST"])
def commissions(request, slug):
    """The queue, and a new commission offer (a service product) in one form."""
    store = _store(request, slug)
    offer_form = OfferForm(request.POST or None, prefix="offer")
    name, price = request.POST.get("name", ""), request.POST.get("price", "")
    errors = {}
    if request.method == "POST" and offer_form.is_valid():
        try:
            amount = parse_amount(price, store.currency, locale=_locale(request), param="price")
            product = product_create(store=store, name=name, amount=amount, kind=ProductKind.SERVICE,
                                     description=request.POST.get("description", ""), status=ProductStatus.PUBLISHED)
            commission_services.service_offer_set(product=product, slots=offer_form.cleaned_data["slots"],
                                                  auto_accept_days=offer_form.cleaned_data["auto_accept_days"])
        except StallError as exc:
            errors[exc.param if exc.param in ("name", "price") else "name"] = exc.message
        else:
            messages.success(request, f"“{product.name}” is open for commissions.")
            return redirect("dashboard:commissions", slug=store.slug)
    offers = commission_selectors.service_offers_for_store(store=store)
    services = [(p, offers.get(p.pk)) for p in store.products.filter(kind=ProductKind.SERVICE).order_by("-pk")]
    context = {
        "store": store, "section": "commissions", "queue": commission_selectors.commission_queue(store=store),
        "closed": commission_selectors.commissions_for_store(store=store).exclude(
            status__in=("reserved", "awaiting_delivery", "delivered"))[:20],
        "services": services, "offer_form": offer_form, "name": name, "price": price, "errors": errors,
    }
    response = _render(request, "dashboard/commissions.html", context, offer_form)
    if errors:
        response.status_code = 400
    return response


def _page(request, store, commission, *, message_form=None, deliver_form=None, decline_form=None, status=200):
    files = list(commission.files.all())
    context = {
        "store": store, "section": "commissions", "commission": commission,
        "brief_files": [f for f in files if f.role == FileRole.BRIEF],
        "delivery_files": [f for f in files if f.role == FileRole.DELIVERY],
        "thread": list(commission.messages.all()), "form": message_form or MessageForm(),
        "deliver_form": deliver_form or DeliverForm(), "decline_form": decline_form or DeclineForm(),
    }
    response = _render(request, "dashboard/commission.html", context)
    response.status_code = status
    return response


@login_required
@require_http_methods(["GET", "POST"])
def commission(request, slug, commission_id):
    """One commission; POST sends a message to the buyer."""
    store = _store(request, slug)
    item = _commission(store, commission_id)
    if request.method == "GET":
        return _page(request, store, item)
    form = MessageForm(request.POST)
    if form.is_valid():
        try:
            commission_services.commission_message_add(commission=item, author=Author.CREATOR, body=form.cleaned_data["body"])
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Message sent.")
            return redirect("dashboard:commission", slug=store.slug, commission_id=item.pk)
    return _page(request, store, item, message_form=form, status=400)


@login_required
@require_POST
def commission_deliver(request, slug, commission_id):
    store = _store(request, slug)
    item = _commission(store, commission_id)
    form = DeliverForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            commission_services.commission_deliver(store=store, commission_id=item.pk, note=form.cleaned_data["note"],
                                                   files=form.cleaned_data["files"])
        except StallError as exc:
            form_add_stall_error(form, exc)
            item.refresh_from_db()
        else:
            messages.success(request, "Delivered. The buyer is told by email.")
            return redirect("dashboard:commission", slug=store.slug, commission_id=item.pk)
    return _page(request, store, item, deliver_form=form, status=400)


@login_required
@require_POST
def commission_decline(request, slug, commission_id):
    store = _store(request, slug)
    item = _commission(store, commission_id)
    form = DeclineForm(request.POST)
    if form.is_valid():
        try:
            commission_services.commission_decline(store=store, commission_id=item.pk, reason=form.cleaned_data["reason"])
        except StallError as exc:
            form_add_stall_error(form, exc)
            item.refresh_from_db()
        else:
            messages.success(request, "Declined and refunded in full.")
            return redirect("dashboard:commission", slug=store.slug, commission_id=item.pk)
    return _page(request, store, item, decline_form=form, status=400)


@login_required
def commission_file(request, slug, commission_id, file_id):
    store = _store(request, slug)
    item = _commission(store, commission_id)
    try:
        return file_response(commission_selectors.commission_file(commission=item, file_id=file_id))
    except NotFound:
        raise Http404 from None
