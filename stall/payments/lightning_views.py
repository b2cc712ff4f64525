"""LNbits' webhook, and the status of a Lightning payment that the invoice pages poll."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from stall.core.errors import StallError

from .lightning_services import lightning_payment_refresh, lightning_webhook_receive


def _answer(payment) -> JsonResponse:
    return JsonResponse({"id": payment.pk, "status": payment.status, "paid": payment.status == "succeeded"})


@csrf_exempt
@require_POST
def lightning_webhook(request, payment_id):
    """LNbits calls this when the invoice of ``payment_id`` is paid; LNbits is asked, not believed."""
    try:
        payment = lightning_webhook_receive(payment_id=payment_id)
    except StallError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return _answer(payment)


@never_cache
@require_GET
def lightning_status(request, payment_id):
    """Where a Lightning payment stands, asked of LNbits while it waits: the invoice pages poll it."""
    try:
        payment = lightning_payment_refresh(payment_id=payment_id)
    except StallError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return _answer(payment)
