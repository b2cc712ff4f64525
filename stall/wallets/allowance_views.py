"""Buyers' pages for allowances: let a store charge the wallet without a click, see usage, revoke.

Thin views: the form parses what the buyer typed, one service decides. A buyer who is not signed
in is offered a sign-in link by email that brings them back to the page they were on.
"""

from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from stall.accounts.services import buyer_from_request, magic_link_request_allowed
from stall.core.dates import month_day_time_format
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import client_address
from stall.core.money import amount_for_input, format_money, parse_amount
from stall.orders.tasks import library_link_send
from stall.stores.models import Store
from stall.stores.selectors import store_get_public

from .allowances import (
    AllowanceNotFound,
    allowance_grant,
    allowance_live_get,
    allowance_revoke,
    allowance_usage,
    allowances_for_buyer,
)
from .models import AllowancePeriod

_INPUT_STYLE = "width:100%;font:inherit;padding:.55rem .65rem;border:1px solid var(--line);border-radius:8px;background:#fff"


# "a day" as the period's choice, and the whole sentence after saving, in the buyer's language.
PERIOD_WORDS = {
    AllowancePeriod.DAY: gettext_lazy("a day"),
    AllowancePeriod.WEEK: gettext_lazy("a week"),
    AllowancePeriod.MONTH: gettext_lazy("a month"),
}
ALLOWED_MESSAGES = {
    AllowancePeriod.DAY: gettext_lazy("%(store)s may now charge your wallet up to %(amount)s a day."),
    AllowancePeriod.WEEK: gettext_lazy("%(store)s may now charge your wallet up to %(amount)s a week."),
    AllowancePeriod.MONTH: gettext_lazy("%(store)s may now charge your wallet up to %(amount)s a month."),
}


# What an allowance lets a store charge and what it has used, one sentence per period so that
# each language words it its own way.
PERIOD_LIMITS = {
    AllowancePeriod.DAY: gettext_lazy("%(amount)s a day"),
    AllowancePeriod.WEEK: gettext_lazy("%(amount)s a week"),
    AllowancePeriod.MONTH: gettext_lazy("%(amount)s a month"),
}
PERIOD_USED = {
    AllowancePeriod.DAY: gettext_lazy("Used this day: %(used)s · left: %(left)s · resets %(when)s UTC"),
    AllowancePeriod.WEEK: gettext_lazy("Used this week: %(used)s · left: %(left)s · resets %(when)s UTC"),
    AllowancePeriod.MONTH: gettext_lazy("Used this month: %(used)s · left: %(left)s · resets %(when)s UTC"),
}
PERIOD_USED_SHORT = {
    AllowancePeriod.DAY: gettext_lazy("%(used)s used this day, %(left)s left."),
    AllowancePeriod.WEEK: gettext_lazy("%(used)s used this week, %(left)s left."),
    AllowancePeriod.MONTH: gettext_lazy("%(used)s used this month, %(left)s left."),
}


def _shown(usage, locale: str) -> dict:
    """An allowance's usage with its sentences in the buyer's language, money and dates their way."""
    allowance = usage.allowance
    money = {
        "used": format_money(usage.used, allowance.currency, locale),
        "left": format_money(usage.remaining, allowance.currency, locale),
    }
    return {
        "u": usage,
        "limit": str(PERIOD_LIMITS[allowance.period]) % {"amount": format_money(allowance.amount, allowance.currency, locale)},
        "used": str(PERIOD_USED[allowance.period]) % {**money, "when": month_day_time_format(usage.period_end)},
        "used_short": str(PERIOD_USED_SHORT[allowance.period]) % money,
    }


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


class AllowanceForm(forms.Form):
    amount = forms.CharField(
        label=gettext_lazy("Up to"), max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    period = forms.ChoiceField(label=gettext_lazy("Per"), choices=AllowancePeriod.choices, initial=AllowancePeriod.DAY)
    expires_at = forms.DateField(
        label=gettext_lazy("Until (optional)"), required=False,
        help_text=gettext_lazy("The last day it may charge you (UTC). Empty: until you revoke it."),
        widget=forms.DateInput(attrs={"type": "date", "style": _INPUT_STYLE}, format="%Y-%m-%d"),
        error_messages={"invalid": gettext_lazy("Enter a date such as 2030-12-31.")},
    )

    def __init__(self, *args, currency: str, locale: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.locale = locale
        self.fields["amount"].label = _("Up to (%(currency)s)") % {"currency": currency}
        self.fields["period"].choices = [(p.value, PERIOD_WORDS[p]) for p in AllowancePeriod]

    def clean_amount(self) -> int:
        try:
            amount = parse_amount(self.cleaned_data["amount"], self.currency, locale=self.locale)
        except StallError as exc:
            raise forms.ValidationError(_(str(exc.message))) from None
        if amount == 0:
            raise forms.ValidationError(_("Enter an amount greater than zero."))
        return amount

    def clean_expires_at(self) -> datetime | None:
        """The allowance runs through the chosen day: it expires at the next midnight UTC."""
        day = self.cleaned_data.get("expires_at")
        if day is None:
            return None
        if day < timezone.now().astimezone(dt_timezone.utc).date():
            raise forms.ValidationError(_("That day has passed. Choose today or a later day."))
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=dt_timezone.utc)


class SignInForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Your email"), widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)


def _safe_next(request, value: str | None) -> str:
    if value and value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}):
        return value
    return reverse("allowances:list")


def _sign_in_page(request, *, store: Store | None, status: int = 200):
    form = SignInForm(initial={"next": request.get_full_path()})
    template = "wallets/allowance_store.html" if store is not None else "wallets/allowances.html"
    return render(request, template, {"store": store, "sign_in_form": form, "buyer": None}, status=status)


@require_http_methods(["GET", "POST"])
def allowance_store(request, slug):
    """"Let <store> charge up to $X a day/week/month, until <date>": grant or change it."""
    try:
        store = store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None
    buyer = buyer_from_request(request)
    if buyer is None:
        return _sign_in_page(request, store=store, status=200 if request.method == "GET" else 403)
    current = allowance_live_get(buyer=buyer, store=store)
    usage = allowance_usage(allowance=current) if current is not None else None
    locale = _locale(request)
    initial = {"period": AllowancePeriod.DAY}
    if usage is not None and usage.live:
        initial = {"amount": amount_for_input(current.amount, current.currency, locale), "period": current.period}
    form = AllowanceForm(request.POST or None, currency=store.currency, locale=locale, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            allowance = allowance_grant(buyer=buyer, store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            amount = format_money(allowance.amount, allowance.currency, locale)
            messages.success(request, ALLOWED_MESSAGES[allowance.period] % {"store": store.name, "amount": amount})
            return redirect("allowances:list")
    context = {"store": store, "buyer": buyer, "form": form, "usage": usage,
               "shown": _shown(usage, locale) if usage is not None else None}
    return render(request, "wallets/allowance_store.html", context, status=400 if form.errors else 200)


def allowance_list(request):
    """The signed-in buyer's allowances, with what each has used this period."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return _sign_in_page(request, store=None)
    now = timezone.now()
    usages = [allowance_usage(allowance=a, now=now) for a in allowances_for_buyer(buyer=buyer)]
    locale = _locale(request)
    context = {
        "buyer": buyer, "live": [_shown(u, locale) for u in usages if u.live],
        "ended": [_shown(u, locale) for u in usages if not u.live][:20],
    }
    return render(request, "wallets/allowances.html", context)


@require_POST
def allowance_revoke_view(request, allowance_id):
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect("allowances:list")
    try:
        allowance = allowance_revoke(buyer=buyer, allowance_id=allowance_id)
    except AllowanceNotFound:
        raise Http404 from None
    messages.success(request, _("%(store)s can no longer charge your wallet.") % {"store": allowance.store.name})
    return redirect("allowances:list")


@require_POST
def allowance_sign_in(request):
    """Email a magic link that signs the buyer in and brings them back to ``next``."""
    form = SignInForm(request.POST)
    back = _safe_next(request, request.POST.get("next"))
    if not form.is_valid():
        messages.error(request, _("Enter a valid email address to get a sign-in link."))
        return redirect(back)
    email = form.cleaned_data["email"].lower()
    if magic_link_request_allowed(email=email, address=client_address(request)):
        library_link_send(email, back, language=get_language())
    # The same answer for every address, and past the limit: the page does not tell who has an
    # account here.
    messages.success(request, _("A sign-in link is on its way to %(email)s. Open it on this device.") % {"email": form.cleaned_data["email"]})
    return redirect(back)
