from datetime import timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .models import IdempotencyRecord


@db_periodic_task(crontab(minute="17"))
def idempotency_records_prune():
    """Forget Idempotency-Keys after 24 hours, as Stripe does."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(hours=24)).delete()
    return deleted
