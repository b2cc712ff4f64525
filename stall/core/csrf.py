"""Cross-site request forgery protection that needs no cookie, for pages shown in a frame.

The buy button's overlay (embed.js) shows the checkout's pages in a frame on the creator's site.
There the browser withholds this site's cookies (SameSite=Lax, and third-party cookie blocking), so
Django's CSRF check, which compares a cookie with the form's token, refuses every payment made in
the overlay. These pages instead ask the browser where the request came from, as Go's
``http.CrossOriginProtection`` does: ``Sec-Fetch-Site`` (sent by every current browser) must say
the request was made by a page of this site or typed by the person; where it is absent, an
``Origin`` header must name this site. A form on another site posting here is refused either way.
The pages protected so act on a checkout named by an unguessable id, not on a signed-in account.
"""

from functools import wraps

from django.conf import settings
from django.urls import get_callable
from django.views.decorators.csrf import csrf_exempt

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def request_same_origin(request) -> bool:
    """Whether the browser says this request came from this site (or carries nothing to say it did
    not: a client that is not a browser, which cookies would not stop either)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.get_host()}" or origin in settings.CSRF_TRUSTED_ORIGINS


def csrf_by_origin(view):
    """Protect ``view`` by the request's origin instead of Django's cookie check (see above)."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if request.method not in SAFE_METHODS and not request_same_origin(request):
            return get_callable(settings.CSRF_FAILURE_VIEW)(request, reason="Cross-origin request refused.")
        return view(request, *args, **kwargs)

    return csrf_exempt(checked)
