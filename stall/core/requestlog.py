"""Every request: an id, a JSON line (STALL_LOG_FORMAT=json) and the counters /metrics reports.

The id is the caller's X-Request-ID when it sends a sane one (a proxy or load balancer that made
it, so one id follows the request through both logs), else a new one; either way it is returned
in the response's X-Request-ID header and kept on ``request.request_id``.

The counters live in prometheus_client's multiprocess files (settings.STALL_METRICS_DIR): each
gunicorn worker writes its own, and a scrape sums them all, whichever worker answers it. Counters
and histograms only: they are sums, right across processes that have exited or restarted, which
a live gauge is not.
"""

import logging
import re
import time
import uuid

from django.conf import settings
from prometheus_client import Counter, Histogram

logger = logging.getLogger("stall.request")

REQUEST_ID_HEADER = "X-Request-ID"
# Printable, no spaces, bounded: an id that goes into logs as it is must not forge lines or fields.
_REQUEST_ID_VALID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "stall_http_requests", "HTTP requests answered, by method and status code.", ["method", "status"]
)
DURATION = Histogram(
    "stall_http_request_duration_seconds", "Time to answer an HTTP request, in seconds.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def request_id_for(request) -> str:
    """The caller's X-Request-ID when it is a sane one, else a new random id."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if _REQUEST_ID_VALID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def remote_addr(request) -> str:
    """The client's address: behind the operator's proxy (STALL_BEHIND_PROXY), the last address
    that proxy appended to X-Forwarded-For (the ones before it are the client's word only), as
    limits.client_address takes it; but whole, where limits count an IPv6 client by its /64."""
    if settings.STALL_BEHIND_PROXY:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded.strip():
            return forwarded.rsplit(",", 1)[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _store_slug(request) -> str | None:
    """The store in the address (/s/<slug>/…, /dashboard/<slug>/…): every route names it ``slug``."""
    match = getattr(request, "resolver_match", None)
    return match.kwargs.get("slug") if match is not None else None


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_HEADER] = request.request_id
        method = request.method if request.method in _METHODS else "other"  # bounded label values
        REQUESTS.labels(method, str(response.status_code)).inc()
        DURATION.observe(seconds)
        if logger.isEnabledFor(logging.INFO):
            self.log(request, response, seconds)
        return response

    @staticmethod
    def log(request, response, seconds: float) -> None:
        fields = {
            "request_id": request.request_id,
            "method": request.method,
            "path": request.path,
            "store": _store_slug(request),
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
            "remote_addr": remote_addr(request),
        }
        logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status_code,
            fields["duration_ms"], extra={"fields": fields},
        )
