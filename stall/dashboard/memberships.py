"""Dashboard pages for memberships: tiers (list with members and MRR, create, edit, archive),
members (list with filters, a member's page with payment history, cancel, complimentary), the
store's membership figures, and gating a post to tiers from its editor. Thin views over
stall.memberships' services; another store's tier or member is a 404."""

from datetime import UTC, datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.dateformat import format as date_format
from django.views.decorators.http import require_http_methods, require_POST

from stall.content import selectors as content_selectors
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.memberships import selectors as member_selectors
from stall.memberships import services as member_services
from stall.memberships import tiers as member_tiers
from stall.memberships.models import Interval, SubscriptionStatus, TierStatus

from .forms import AmountField, _AmountsForm, amount_for_input
from .views import _locale, _render, _store

MEMBERS_PER_PAGE = 50
INTERVAL_FIELDS = {Interval.MONTH: "monthly", Interval.YEAR: "yearly", Interval.WEEK: "weekly"}


class TierForm(_AmountsForm):
    name = forms.CharField(label="Name", max_length=120)
    description = forms.CharField(label="Description", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4}),
                                  help_text="Markdown is fine. Shown on the tier's join page.")
    benefits = forms.CharField(label="Benefits", required=False, widget=forms.Textarea(attrs={"rows": 4}),
                               help_text="One per line, e.g. “Every post in full”. Up to 20.")
    monthly = AmountField(label="Monthly price", required=False, help_text="Leave a price empty to not offer that interval.")
    yearly = AmountField(label="Yearly price", required=False)
    weekly = AmountField(label="Weekly price", required=False, help_text="No price at all makes a free tier (an audience sign-up).")
    trial_days = forms.IntegerField(label="Free trial (days)", min_value=0, max_value=365, initial=0,
                                    help_text="0 for no trial. A trial charges nothing until it ends.")
    member_limit = forms.IntegerField(label="Member limit", required=False, min_value=1, max_value=10**9,
                                      help_text="Optional: how many members the tier takes.")
    position = forms.IntegerField(label="Order on the store page", required=False, min_value=0, max_value=10**6,
                                  help_text="Smallest first. Empty puts a new tier last.")
    cap_to_subscribe = forms.BooleanField(
        label="Cap-to-subscribe", required=False,
        help_text="Readers who pay per post for posts gated to this tier become members once their month's unlocks reach "
                  "the monthly price: never more than the membership would cost.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in INTERVAL_FIELDS.values():
            self.fields[name].label += f" ({self.currency})"

    def prices(self) -> list[dict]:
        data = self.cleaned_data
        return [{"interval": interval, "amount": data[name]} for interval, name in INTERVAL_FIELDS.items()
                if data.get(name) is not None]

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {
            "name": data["name"], "description": data["description"],
            "benefits": [line.strip() for line in data["benefits"].splitlines() if line.strip()],
            "prices": self.prices(), "trial_days": data["trial_days"] or 0, "member_limit": data["member_limit"],
            "cap_to_subscribe": data["cap_to_subscribe"],
        }
        if data["position"] is not None:  # empty: last for a new tier, unchanged for one edited
            kwargs["position"] = data["position"]
        return kwargs

    def add_stall_error(self, exc: StallError) -> None:
        """A price's error (``prices[1].amount``) goes to that price's box."""
        param = exc.param or ""
        if param.startswith("prices["):
            index = int(param[len("prices["):param.index("]")])
            prices = self.prices()
            if index < len(prices):
                self.add_error(INTERVAL_FIELDS[prices[index]["interval"]], exc.message)
                return
        if param == "cap_to_subscribe":
            self.add_error("cap_to_subscribe", exc.message)
            return
        form_add_stall_error(self, exc)


class MemberFilterForm(forms.Form):
    tier = forms.ChoiceField(label="Tier", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *SubscriptionStatus.choices])

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [("", "Every tier"), *((t.pk, t.name) for t in tiers)]


class ComplimentaryForm(forms.Form):
    tier = forms.ChoiceField(label="Tier")
    email = forms.EmailField(label="Member's email", widget=forms.EmailInput(attrs={"autocomplete": "off", "inputmode": "email"}))
    ends_on = forms.DateField(label="Free until", widget=forms.DateInput(attrs={"type": "date"}),
                              help_text="The membership ends that day unless the member chooses to pay.")

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [(t.pk, t.name) for t in tiers]


class MemberCancelForm(forms.Form):
    when = forms.ChoiceField(label="When", widget=forms.RadioSelect, initial="period_end", choices=[
        ("period_end", "At the end of the period: access until then"),
        ("now", "Now: access stops at once"),
    ])
    refund = forms.BooleanField(label="Refund the unused part of this period (cancelling now only)", required=False)


class PostTiersForm(forms.Form):
    tiers = forms.MultipleChoiceField(label="Members of these tiers read it in full", required=False,
                                      widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tiers"].choices = [
            (t.pk, t.name + (" (archived)" if t.status == TierStatus.ARCHIVED else "")) for t in tiers
        ]


def _tier(store, tier_id):
    try:
        return member_selectors.tier_get(store=store, tier_id=tier_id)
    except NotFound:
        raise Http404 from None


def _member(store, subscription_id):
    try:
        return member_selectors.subscription_get(store=store, subscription_id=subscription_id)
    except NotFound:
        raise Http404 from None


@login_required
def memberships(request, slug):
    """The store's membership figures and its tiers, each with members and MRR."""
    store = _store(request, slug)
    locale = _locale(request)
    figures = member_selectors.tier_figures(store=store)
    empty = member_selectors.TierFigures(members=0, mrr=0)
    rows = [
        (tier, member_selectors.tier_prices_label(tier, locale), figures.get(tier.pk, empty))
        for tier in sorted(member_selectors.tiers_for_store(store=store).prefetch_related("prices__product"),
                           key=lambda t: (t.status != TierStatus.ACTIVE, t.position, t.pk))
    ]
    context = {"store": store, "section": "memberships", "rows": rows, "stats": member_selectors.membership_stats(store=store)}
    return _render(request, "dashboard/memberships.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def tier_new(request, slug):
    store = _store(request, slug)
    form = TierForm(request.POST or None, currency=store.currency, locale=_locale(request))
    if request.method == "POST" and form.is_valid():
        try:
            tier = member_tiers.tier_create(store=store, **form.service_kwargs())
        except StallError as exc:
            form.add_stall_error(exc)
        else:
            messages.success(request, f"“{tier.name}” is ready. Gate posts to it from their editor.")
            return redirect("dashboard:memberships", slug=store.slug)
    return _render(request, "dashboard/tier_new.html", {"store": store, "section": "memberships", "form": form}, form)


def _tier_initial(tier, store, locale) -> dict:
    prices = {p.interval: p for p in tier.prices.all() if p.product.status != "archived" or tier.status != TierStatus.ACTIVE}
    return {
        "name": tier.name, "description": tier.description, "benefits": "\n".join(tier.benefits),
        "trial_days": tier.trial_days, "member_limit": tier.member_limit, "position": tier.position,
        "cap_to_subscribe": tier.cap_to_subscribe,
        **{name: amount_for_input(prices[i].amount if i in prices else None, store.currency, locale) for i, name in INTERVAL_FIELDS.items()},
    }


@login_required
@require_http_methods(["GET", "POST"])
def tier_edit(request, slug, tier_id):
    store = _store(request, slug)
    tier = _tier(store, tier_id)
    locale = _locale(request)
    form = TierForm(request.POST or None, currency=store.currency, locale=locale, initial=_tier_initial(tier, store, locale))
    if request.method == "POST" and form.is_valid():
        try:
            tier = member_tiers.tier_update(tier=tier, **form.service_kwargs())
        except StallError as exc:
            form.add_stall_error(exc)
        else:
            messages.success(request, "Tier saved.")
            return redirect("dashboard:tier", slug=store.slug, tier_id=tier.pk)
    figures = member_selectors.tier_figures(store=store).get(tier.pk)
    context = {
        "store": store, "section": "memberships", "tier": tier, "form": form, "figures": figures,
        "emails": member_selectors.tier_member_emails(tier=tier),
    }
    return _render(request, "dashboard/tier_edit.html", context, form)


@login_required
@require_POST
def tier_archive(request, slug, tier_id):
    store = _store(request, slug)
    tier = member_tiers.tier_archive(tier=_tier(store, tier_id))
    messages.success(request, f"“{tier.name}” is archived: no new members; its members keep their membership until they cancel.")
    return redirect("dashboard:tier", slug=store.slug, tier_id=tier.pk)


@login_required
def members(request, slug):
    """Members with filters by tier and status, newest first."""
    store = _store(request, slug)
    tiers = list(member_selectors.tiers_for_store(store=store))
    form = MemberFilterForm(request.GET, tiers=tiers)
    filters = form.cleaned_data if form.is_valid() else {}
    found = member_selectors.subscriptions_for_store(store=store, status=filters.get("status") or None,
                                                     tier_id=filters.get("tier") or None).select_related("tier", "saved_method")
    before = request.GET.get("before", "")
    if before:
        found = found.filter(pk__lt=before)
    page = list(found[: MEMBERS_PER_PAGE + 1])
    older = page[MEMBERS_PER_PAGE - 1].pk if len(page) > MEMBERS_PER_PAGE else None
    context = {
        "store": store, "section": "memberships", "form": form, "members": page[:MEMBERS_PER_PAGE], "older": older,
        "before": before, "has_tiers": bool(tiers), "filtered": bool(filters.get("status") or filters.get("tier")),
    }
    return _render(request, "dashboard/members.html", context, form)


@login_required
@require_http_methods(["GET", "POST"])
def member_new(request, slug):
    """Give a complimentary membership, free until a date."""
    store = _store(request, slug)
    tiers = [t for t in member_selectors.tiers_for_store(store=store) if t.status == TierStatus.ACTIVE]
    form = ComplimentaryForm(request.POST or None, tiers=tiers)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ends_at = datetime.combine(data["ends_on"], time(23, 59), tzinfo=UTC)
        try:
            sub = member_services.subscription_complimentary_create(
                tier=_tier(store, data["tier"]), email=data["email"], ends_at=ends_at)
        except StallError as exc:
            if exc.param == "ends_at":
                form.add_error("ends_on", exc.message)
            else:
                form_add_stall_error(form, exc)
        else:
            messages.success(request, f"{sub.email} is a member of {sub.tier.name} until {date_format(data['ends_on'], 'M j, Y')}.")
            return redirect("dashboard:member", slug=store.slug, subscription_id=sub.pk)
    context = {"store": store, "section": "memberships", "form": form, "has_tiers": bool(tiers)}
    return _render(request, "dashboard/member_new.html", context, form)


def _member_page(request, store, sub, form=None):
    form = form or MemberCancelForm()
    context = {
        "store": store, "section": "memberships", "sub": sub, "form": form,
        "periods": member_selectors.subscription_payments(subscription=sub),
        "orders": member_selectors.subscription_orders(subscription=sub),
        "live": sub.status != SubscriptionStatus.ENDED,
    }
    return _render(request, "dashboard/member.html", context, form)


@login_required
def member(request, slug, subscription_id):
    store = _store(request, slug)
    sub = _member(store, subscription_id)
    return _member_page(request, store, sub)


@login_required
@require_POST
def member_cancel(request, slug, subscription_id):
    """Cancel a member at the period's end, or now with an optional pro-rata refund."""
    store = _store(request, slug)
    sub = _member(store, subscription_id)
    form = MemberCancelForm(request.POST)
    if form.is_valid():
        now = form.cleaned_data["when"] == "now"
        try:
            sub = member_services.subscription_cancel(subscription=sub, at_period_end=not now,
                                                      refund=now and form.cleaned_data["refund"])
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            if sub.status == SubscriptionStatus.ENDED:
                messages.success(request, f"{sub.email}'s membership has ended.")
            else:
                messages.success(request, f"{sub.email}'s membership ends on {date_format(sub.current_period_end, 'M j, Y')}.")
            return redirect("dashboard:member", slug=store.slug, subscription_id=sub.pk)
    return _member_page(request, store, _member(store, subscription_id), form)


def post_tiers_form(store, post, data=None) -> PostTiersForm | None:
    """The post editor's tier checkboxes; None when the store has no tiers."""
    tiers = [t for t in member_selectors.tiers_for_store(store=store)
             if t.status == TierStatus.ACTIVE or any(g.product_id == post.product_id for g in t.gates.all())]
    if not tiers:
        return None
    gated = [t.pk for t in tiers if any(g.product_id == post.product_id for g in t.gates.all())]
    return PostTiersForm(data, tiers=sorted(tiers, key=lambda t: (t.position, t.pk)), initial={"tiers": gated},
                         auto_id="gate_%s")


@login_required
@require_POST
def post_tiers(request, slug, post_id):
    """Gate the post to exactly the tiers ticked (none: not gated)."""
    store = _store(request, slug)
    try:
        post = content_selectors.post_get(store=store, post_id=post_id)
    except NotFound:
        raise Http404 from None
    form = post_tiers_form(store, post, request.POST)
    if form is None:
        raise Http404
    if form.is_valid():
        ids = form.cleaned_data["tiers"]
        member_tiers.post_gate_set(store=store, product_id=post.product_id, tier_ids=ids)
        messages.success(request, f"Gated to {len(ids)} tier{'s' if len(ids) != 1 else ''}." if ids else "Not gated: anyone may read or unlock it.")
        return redirect(reverse("dashboard:post", args=[store.slug, post.pk]) + "#tiers")
    messages.error(request, next(iter(form.errors.values()))[0])
    return redirect(reverse("dashboard:post", args=[store.slug, post.pk]) + "#tiers")
