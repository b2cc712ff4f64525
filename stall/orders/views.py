import logging

from django import forms
from django.contrib import messages
from django.core.files.storage import storages
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from stall.accounts.services import (
    BUYER_EMAIL_SESSION_KEY,
    MagicLinkInvalid,
    buyer_for_email,
    buyer_magic_link_use,
    buyer_sign_in,
    buyer_sign_out,
    magic_link_request_allowed,
)
from stall.core.errors import StallError
from stall.core.limits import client_address
from stall.core.money import format_money

from .library import library_entries
from .license_seats import (
    license_seat_consent_revoke,
    license_seat_consent_set,
    seat_offers_for_email,
)
from .licenses import licenses_for_email
from .selectors import downloads_used, entitlements_for_email
from .services import download_register, download_resolve, download_url
from .tasks import library_link_send

logger = logging.getLogger(__name__)
SESSION_KEY = BUYER_EMAIL_SESSION_KEY


class LibraryLinkForm(forms.Form):
    email = forms.EmailField(label=_("Email you bought with"), widget=forms.EmailInput(attrs={"autocomplete": "email"}))


@require_http_methods(["GET", "POST"])
def library(request):
    email = request.session.get(SESSION_KEY)
    if not email:
        form = LibraryLinkForm(request.POST or None)
        sent = False
        # Where the link brings the buyer back to (the wallet, a payment page), on this site only.
        next_path = request.POST.get("next") or request.GET.get("next") or ""
        if not (next_path.startswith("/") and url_has_allowed_host_and_scheme(next_path, allowed_hosts=None)):
            next_path = ""
        if request.method == "POST" and form.is_valid():
            # The same answer whether or not the email bought anything: the page must not tell
            # strangers who the customers are. Past the limit it sends nothing but says the same.
            email = form.cleaned_data["email"].lower()
            if magic_link_request_allowed(email=email, address=client_address(request)):
                library_link_send(email, next_path, language=get_language())
            sent = True
        return render(request, "orders/library_login.html", {"form": form, "sent": sent, "next": next_path},
                      status=400 if form.errors else 200)
    items = []
    for entitlement in entitlements_for_email(email=email):
        used = downloads_used(entitlement=entitlement)
        files = [
            (f, download_url(entitlement=entitlement, file=f), used.get(f.pk, 0)) for f in entitlement.product.files.all()
        ] if entitlement.active else []
        items.append((entitlement, files))
    keys = {}
    offers = seat_offers_for_email(email=email)
    for lic in licenses_for_email(email=email):
        lic.seat_offer = offers.get(lic.pk)
        if lic.seat_offer is not None:
            lic.seat_price = format_money(lic.seat_offer["amount"], lic.seat_offer["currency"], get_language())
        keys.setdefault(lic.order_id, []).append(lic)
    items = [{"entitlement": entitlement, "files": files, "keys": keys.get(entitlement.order_id, []),
              "created_at": entitlement.created_at} for entitlement, files in items]
    # What other domains sell (a commission), as they describe it, with the rest, newest first.
    items += [{"entry": entry, "created_at": entry.created_at} for entry in library_entries(email=email)]
    items.sort(key=lambda item: item["created_at"], reverse=True)
    return render(request, "orders/library.html", {"email": email, "items": items})


class SeatConsentForm(forms.Form):
    method = forms.ChoiceField(label=_("Pay from"), choices=[("wallet", _("Wallet")), ("tab", _("Tab"))])
    max_extra_seats = forms.IntegerField(label=_("At most this many extra seats"), min_value=1, max_value=100)


@require_POST
def library_seats(request, license_id):
    """The buyer allows (or stops) paid extra seats for one of their license keys."""
    email = request.session.get(SESSION_KEY)
    if not email:
        return redirect("orders:library")
    buyer = buyer_for_email(email=email)
    try:
        if request.POST.get("action") == "revoke":
            license_seat_consent_revoke(buyer=buyer, license_id=license_id)
            messages.success(request, _("Extra seats are no longer bought for this key."))
        else:
            form = SeatConsentForm(request.POST)
            if not form.is_valid():
                first = next(iter(form.errors.values()))[0]
                messages.error(request, first)
                return redirect("orders:library")
            license_seat_consent_set(
                buyer=buyer, license_id=license_id, method=form.cleaned_data["method"],
                max_extra_seats=form.cleaned_data["max_extra_seats"],
            )
            messages.success(request, _("Extra seats allowed: an activation past the limit buys one."))
    except StallError as exc:
        messages.error(request, gettext(exc.message))
    return redirect("orders:library")


def library_enter(request, token):
    try:
        email = buyer_magic_link_use(token=token)
    except MagicLinkInvalid as exc:  # and MagicLinkUsed
        return render(request, "orders/library_login.html", {"form": LibraryLinkForm(), "error": exc.message}, status=400)
    buyer_sign_in(request=request, buyer=buyer_for_email(email=email))
    return redirect(request.GET.get("next") if url_has_allowed_host_and_scheme(request.GET.get("next"), allowed_hosts=None) else "orders:library")


@require_POST
def library_logout(request):
    buyer_sign_out(request=request)
    return redirect("orders:library")


def download(request, token):
    """Stream a purchased file through a signed, expiring, counted link."""
    try:
        entitlement, file = download_resolve(token=token)
    except StallError as exc:
        return render(request, "orders/download_error.html", {"error": exc}, status=exc.status)
    storage = storages["private"]
    try:
        handle = storage.open(file.storage_name, "rb")
    except FileNotFoundError:
        # Open before counting: a file missing from storage must not cost the buyer a download.
        logger.error("download: file %s missing from storage at %s", file.pk, file.storage_name)
        raise Http404 from None
    try:
        download_register(entitlement=entitlement, file=file)
    except StallError as exc:
        handle.close()
        return render(request, "orders/download_error.html", {"error": exc}, status=exc.status)
    # FileResponse streams the file in blocks; it is never read whole into memory.
    response = FileResponse(handle, content_type=file.content_type)
    response.headers["Content-Disposition"] = content_disposition_header(True, file.name)
    response.headers["Content-Length"] = str(file.size)
    response.headers["Cache-Control"] = "private, no-store"
    return response
