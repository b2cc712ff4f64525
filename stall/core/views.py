import logging

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


def healthz(request):
    """200 when the database and the queue answer, 503 otherwise, with each part's status."""
    from huey.contrib.djhuey import HUEY

    status = {"database": "ok", "queue": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
        logger.warning("healthz: database: %s", exc)
        status["database"] = "error"
    try:
        status["queue_pending"] = HUEY.pending_count()
    except Exception as exc:  # noqa: BLE001
        logger.warning("healthz: queue: %s", exc)
        status["queue"] = "error"
    ok = status["database"] == "ok" and status["queue"] == "ok"
    return JsonResponse({"status": "ok" if ok else "error", **status}, status=200 if ok else 503)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": {"code": "resource_missing", "message": "No such endpoint.", "param": None}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"error": {"code": "api_error", "message": "Something went wrong on our side; it has been logged.", "param": None}}, status=500)
    return render(request, "500.html", status=500)


def bad_request(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": {"code": "invalid_request", "message": "Bad request.", "param": None}}, status=400)
    return render(request, "400.html", status=400)


def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)
