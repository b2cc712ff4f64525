"""Dashboard pages for webhook endpoints: register, see the signing secret, roll it, pause, read the
delivery log and redeliver. Thin views over stall.integrations.webhooks."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.integrations import webhooks
from stall.integrations.selectors import (
    webhook_deliveries_for_endpoint,
    webhook_endpoints_for_store,
)

from .views import _render, _store


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="Endpoint URL", max_length=2000, help_text="Where Stall POSTs events, e.g. https://example.com/stall-hooks",
                          widget=forms.URLInput(attrs={"inputmode": "url", "autocomplete": "off"}))
    enabled_events = forms.MultipleChoiceField(
        label="Events", choices=[("*", "All events")] + [(t, t) for t in webhooks.EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple, initial=["*"],
    )
    description = forms.CharField(label="Description", max_length=200, required=False)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_endpoints(request, slug):
    store = _store(request, slug)
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = webhooks.webhook_endpoint_create(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Endpoint added. Verify deliveries with its signing secret.")
            return redirect("dashboard:webhook_endpoint", slug=store.slug, endpoint_id=endpoint.pk)
    context = {"store": store, "section": "webhooks", "form": form, "endpoints": webhook_endpoints_for_store(store=store)}
    return _render(request, "dashboard/webhooks.html", context, form)


def _endpoint(store, endpoint_id):
    try:
        return webhooks.webhook_endpoint_get(store=store, endpoint_id=endpoint_id)
    except NotFound:
        raise Http404 from None


@login_required
def webhook_endpoint(request, slug, endpoint_id):
    store = _store(request, slug)
    endpoint = _endpoint(store, endpoint_id)
    deliveries = webhook_deliveries_for_endpoint(endpoint=endpoint)[:50]
    context = {"store": store, "section": "webhooks", "endpoint": endpoint, "deliveries": deliveries}
    response = _render(request, "dashboard/webhook_endpoint.html", context)
    response["Cache-Control"] = "no-store"  # the page shows the signing secret
    return response


@login_required
@require_POST
def webhook_endpoint_action(request, slug, endpoint_id, action):
    store = _store(request, slug)
    endpoint = _endpoint(store, endpoint_id)
    if action == "roll":
        webhooks.webhook_endpoint_roll_secret(endpoint=endpoint)
        messages.success(request, "New signing secret in use. Update your receiver.")
    elif action in ("enable", "disable"):
        webhooks.webhook_endpoint_update(endpoint=endpoint, enabled=action == "enable")
        messages.success(request, "Endpoint enabled." if action == "enable" else "Endpoint paused.")
    elif action == "delete":
        webhooks.webhook_endpoint_delete(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
        return redirect("dashboard:webhooks", slug=store.slug)
    else:
        raise Http404
    return redirect("dashboard:webhook_endpoint", slug=store.slug, endpoint_id=endpoint.pk)


@login_required
@require_POST
def webhook_delivery_redeliver(request, slug, endpoint_id, delivery_id):
    store = _store(request, slug)
    endpoint = _endpoint(store, endpoint_id)
    try:
        webhooks.webhook_delivery_redeliver(store=store, delivery_id=delivery_id, endpoint_id=endpoint.pk)
    except NotFound:
        raise Http404 from None
    messages.success(request, "Sent again; the new attempt is at the top of the log.")
    return redirect("dashboard:webhook_endpoint", slug=store.slug, endpoint_id=endpoint.pk)
