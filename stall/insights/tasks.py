"""Background work for insights: keeping the daily rollups equal to the ledger, and forgetting
yesterday's visitor hashes."""

from datetime import timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .models import DailySalt, VisitorDay
from .rollups import rollups_rebuild_day


@db_periodic_task(crontab(minute="*/5"))
def rollups_refresh_task():
    """Every five minutes: rebuild today's and yesterday's rollups from the ledger; drop the
    visitor hashes of earlier days (their salt is gone with them)."""
    today = timezone.now().date()
    rollups_rebuild_day(day=today - timedelta(days=1))
    rollups_rebuild_day(day=today)
    VisitorDay.objects.filter(day__lt=today).delete()
    DailySalt.objects.filter(day__lt=today).delete()
