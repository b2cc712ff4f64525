"""Dashboard pages for the audience: customers (list with totals, search, filters, a customer's
history, CSV export and import), broadcasts (write, preview, test, schedule or send, progress),
emailing a post to the list, and the creator's notification settings. Thin views over
stall.audience; another store's customer or broadcast is a 404."""

import csv
from datetime import UTC, datetime

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from stall.audience import broadcasts as bc
from stall.audience import selectors
from stall.audience.errors import ImportInvalid
from stall.audience.models import BroadcastStatus
from stall.audience.notifications import notification_settings_for, notification_settings_update
from stall.audience.segments import segments
from stall.audience.services import customers_import
from stall.content import selectors as content_selectors
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.memberships.models import Tier

from .views import _render, _store

CUSTOMERS_PER_PAGE = 50
YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]


class CustomerFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200,
                        widget=forms.TextInput(attrs={"placeholder": "Email or name", "type": "search"}))
    product = forms.ChoiceField(label="Bought", required=False)
    tier = forms.ChoiceField(label="Tier", required=False)
    campaign = forms.ChoiceField(label="Backed", required=False)
    wallet = forms.ChoiceField(label="Has a wallet", required=False, choices=YES_NO)
    subscribed = forms.ChoiceField(label="On the email list", required=False, choices=YES_NO)

    def __init__(self, *args, store, **kwargs):
        super().__init__(*args, **kwargs)
        products = segments_choices(store, "product")
        self.fields["product"].choices = [("", "Any product"), *products]
        self.fields["tier"].choices = [("", "Any tier"), *[(t.pk, t.name) for t in Tier.objects.filter(store=store).order_by("position", "name")]]
        self.fields["campaign"].choices = [("", "Any campaign"), *segments_choices(store, "campaign")]

    def filters(self) -> selectors.CustomerFilters:
        data = self.cleaned_data if self.is_valid() else {}
        yes_no = {"yes": True, "no": False}
        return selectors.CustomerFilters(
            q=data.get("q", "").strip(), product=data.get("product", ""), tier=data.get("tier", ""),
            campaign=data.get("campaign", ""),
            has_wallet=yes_no.get(data.get("wallet", "")), subscribed=yes_no.get(data.get("subscribed", "")),
        )


def segments_choices(store, key) -> list:
    for segment in segments():
        if segment.key == key and segment.choices:
            return [(str(ref), label) for ref, label in segment.choices(store=store)]
    return []


@login_required
def customers(request, slug):
    store = _store(request, slug)
    form = CustomerFilterForm(request.GET or None, store=store)
    filters = form.filters()
    found = selectors.customers_list(store=store, filters=filters)
    page = Paginator(found, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "store": store, "section": "audience", "form": form, "page": page, "query": query.urlencode(),
        "filtered": any(v for k, v in request.GET.items() if k != "page"), "counts": selectors.subscriber_counts(store=store),
    }
    return _render(request, "dashboard/customers.html", context)


@login_required
def customer(request, slug, customer_id):
    store = _store(request, slug)
    try:
        found = selectors.customer_get(store=store, customer_id=customer_id)
    except NotFound:
        raise Http404 from None
    context = {"store": store, "section": "audience", "customer": found, **selectors.customer_history(store=store, customer=found)}
    return _render(request, "dashboard/customer.html", context)


class _Echo:
    def write(self, value):
        return value


@login_required
def customers_export(request, slug):
    """Every customer matching the page's filters, as CSV, streamed (no list is held in memory)."""
    store = _store(request, slug)
    filters = CustomerFilterForm(request.GET or None, store=store).filters()
    writer = csv.writer(_Echo())
    found = selectors.customers_list(store=store, filters=filters).iterator(chunk_size=1000)

    def rows():
        yield writer.writerow(["email", "name", "first_seen", "last_seen", "orders", "spent_minor", "currency", "subscribed", "has_wallet"])
        for c in found:
            yield writer.writerow([c.email, c.name, c.first_seen.isoformat(), c.last_seen.isoformat(), c.order_count, c.spent,
                                   store.currency, "yes" if c.subscribed else "no", "yes" if c.has_wallet else "no"])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{store.slug}-customers.csv"'
    return response


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Columns: email, consent (yes or no), and optionally name. "
                           "Only rows with consent “yes” join the email list.")


@login_required
@require_http_methods(["GET", "POST"])
def customers_import_view(request, slug):
    store = _store(request, slug)
    form = ImportForm(request.POST or None, request.FILES or None)
    result = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > 10 * 1024 * 1024:
            form.add_error("file", "The file is larger than 10 MB.")
        else:
            try:
                result = customers_import(store=store, data=upload.read())
            except ImportInvalid as exc:
                form.add_error("file", exc.message)
    context = {"store": store, "section": "audience", "form": form, "result": result}
    return _render(request, "dashboard/customers_import.html", context, form)


# --- Broadcasts --------------------------------------------------------------------------------

class BroadcastForm(forms.Form):
    subject = forms.CharField(label="Subject", max_length=200)
    body = forms.CharField(label="Email", widget=forms.Textarea(attrs={"rows": 14}), max_length=100_000,
                           help_text="Markdown. Every email ends with your store's link and an unsubscribe link.")
    segment = forms.ChoiceField(label="Send to")
    segment_ref = forms.ChoiceField(label="Which one", required=False,
                                    help_text="For buyers of a product, members of a tier or readers of a post.")

    def __init__(self, *args, store, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [(s.key, s.label) for s in segments()]
        self.fields["segment_ref"].choices = [("", "—")] + [
            (s.label, [(str(ref), label) for ref, label in s.choices(store=store)]) for s in segments() if s.choices
        ]


def _broadcast(store, broadcast_id):
    try:
        return selectors.broadcast_get(store=store, broadcast_id=broadcast_id)
    except NotFound:
        raise Http404 from None


@login_required
def broadcasts(request, slug):
    store = _store(request, slug)
    rows = [(b, selectors.broadcast_progress(broadcast=b)) for b in selectors.broadcasts_list(store=store)[:100]]
    context = {"store": store, "section": "audience", "rows": rows, "counts": selectors.subscriber_counts(store=store)}
    return _render(request, "dashboard/broadcasts.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def broadcast_new(request, slug):
    store = _store(request, slug)
    form = BroadcastForm(request.POST or None, store=store, initial={"segment": "subscribers"})
    if request.method == "POST" and form.is_valid():
        try:
            broadcast = bc.broadcast_create(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            return redirect("dashboard:broadcast", slug=store.slug, broadcast_id=broadcast.pk)
    return _render(request, "dashboard/broadcast_new.html", {"store": store, "section": "audience", "form": form}, form)


def _broadcast_page(request, store, broadcast, form=None, schedule_error="", status=200):
    editable = broadcast.status in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED)
    if form is None and editable:
        form = BroadcastForm(store=store, initial={"subject": broadcast.subject, "body": broadcast.body,
                                                   "segment": broadcast.segment, "segment_ref": broadcast.segment_ref})
    context = {
        "store": store, "section": "audience", "broadcast": broadcast, "form": form, "editable": editable,
        "preview": bc.broadcast_preview(broadcast=broadcast), "progress": selectors.broadcast_progress(broadcast=broadcast),
        "recipient_count": bc.broadcast_recipient_count(broadcast=broadcast) if editable else None,
        "schedule_error": schedule_error,
    }
    return render(request, "dashboard/broadcast.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def broadcast(request, slug, broadcast_id):
    store = _store(request, slug)
    found = _broadcast(store, broadcast_id)
    if request.method == "GET":
        return _broadcast_page(request, store, found)
    form = BroadcastForm(request.POST, store=store)
    if form.is_valid():
        try:
            bc.broadcast_update(broadcast=found, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("dashboard:broadcast", slug=store.slug, broadcast_id=found.pk)
    return _broadcast_page(request, store, found, form=form, status=400)


@login_required
@require_POST
def broadcast_test(request, slug, broadcast_id):
    store = _store(request, slug)
    found = _broadcast(store, broadcast_id)
    bc.broadcast_send_test(broadcast=found, to=request.user.email)
    messages.success(request, f"A test is on its way to {request.user.email}.")
    return redirect("dashboard:broadcast", slug=store.slug, broadcast_id=found.pk)


@login_required
@require_POST
def broadcast_send(request, slug, broadcast_id):
    """Send now, schedule (``scheduled_at``, UTC), or take a scheduled broadcast back to draft."""
    store = _store(request, slug)
    found = _broadcast(store, broadcast_id)
    action = request.POST.get("action", "send")
    try:
        if action == "unschedule":
            bc.broadcast_unschedule(broadcast=found)
            messages.success(request, "Back to draft: it will not be sent until you send or schedule it.")
        elif action == "schedule":
            raw = (request.POST.get("scheduled_at") or "").strip()
            try:
                at = datetime.fromisoformat(raw).replace(tzinfo=UTC) if raw else None
            except ValueError:
                at = None
            if at is None:
                return _broadcast_page(request, store, found, schedule_error="Enter a date and time (UTC).", status=400)
            bc.broadcast_schedule(broadcast=found, at=at)
            messages.success(request, f"Scheduled for {at:%b %-d, %Y %H:%M} UTC.")
        else:
            bc.broadcast_schedule(broadcast=found)
            messages.success(request, "Sending.")
    except StallError as exc:
        return _broadcast_page(request, store, found, schedule_error=exc.message, status=400)
    return redirect("dashboard:broadcast", slug=store.slug, broadcast_id=found.pk)


@login_required
def broadcast_progress(request, slug, broadcast_id):
    """The progress box alone, polled by htmx while the broadcast sends."""
    store = _store(request, slug)
    found = _broadcast(store, broadcast_id)
    context = {"store": store, "broadcast": found, "progress": selectors.broadcast_progress(broadcast=found)}
    return _render(request, "dashboard/_broadcast_progress.html", context)


@login_required
@require_POST
def post_broadcast(request, slug, post_id):
    """"Email this post to subscribers": a draft broadcast of the post, to review and send."""
    store = _store(request, slug)
    try:
        post = content_selectors.post_get(store=store, post_id=post_id)
    except StallError:
        raise Http404 from None
    found = bc.broadcast_from_post(post=post)
    messages.success(request, "A draft of the post: check it, choose who gets it, and send.")
    return redirect("dashboard:broadcast", slug=store.slug, broadcast_id=found.pk)


# --- Notifications -----------------------------------------------------------------------------

class NotificationsForm(forms.Form):
    on_sale = forms.BooleanField(label="Each sale", required=False)
    on_tip = forms.BooleanField(label="Each tip", required=False)
    on_member = forms.BooleanField(label="Each new member", required=False)
    on_refund_request = forms.BooleanField(label="Each refund", required=False)
    on_pledge = forms.BooleanField(label="Each pledge to a campaign", required=False)
    daily_digest = forms.BooleanField(label="A daily digest (yesterday's orders, takings and new customers)", required=False)


@login_required
@require_http_methods(["GET", "POST"])
def notifications(request, slug):
    store = _store(request, slug)
    found = notification_settings_for(store=store)
    form = NotificationsForm(request.POST or None, initial={f: getattr(found, f) for f in NotificationsForm.base_fields})
    if request.method == "POST" and form.is_valid():
        notification_settings_update(store=store, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("dashboard:notifications", slug=store.slug)
    context = {"store": store, "section": "audience", "form": form, "owner_email": store.owner.email, "now": timezone.now()}
    return _render(request, "dashboard/notifications.html", context, form)
