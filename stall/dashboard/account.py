"""The creator's own account, beside the stores: two-factor sign-in (turn on, recovery codes, turn off)."""

from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from stall.accounts.two_factor import (
    recovery_codes_regenerate,
    recovery_codes_remaining,
    two_factor_cancel,
    two_factor_confirm,
    two_factor_disable,
    two_factor_for_user,
    two_factor_qr_svg,
    two_factor_start,
    two_factor_uri,
)
from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address

_CODE_ATTRS = {"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "off", "spellcheck": "false",
               "class": "mono code-input"}


class CodeForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app", max_length=32, widget=forms.TextInput(attrs=_CODE_ATTRS))


class TwoFactorOffForm(forms.Form):
    password = forms.CharField(label="Your password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    code = forms.CharField(label="Code from your app, or a recovery code", max_length=32,
                           widget=forms.TextInput(attrs={**_CODE_ATTRS, "inputmode": "text"}))


# Each form of the page has its own prefix, so the page's element ids (id_<prefix>-code) are unique.
_FORMS = {"confirm": CodeForm, "recovery_codes": CodeForm, "off": TwoFactorOffForm}


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def two_factor_settings(request):
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "start":
        try:
            two_factor_start(user=request.user)
        except StallError as exc:  # already on, from another tab
            messages.error(request, exc.message)
        return redirect("dashboard:two_factor")
    if action == "cancel":
        two_factor_cancel(user=request.user)
        return redirect("dashboard:two_factor")
    forms_ = {name: form(request.POST if action == name else None, prefix=name) for name, form in _FORMS.items()}
    if action in forms_ and forms_[action].is_valid():
        response = _act(request, action, forms_[action])
        if response is not None:
            return response
    return _page(request, forms_)


def _act(request, action, form):
    """Do what the valid form asks; the response to send, or None to show the page with its errors."""
    address = client_address(request)
    data = form.cleaned_data
    try:
        if action == "confirm":
            codes = two_factor_confirm(user=request.user, code=data["code"])
            return _codes_page(request, codes, "Two-factor sign-in is on.")
        if action == "recovery_codes":
            codes = recovery_codes_regenerate(user=request.user, code=data["code"], address=address)
            return _codes_page(request, codes, "New recovery codes made; the old ones no longer work.")
        two_factor_disable(user=request.user, password=data["password"], code=data["code"], address=address)
    except StallError as exc:
        form_add_stall_error(form, exc)
        request.two_factor_error = exc
        return None
    messages.success(request, "Two-factor sign-in is off. Logging in takes only your password now.")
    return redirect("dashboard:two_factor")


def _page(request, forms_):
    two_factor = two_factor_for_user(user=request.user)
    context = {"forms": forms_, "two_factor": two_factor, "section": "account"}
    if two_factor is not None and two_factor.confirmed_at is None:
        uri = two_factor_uri(two_factor)
        context.update(qr_svg=two_factor_qr_svg(uri), secret_groups=_groups(two_factor.secret))
    elif two_factor is not None:
        context["remaining"] = recovery_codes_remaining(user=request.user)
    error = getattr(request, "two_factor_error", None)
    status = error.status if error else (400 if any(f.errors for f in forms_.values()) else 200)
    response = render(request, "dashboard/two_factor.html", context, status=status)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _codes_page(request, codes, headline):
    """The new recovery codes, shown this once: only their hashes are kept."""
    text = "Stall recovery codes for " + request.user.email + "\nEach works once.\n\n" + "\n".join(codes) + "\n"
    context = {"codes": codes, "headline": headline, "download": "data:text/plain;charset=utf-8," + quote(text),
               "section": "account"}
    return render(request, "dashboard/two_factor_codes.html", context)


def _groups(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
