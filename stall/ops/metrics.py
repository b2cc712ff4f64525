"""/metrics: Prometheus's text format, for a scraper holding STALL_METRICS_TOKEN.

Two sources, each chosen for being right with two gunicorn workers:
- requests (count by method and status, durations): prometheus_client's multiprocess files, which
  every web process writes as it answers (stall.core.requestlog) and a scrape sums;
- payments by rail and status, and the task queue's depth: read at scrape time from the database
  and from Huey. They are already kept there, shared by every process, and survive restarts; a
  counter kept in memory beside them would be a second truth, lost with the process and counting a
  payment's success twice if a retry re-ran it.
"""

import hmac

from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from huey.contrib.djhuey import HUEY
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from stall.payments.models import Payment


class StallCollector:
    """What the database and the queue hold, read when scraped (one grouped query, two counts)."""

    def collect(self):
        payments = GaugeMetricFamily(
            "stall_payments", "Payments by rail, status and currency (test payments: mode=test).",
            labels=["rail", "status", "currency", "mode"],
        )
        amounts = GaugeMetricFamily(
            "stall_payments_amount", "Sum of payments' amounts in minor units, by the same labels.",
            labels=["rail", "status", "currency", "mode"],
        )
        rows = (
            Payment.objects.values_list("rail", "status", "currency", "livemode")
            .order_by().annotate(n=Count("id"), amount=Sum("amount"))
        )
        for rail, status, currency, livemode, n, amount in rows:
            labels = [rail, status, currency, "live" if livemode else "test"]
            payments.add_metric(labels, n)
            amounts.add_metric(labels, amount or 0)
        yield payments
        yield amounts
        yield from queue_metrics()


def queue_metrics():
    """Tasks waiting in Huey's queue and scheduled for later; ``stall_queue_up`` 0 when the queue
    cannot be read (the depths are then left out, not reported as 0)."""
    up = GaugeMetricFamily("stall_queue_up", "1 when the task queue answered the scrape.")
    try:
        pending, scheduled = HUEY.pending_count(), HUEY.scheduled_count()
    except Exception:  # noqa: BLE001 - a scrape reports the queue down rather than failing
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    yield GaugeMetricFamily("stall_queue_pending", "Tasks waiting for a worker.", value=pending)
    yield GaugeMetricFamily("stall_queue_scheduled", "Tasks scheduled to run later (retries).", value=scheduled)


def token_valid(request) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.STALL_METRICS_TOKEN.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


@require_GET
def metrics(request):
    """404 when no token is configured (the endpoint is not there); 401 with nothing more for a
    missing or wrong token. The format follows the scraper's Accept header (Prometheus's text
    format 0.0.4, or OpenMetrics), as prometheus_client negotiates it."""
    if not settings.STALL_METRICS_TOKEN:
        raise Http404
    if not token_valid(request):
        return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.STALL_METRICS_DIR))
    registry.register(StallCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
