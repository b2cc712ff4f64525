"""Stripe's webhooks, and the Content-Security-Policy that the Stripe pages add."""

import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from stall.core.errors import StallError

from .stripe_services import stripe_webhook_receive

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request, store_id=None):
    """Stripe's events: the platform's account at /webhooks/stripe, a store's own at /webhooks/stripe/<store>."""
    try:
        event, new = stripe_webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", ""), store_id=store_id
        )
    except StallError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return JsonResponse({"received": True, "id": event.pk, "duplicate": not new})
