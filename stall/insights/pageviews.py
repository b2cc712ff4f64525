"""Page views counted on the server, without cookies or personal data (Plausible's method).

A store, product or post page says what it is by setting ``request.page_view = (store_id, page,
object_id)`` (page "store", "product" or "post"; a post's object is its product). The middleware
then counts the view, once the page has been served with a 200. A visitor is a hash of the day's
random salt, the page, the address and the user agent: the same visitor is counted once per page
per day, and since the salt of a day is deleted with it, no one can be followed from one day to
the next nor the address recovered. The referrer's host is kept when it is another site's.

Views are buffered in the process and written every few seconds (or every few hundred views) in
a handful of statements, so a page view is not a write: a crash loses at most those seconds.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import defaultdict
from datetime import date
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from stall.stores.models import Store

from .models import DailySalt, PageViewDay, ReferrerDay, VisitorDay

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
FLUSH_VIEWS = 500

_lock = threading.Lock()
_views: dict[tuple, list] = defaultdict(lambda: [0, set()])  # (store, day, page, object) -> [views, digests]
_referrers: dict[tuple, int] = defaultdict(int)  # (store, day, host) -> views
_state = {"pending": 0, "since": time.monotonic()}
_salts: dict[date, str] = {}


def day_salt(day: date) -> str:
    salt = _salts.get(day)
    if salt is None:
        row = DailySalt.objects.filter(day=day).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = DailySalt.objects.create(day=day, value=secrets.token_hex(16))
            except IntegrityError:
                row = DailySalt.objects.get(day=day)
        _salts.clear()
        salt = _salts[day] = row.value
    return salt


def _client(request) -> tuple[str, str]:
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    address = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR", "")
    return address, request.META.get("HTTP_USER_AGENT", "")[:400]


def page_view_record(request, *, store_id: str, page: str, object_id: str = "", now=None) -> None:
    """Count one view of a page (buffered)."""
    day = (now or timezone.now()).date()
    address, agent = _client(request)
    digest = hashlib.blake2b(
        "\x1f".join((day_salt(day), store_id, page, object_id, address, agent)).encode(), digest_size=16
    ).hexdigest()
    host = urlsplit(request.META.get("HTTP_REFERER", "")).hostname or ""
    with _lock:
        entry = _views[(store_id, day, page, object_id)]
        entry[0] += 1
        entry[1].add(digest)
        if host and host != request.get_host().split(":")[0]:
            _referrers[(store_id, day, host[:255])] += 1
        _state["pending"] += 1
        due = _state["pending"] >= FLUSH_VIEWS or time.monotonic() - _state["since"] >= FLUSH_SECONDS
    if due:
        page_views_flush()


def page_views_flush() -> int:
    """Write the buffered views. Returns how many views were written."""
    with _lock:
        views, referrers = dict(_views), dict(_referrers)
        _views.clear()
        _referrers.clear()
        written, _state["pending"], _state["since"] = _state["pending"], 0, time.monotonic()
    if not views and not referrers:
        return 0
    # A store deleted since its views were counted (or, in tests, a database emptied) has no row
    # to point at: its views are dropped rather than failing the others'.
    stores = set(Store.objects.filter(pk__in={key[0] for key in [*views, *referrers]}).values_list("pk", flat=True))
    views = {key: value for key, value in views.items() if key[0] in stores}
    referrers = {key: value for key, value in referrers.items() if key[0] in stores}
    with transaction.atomic():
        for (store_id, day, page, object_id), (count, digests) in views.items():
            known = set(VisitorDay.objects.filter(day=day, digest__in=list(digests)).values_list("digest", flat=True))
            fresh = digests - known
            VisitorDay.objects.bulk_create([VisitorDay(day=day, digest=d) for d in fresh], ignore_conflicts=True)
            _upsert(PageViewDay, dict(store_id=store_id, day=day, page=page, object_id=object_id),
                    views=count, visitors=len(fresh))
        for (store_id, day, host), count in referrers.items():
            _upsert(ReferrerDay, dict(store_id=store_id, day=day, host=host), views=count)
    return written


def _upsert(model, key: dict, **add) -> None:
    changed = model.objects.filter(**key).update(**{k: F(k) + v for k, v in add.items()})
    if not changed:
        try:
            with transaction.atomic():
                model.objects.create(**key, **add)
        except IntegrityError:  # another process made it meanwhile
            model.objects.filter(**key).update(**{k: F(k) + v for k, v in add.items()})


class PageViewMiddleware:
    """Counts the view a page declared (``request.page_view``) once it answered 200."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        declared = getattr(request, "page_view", None)
        if declared and request.method == "GET" and response.status_code == 200 and not _is_bot(request):
            store_id, page, object_id = declared
            try:
                page_view_record(request, store_id=store_id, page=page, object_id=object_id)
            except Exception:  # noqa: BLE001 - counting a view never breaks the page it counts
                logger.exception("page views not written")
        return response


def page_views_discard() -> None:
    """Forget the buffered views without writing them (tests: a database about to be emptied)."""
    with _lock:
        _views.clear()
        _referrers.clear()
        _state["pending"], _state["since"] = 0, time.monotonic()


def _is_bot(request) -> bool:
    agent = request.META.get("HTTP_USER_AGENT", "").lower()
    return not agent or any(word in agent for word in ("bot", "crawler", "spider", "preview", "curl", "python-requests"))


