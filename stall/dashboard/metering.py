"""Dashboard pages for usage billing: meters and plans (create, edit), customers' usage
subscriptions, a customer's usage per meter with a chart per day (server-rendered SVG, a table
beneath) and their charges, and a period's events as CSV. Thin views over stall.metering's
services and selectors; another store's meter, plan or customer is a 404.

Unit prices are typed in minor units with up to 6 decimals ("0.2" is 0.2¢ in USD), the way the
API takes them, because a sub-cent price has no natural form in the store's major unit."""

import csv
import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.metering import billing as usage_billing
from stall.metering import selectors as usage_selectors
from stall.metering import services as usage_services
from stall.metering.models import Aggregation, BillingMode, PriceModel
from stall.metering.rating import round_half_up
from stall.orders.tiers import tiers_for_store

from .forms import AmountField, _AmountsForm, amount_for_input
from .views import _locale, _render, _store

SECTION = "usage"


def _get(fn, **kwargs):
    try:
        return fn(**kwargs)
    except NotFound:
        raise Http404 from None


# --- Forms ----------------------------------------------------------------------------------


class MeterForm(forms.Form):
    key = forms.CharField(label="Key", max_length=64, help_text="How prices and the API name it, e.g. api_calls.")
    name = forms.CharField(label="Name", max_length=120)
    event_name = forms.CharField(label="Event name", max_length=120, help_text="The events it counts, e.g. api.call.")
    aggregation = forms.ChoiceField(label="Aggregation", choices=Aggregation.choices)
    property = forms.CharField(label="Property", max_length=64, required=False,
                               help_text="The property summed, maxed, counted once or read last; not for a count.")
    filters = forms.CharField(label="Filter", required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text='Optional, as JSON: {"region": "eu"} counts only events whose region is eu.')

    def clean_filters(self):
        text = self.cleaned_data["filters"].strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError('Write the filter as JSON, e.g. {"region": "eu"}.') from None


class MeterEditForm(MeterForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].disabled = True
        self.fields["key"].help_text = "A meter's key does not change."


def _tiers_text(tiers: list) -> str:
    return ", ".join(f"{t['up_to'] if t['up_to'] is not None else '*'}:{t['unit_price']}" for t in tiers)


def _tiers_parse(text: str) -> list[dict]:
    tiers = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        up_to, sep, price = part.partition(":")
        if not sep:
            raise forms.ValidationError("Write tiers as up_to:price, the last one *:price — e.g. 1000:0, *:0.1.")
        tiers.append({"up_to": None if up_to.strip() == "*" else up_to.strip(), "unit_price": price.strip()})
    return tiers


class PlanForm(_AmountsForm):
    name = forms.CharField(label="Name", max_length=120)
    fixed_fee = AmountField(label="Fixed fee a month", required=False, help_text="Optional, charged with the usage.")
    tier = forms.ChoiceField(
        label="Membership tier", required=False,
        help_text="Members of this tier are put on the plan (billed in arrears) while they are members; "
                  "the tier's own price stays with the membership.")

    def __init__(self, *args, meters=(), tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["fixed_fee"].label += f" ({self.currency})"
        self.fields["tier"].choices = [("", "No tier"), *tiers]
        self.meters = list(meters)
        for meter in self.meters:
            p = f"m_{meter.pk}"
            self.fields[f"{p}_model"] = forms.ChoiceField(
                label=f"{meter.name}: price", required=False,
                choices=[("", "Not on this plan"), *PriceModel.choices])
            self.fields[f"{p}_unit_price"] = forms.CharField(
                label=f"{meter.name}: unit price (minor units)", required=False, max_length=40,
                help_text="Per unit, or per package: 0.2 is 0.2¢ in USD; up to 6 decimals.")
            self.fields[f"{p}_package_size"] = forms.IntegerField(label=f"{meter.name}: package size", required=False,
                                                                  min_value=1)
            self.fields[f"{p}_tiers"] = forms.CharField(
                label=f"{meter.name}: tiers", required=False, max_length=500,
                help_text="Tiered: up_to:unit price, the last *:price — 1000:0, *:0.1 is the first 1,000 free, then 0.1.")

    def prices(self) -> list[dict]:
        data, out = self.cleaned_data, []
        for meter in self.meters:
            p = f"m_{meter.pk}"
            model = data.get(f"{p}_model")
            if not model:
                continue
            price = {"meter": meter.key, "model": model}
            if model == PriceModel.TIERED:
                try:
                    price["tiers"] = _tiers_parse(data.get(f"{p}_tiers") or "")
                except forms.ValidationError as exc:
                    self.add_error(f"{p}_tiers", exc)
                    raise
            else:
                price["unit_price"] = (data.get(f"{p}_unit_price") or "").strip()
                if model == PriceModel.PACKAGE:
                    price["package_size"] = data.get(f"{p}_package_size")
            out.append(price)
        return out

    def add_stall_error(self, exc: StallError, prices: list[dict]) -> None:
        """prices.1.unit_price goes to that meter's box."""
        param = exc.param or ""
        if param.startswith("prices."):
            index = int(param.split(".")[1])
            if index < len(prices):
                meter = next(m for m in self.meters if m.key == prices[index]["meter"])
                rest = param.split(".")[2] if len(param.split(".")) > 2 else "model"
                field = {"unit_price": "unit_price", "package_size": "package_size", "tiers": "tiers"}.get(rest, "model")
                self.add_error(f"m_{meter.pk}_{field}", exc.message)
                return
        form_add_stall_error(self, exc)

    def initial_from(self, plan) -> None:
        self.initial.update({"name": plan.name, "fixed_fee": amount_for_input(plan.fixed_fee or None, plan.currency),
                             "tier": plan.tier_id})
        for price in plan.prices.all():
            p = f"m_{price.meter_id}"
            self.initial.update({
                f"{p}_model": price.model, f"{p}_unit_price": format(price.unit_price.normalize(), "f"),
                f"{p}_package_size": price.package_size, f"{p}_tiers": _tiers_text(price.tiers),
            })


class SubscribeForm(forms.Form):
    email = forms.EmailField(label="Customer's email", help_text="A customer of the store (they bought, or allowed charges).")
    plan = forms.ChoiceField(label="Plan")
    billing = forms.ChoiceField(label="Billing", choices=BillingMode.choices, initial=BillingMode.LIVE,
                                widget=forms.RadioSelect)
    threshold = forms.IntegerField(label="Charge every (minor units)", min_value=1, initial=100,
                                   help_text="Live billing charges the wallet each time this much has accrued.")

    def __init__(self, *args, plans=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(p.pk, p.name) for p in plans]


# --- Pages ----------------------------------------------------------------------------------


@login_required
def usage(request, slug):
    """Meters, plans and the customers on them."""
    store = _store(request, slug)
    tier_names = dict(tiers_for_store(store_id=store.pk))
    plans = list(usage_selectors.plans_for_store(store=store))
    for plan in plans:
        plan.tier_name = tier_names.get(plan.tier_id, plan.tier_id)
    context = {
        "store": store, "section": SECTION,
        "meters": usage_selectors.meters_for_store(store=store),
        "plans": plans,
        "subscriptions": usage_selectors.usage_subscriptions_for_store(store=store)[:200],
    }
    return _render(request, "dashboard/usage.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def meter_new(request, slug):
    store = _store(request, slug)
    form = MeterForm(request.POST or None, initial={"aggregation": Aggregation.COUNT})
    if request.method == "POST" and form.is_valid():
        try:
            meter = usage_services.meter_create(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, f"Meter “{meter.name}” created.")
            return redirect("dashboard:usage", slug=store.slug)
    return _render(request, "dashboard/usage_form.html",
                   {"store": store, "section": SECTION, "form": form, "title": "New meter", "submit": "Create meter"}, form)


@login_required
@require_http_methods(["GET", "POST"])
def meter_edit(request, slug, meter_id):
    store = _store(request, slug)
    meter = _get(usage_selectors.meter_get, store=store, meter_id=meter_id)
    initial = {f: getattr(meter, f) for f in ("key", "name", "event_name", "aggregation", "property")}
    initial["filters"] = json.dumps(meter.filters) if meter.filters else ""
    form = MeterEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "key"}
        try:
            usage_services.meter_update(meter=meter, **data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Meter saved.")
            return redirect("dashboard:usage", slug=store.slug)
    return _render(request, "dashboard/usage_form.html",
                   {"store": store, "section": SECTION, "form": form, "title": meter.name, "submit": "Save meter"}, form)


def _plan_save(request, store, form, plan=None):
    if not form.is_valid():
        return None
    try:
        prices = form.prices()
    except forms.ValidationError:
        return None
    fee = form.cleaned_data["fixed_fee"] or 0
    tier = form.cleaned_data["tier"] or ""
    try:
        if plan is None:
            return usage_services.plan_create(store=store, name=form.cleaned_data["name"], fixed_fee=fee, prices=prices,
                                              tier=tier)
        return usage_services.plan_update(plan=plan, name=form.cleaned_data["name"], fixed_fee=fee, prices=prices,
                                          tier=tier)
    except StallError as exc:
        form.add_stall_error(exc, prices)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def plan_new(request, slug):
    store = _store(request, slug)
    meters = usage_selectors.meters_for_store(store=store).order_by("key")
    form = PlanForm(request.POST or None, currency=store.currency, locale=_locale(request), meters=meters,
                    tiers=tiers_for_store(store_id=store.pk))
    if request.method == "POST" and (plan := _plan_save(request, store, form)) is not None:
        messages.success(request, f"Plan “{plan.name}” created.")
        return redirect("dashboard:usage", slug=store.slug)
    return _render(request, "dashboard/usage_form.html",
                   {"store": store, "section": SECTION, "form": form, "title": "New plan", "submit": "Create plan"}, form)


@login_required
@require_http_methods(["GET", "POST"])
def plan_edit(request, slug, plan_id):
    store = _store(request, slug)
    plan = _get(usage_selectors.plan_get, store=store, plan_id=plan_id)
    meters = usage_selectors.meters_for_store(store=store).order_by("key")
    form = PlanForm(request.POST or None, currency=store.currency, locale=_locale(request), meters=meters,
                    tiers=tiers_for_store(store_id=store.pk))
    form.initial_from(plan)
    if request.method == "POST" and _plan_save(request, store, form, plan) is not None:
        messages.success(request, "Plan saved.")
        return redirect("dashboard:usage", slug=store.slug)
    return _render(request, "dashboard/usage_form.html",
                   {"store": store, "section": SECTION, "form": form, "title": plan.name, "submit": "Save plan"}, form)


@login_required
@require_http_methods(["GET", "POST"])
def usage_subscription_new(request, slug):
    store = _store(request, slug)
    form = SubscribeForm(request.POST or None, plans=usage_selectors.plans_for_store(store=store))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        customer = usage_selectors.customers_for_store(store=store).filter(email__iexact=data["email"]).first()
        if customer is None:
            form.add_error("email", "No customer of this store has this email.")
        else:
            try:
                usage_services.usage_subscription_create(store=store, customer_id=customer.pk, plan_id=data["plan"],
                                                         billing=data["billing"], threshold=data["threshold"])
            except StallError as exc:
                form_add_stall_error(form, exc)
            else:
                messages.success(request, f"{customer.email} is on the plan.")
                return redirect("dashboard:usage_customer", slug=store.slug, customer_id=customer.pk)
    return _render(request, "dashboard/usage_form.html",
                   {"store": store, "section": SECTION, "form": form, "title": "Put a customer on a plan",
                    "submit": "Subscribe"}, form)


def _day(value: str | None, default):
    try:
        return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time.min, tzinfo=UTC) if value else default
    except ValueError:
        return default


CHART_W, CHART_H, CHART_PAD = 600, 160, 24


def chart_bars(days: list[tuple], start: datetime, end: datetime) -> dict:
    """Bars for an SVG chart, one per day of [start, end), scaled to the largest day."""
    by_day = dict(days)
    count = max(1, min(92, (end.date() - start.date()).days + (1 if end.time() != time.min else 0)))
    dates = [start.date() + timedelta(days=n) for n in range(count)]
    top = max((by_day.get(d, Decimal(0)) for d in dates), default=Decimal(0)) or Decimal(1)
    width = (CHART_W - 2 * CHART_PAD) / count
    bars = []
    for n, d in enumerate(dates):
        value = by_day.get(d, Decimal(0))
        height = float(value / top) * (CHART_H - 2 * CHART_PAD)
        bars.append({"x": round(CHART_PAD + n * width, 1), "y": round(CHART_H - CHART_PAD - height, 1),
                     "w": round(max(1.0, width - 2), 1), "h": round(height, 1), "day": d, "value": value})
    return {"bars": bars, "top": top, "w": CHART_W, "h": CHART_H, "base": CHART_H - CHART_PAD}


@login_required
def usage_customer(request, slug, customer_id):
    """A customer's usage over a period, per meter: a bar per day and the table beneath, the
    cost so far, and the charges and invoices of their subscription."""
    store = _store(request, slug)
    customer = _get(usage_selectors.customer_get, store=store, customer_id=customer_id)
    sub = usage_selectors.usage_subscription_for_customer(customer_id=customer.pk)
    default_start = sub.period_start if sub else datetime.now(tz=UTC).replace(day=1, hour=0, minute=0, second=0,
                                                                                microsecond=0)
    start = _day(request.GET.get("from"), default_start)
    end = _day(request.GET.get("to"), None)
    end = end + timedelta(days=1) if end else None  # "to" is the last day shown
    summary = usage_selectors.customer_usage_get(store=store, customer_id=customer.pk, start=start, end=end)
    meters = []
    for u in summary.meters:
        days = usage_selectors.meter_quantity_per_day(meter=u.meter, customer_id=customer.pk, start=summary.start,
                                                      end=summary.end)
        meters.append({"usage": u, "chart": chart_bars(days, summary.start, summary.end), "days": days})
    context = {
        "store": store, "section": SECTION, "customer": customer, "sub": sub, "summary": summary, "meters": meters,
        "from": summary.start.date().isoformat(), "to": (summary.end - timedelta(seconds=1)).date().isoformat(),
        "charges": usage_selectors.charges_for_subscription(subscription=sub)[:50] if sub else [],
        "invoices": usage_selectors.invoices_for_subscription(subscription=sub)[:12] if sub else [],
        "total_amount": round_half_up(summary.total),
    }
    return _render(request, "dashboard/usage_customer.html", context)


@login_required
@require_http_methods(["POST"])
def usage_subscription_action(request, slug, subscription_id, action):
    store = _store(request, slug)
    sub = _get(usage_selectors.usage_subscription_get, store=store, subscription_id=subscription_id)
    if action == "retry":
        sub = usage_billing.usage_subscription_retry(subscription=sub)
        messages.success(request, "Charged." if sub.status == "active" else f"Still past due: {sub.failure_message}")
    elif action == "cancel":
        usage_services.usage_subscription_cancel(subscription=sub)
        messages.success(request, "Usage subscription cancelled.")
    else:
        raise Http404
    return redirect("dashboard:usage_customer", slug=store.slug, customer_id=sub.customer_id)


class _Echo:
    def write(self, value):
        return value


@login_required
def usage_events_csv(request, slug):
    """A period's events (default: the last 35 days), oldest first, streamed as CSV."""
    store = _store(request, slug)
    now = datetime.now(tz=UTC)
    start = _day(request.GET.get("from"), now - timedelta(days=35))
    end = _day(request.GET.get("to"), None)
    end = end + timedelta(days=1) if end else now + timedelta(days=1)
    rows = usage_selectors.events_for_export(store=store, start=start, end=end,
                                             customer_id=request.GET.get("customer") or None)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(["id", "customer", "name", "timestamp", "properties", "received_at"])
        for event_id, customer_id, name, stamp, props, received in rows:
            yield writer.writerow([event_id, customer_id, name, _iso(stamp), json.dumps(props, sort_keys=True),
                                   _iso(received)])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{store.slug}-events-{start.date()}-{end.date()}.csv"'
    return response


def _iso(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
