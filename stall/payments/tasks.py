from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task


@db_periodic_task(crontab(minute="*/10"))
def stripe_payments_reconcile_task():
    """Every ten minutes, ask Stripe about payments and refunds whose outcome never reached us
    (a lost webhook, a browser that never came back, a network failure mid-call)."""
    from .stripe_services import stripe_payments_reconcile

    return stripe_payments_reconcile()


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def stripe_duplicate_refund(payment_id: str) -> None:
    from .stripe_services import stripe_duplicate_refund_send

    stripe_duplicate_refund_send(payment_id=payment_id)
