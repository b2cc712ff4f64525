"""Public pages of the email list: sign up (double opt-in), confirm, unsubscribe.

The unsubscribe address also takes RFC 8058's one-click POST (``List-Unsubscribe=One-Click``)
from mail clients: no login, no CSRF token (the signed link is the proof), no confirmation page."""

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from stall.core.errors import StallError
from stall.core.limits import RateLimited, client_address, limits_hit
from stall.stores.models import Store

from . import services
from .errors import TokenInvalid
from .tokens import unsubscribe_token_read


@require_POST
def signup(request, slug):
    store = Store.objects.filter(slug=slug).first()
    if store is None:
        raise Http404
    email = (request.POST.get("email") or "").strip()
    context = {"store": store, "email": email}
    try:
        limits_hit(("list_signup_address", client_address(request)), ("list_signup_email", email.lower()), what="sign-ups")
        services.subscriber_sign_up(store=store, email=email)
    except RateLimited as exc:
        response = render(request, "audience/signup_done.html", {**context, "error": gettext(str(exc.message))}, status=exc.status)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except StallError as exc:
        return render(request, "audience/signup_done.html", {**context, "error": gettext(str(exc.message))}, status=exc.status)
    return render(request, "audience/signup_done.html", context)


def confirm(request, token):
    try:
        subscriber = services.subscriber_confirm(token=token)
    except StallError as exc:
        return render(request, "audience/confirmed.html", {"error": gettext(str(exc.message))}, status=400)
    return render(request, "audience/confirmed.html", {"store": subscriber.store, "email": subscriber.email})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET shows a button (link scanners must not unsubscribe anyone); POST unsubscribes — the
    button's form, or a mail client's one-click POST."""
    try:
        store_id, email = unsubscribe_token_read(token)
    except TokenInvalid as exc:
        return render(request, "audience/unsubscribe.html", {"error": gettext(str(exc.message))}, status=400)
    store = Store.objects.filter(pk=store_id).first()
    if store is None:
        raise Http404
    if request.method == "POST":
        services.subscriber_unsubscribe(token=token)
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return HttpResponse("Unsubscribed.", content_type="text/plain")
        return redirect(request.path + "?done=1")
    return render(request, "audience/unsubscribe.html", {"store": store, "email": email, "done": request.GET.get("done") == "1"})
