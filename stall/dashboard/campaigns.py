"""Dashboard pages for crowdfunding: campaigns (list, create, edit, publish, cancel), their reward
tiers, backers (list and CSV export), updates emailed to backers, and the results after the
deadline. Thin views over stall.campaigns' services; another store's campaign is a 404."""

import csv
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from stall.campaigns import selectors as camp_selectors
from stall.campaigns import services as camp_services
from stall.campaigns import settlement as camp_settlement
from stall.campaigns.models import CampaignMode, CampaignStatus, Pledge, PledgeStatus
from stall.catalog.models import Product
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error

from .forms import AmountField, _AmountsForm, amount_for_input
from .views import _locale, _render, _store

BACKERS_PER_PAGE = 100


class CampaignForm(_AmountsForm):
    title = forms.CharField(label="Title", max_length=120)
    story = forms.CharField(label="Story", required=False, max_length=50_000, widget=forms.Textarea(attrs={"rows": 8}),
                            help_text="Markdown, with images: ![a caption](https://…).")
    cover = forms.ImageField(label="Cover image", required=False)
    goal = AmountField(label="Goal")
    deadline = forms.DateTimeField(label="Deadline", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                   input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"])
    time_zone = forms.CharField(label="Your time zone", max_length=64, initial="UTC",
                                help_text="The deadline is in this zone, e.g. Europe/Berlin or America/New_York.")
    mode = forms.ChoiceField(label="Mode", choices=CampaignMode.choices, widget=forms.RadioSelect,
                             initial=CampaignMode.ALL_OR_NOTHING,
                             help_text="All or nothing: pledges are collected only if the goal is met by the deadline. "
                                       "Keep what you raise: each pledge is collected as it comes.")

    def clean(self):
        data = super().clean()
        try:
            zone = ZoneInfo((data.get("time_zone") or "UTC").strip())
        except (ZoneInfoNotFoundError, ValueError):
            self.add_error("time_zone", "Unknown time zone: use a name such as Europe/Berlin.")
            return data
        if data.get("deadline") is not None:
            data["deadline"] = data["deadline"].replace(tzinfo=zone)
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {"title": data["title"], "story": data["story"], "goal": data["goal"], "deadline": data["deadline"],
                  "mode": data["mode"]}
        if data.get("cover"):
            kwargs["cover"] = data["cover"]
        return kwargs


class RewardTierForm(_AmountsForm):
    title = forms.CharField(label="Reward", max_length=120)
    description = forms.CharField(label="Description", required=False, max_length=5000,
                                  widget=forms.Textarea(attrs={"rows": 2}))
    min_amount = AmountField(label="Minimum pledge")
    quantity = forms.IntegerField(label="Quantity", required=False, min_value=1, max_value=10**6,
                                  help_text="Empty for unlimited.")
    estimated_delivery = forms.DateField(label="Estimated delivery", required=False,
                                         widget=forms.DateInput(attrs={"type": "date"}))
    product = forms.ChoiceField(label="Granted at success", required=False,
                                help_text="A product each backer of this reward gets when the campaign succeeds.")

    def __init__(self, *args, products=(), **kwargs):
        kwargs.setdefault("prefix", "tier")  # beside the campaign's own form on one page: ids stay unique
        super().__init__(*args, **kwargs)
        self.fields["product"].choices = [("", "Nothing"), *((p.pk, p.name) for p in products)]


class UpdateForm(forms.Form):
    title = forms.CharField(label="Title", max_length=120)
    body = forms.CharField(label="Update", max_length=20_000, widget=forms.Textarea(attrs={"rows": 5}))
    tier = forms.ChoiceField(label="Send to", required=False)

    def __init__(self, *args, tiers=(), **kwargs):
        kwargs.setdefault("prefix", "update")
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [("", "All backers"), *((t.pk, f"Backers of “{t.title}”") for t in tiers)]


def _campaign(store, campaign_id):
    try:
        return camp_services.campaign_get(store=store, campaign_id=campaign_id)
    except NotFound:
        raise Http404 from None


def _add_error(form, exc: StallError) -> None:
    form_add_stall_error(form, exc)


@login_required
def campaigns(request, slug):
    store = _store(request, slug)
    rows = [(c, camp_selectors.campaign_totals(campaign=c)) for c in store.campaigns.order_by("-id")[:100]]
    return _render(request, "dashboard/campaigns.html", {"store": store, "section": "campaigns", "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def campaign_new(request, slug):
    store = _store(request, slug)
    form = CampaignForm(request.POST or None, request.FILES or None, currency=store.currency, locale=_locale(request))
    if request.method == "POST" and form.is_valid():
        try:
            campaign = camp_services.campaign_create(store=store, **form.service_kwargs())
        except StallError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, "Campaign saved as a draft. Add rewards, then publish it.")
            return redirect("dashboard:campaign", slug=store.slug, campaign_id=campaign.pk)
    return _render(request, "dashboard/campaign_new.html", {"store": store, "section": "campaigns", "form": form}, form)


def _campaign_context(request, store, campaign, *, form=None, tier_form=None, update_form=None) -> dict:
    locale = _locale(request)
    tiers = list(camp_selectors.tiers_with_counts(campaign=campaign))
    products = Product.objects.filter(store=store).exclude(status="archived").order_by("name")
    deadline = campaign.deadline
    form = form or CampaignForm(currency=store.currency, locale=locale, initial={
        "title": campaign.title, "story": campaign.story, "goal": amount_for_input(campaign.goal, store.currency, locale),
        "deadline": deadline.strftime("%Y-%m-%dT%H:%M"), "time_zone": str(deadline.tzinfo or "UTC"), "mode": campaign.mode,
    })
    return {
        "store": store, "section": "campaigns", "campaign": campaign, "form": form, "tiers": tiers,
        "tier_form": tier_form or RewardTierForm(currency=store.currency, locale=locale, products=products),
        "update_form": update_form or UpdateForm(tiers=tiers),
        "totals": camp_selectors.campaign_totals(campaign=campaign), "days_left": camp_selectors.days_left(campaign),
        "editable": campaign.status in (CampaignStatus.DRAFT, CampaignStatus.LIVE),
        "backers": list(Pledge.objects.filter(campaign=campaign).select_related("tier").order_by("-id")[:BACKERS_PER_PAGE]),
        "updates": list(campaign.updates.select_related("tier")[:20]),
        "retried": Pledge.objects.filter(campaign=campaign, method="card", attempts__gt=1,
                                         status=PledgeStatus.COLLECTED).count(),
    }


@login_required
@require_http_methods(["GET", "POST"])
def campaign(request, slug, campaign_id):
    """A campaign's figures, its edit form, rewards, updates and backers; results once ended."""
    store = _store(request, slug)
    campaign = _campaign(store, campaign_id)
    form = None
    if request.method == "POST":
        form = CampaignForm(request.POST, request.FILES or None, currency=store.currency, locale=_locale(request))
        if form.is_valid():
            try:
                campaign = camp_services.campaign_update(campaign=campaign, **form.service_kwargs())
            except StallError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, "Campaign saved.")
                return redirect("dashboard:campaign", slug=store.slug, campaign_id=campaign.pk)
    context = _campaign_context(request, store, campaign, form=form)
    return _render(request, "dashboard/campaign.html", context, form)


@login_required
@require_POST
def campaign_tier_new(request, slug, campaign_id):
    store = _store(request, slug)
    campaign = _campaign(store, campaign_id)
    products = Product.objects.filter(store=store).exclude(status="archived")
    form = RewardTierForm(request.POST, currency=store.currency, locale=_locale(request), products=products)
    if form.is_valid():
        data = form.cleaned_data
        try:
            camp_services.tier_create(
                campaign=campaign, title=data["title"], description=data["description"], min_amount=data["min_amount"],
                quantity=data["quantity"], estimated_delivery=data["estimated_delivery"], product=data["product"] or None,
            )
        except StallError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, "Reward added.")
            return redirect("dashboard:campaign", slug=store.slug, campaign_id=campaign.pk)
    return _render(request, "dashboard/campaign.html", _campaign_context(request, store, campaign, tier_form=form), form)


@login_required
@require_POST
def campaign_action(request, slug, campaign_id, action):
    store = _store(request, slug)
    campaign = _campaign(store, campaign_id)
    try:
        if action == "publish":
            camp_services.campaign_publish(campaign=campaign)
            messages.success(request, "Published: the campaign takes pledges until its deadline.")
        elif action == "cancel":
            camp_settlement.campaign_cancel(campaign=campaign)
            messages.success(request, "Canceled: held pledges were released and no card will be charged.")
        else:
            raise Http404
    except StallError as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:campaign", slug=store.slug, campaign_id=campaign.pk)


@login_required
@require_POST
def campaign_update_new(request, slug, campaign_id):
    store = _store(request, slug)
    campaign = _campaign(store, campaign_id)
    tiers = list(campaign.tiers.all())
    form = UpdateForm(request.POST, tiers=tiers)
    if form.is_valid():
        data = form.cleaned_data
        tier = next((t for t in tiers if t.pk == data["tier"]), None)
        try:
            camp_services.campaign_update_post(campaign=campaign, title=data["title"], body=data["body"], tier=tier)
        except StallError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, "Update posted and emailed to backers.")
            return redirect("dashboard:campaign", slug=store.slug, campaign_id=campaign.pk)
    return _render(request, "dashboard/campaign.html", _campaign_context(request, store, campaign, update_form=form), form)


class _Echo:
    def write(self, value):
        return value


@login_required
def campaign_backers_csv(request, slug, campaign_id):
    """Every pledge as CSV, streamed from the database a page at a time."""
    store = _store(request, slug)
    campaign = _campaign(store, campaign_id)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["pledge", "email", "reward", "amount", "currency", "method", "status", "message",
                               "created_at", "collected_at"])
        queryset = Pledge.objects.filter(campaign=campaign).select_related("tier")
        for p in camp_selectors.pledges_stream(queryset):
            yield writer.writerow([
                p.pk, p.email, p.tier.title if p.tier else "", f"{p.amount}", p.currency, p.method, p.status,
                p.message, p.created_at.isoformat(), p.collected_at.isoformat() if p.collected_at else "",
            ])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="backers-{campaign.pk}.csv"'
    return response

