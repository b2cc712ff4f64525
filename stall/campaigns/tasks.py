"""Background work for campaigns: the deadline's settlement and the recovery of failed charges."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .settlement import campaigns_due_run, recovery_run


@db_periodic_task(crontab(minute="*"))
def campaigns_due_task():
    """Every minute: decide and settle every campaign whose deadline has passed (idempotent)."""
    return campaigns_due_run()


@db_periodic_task(crontab(minute="*/30"))
def pledge_recovery_task():
    """Every half hour: retry or drop failed card charges that are due."""
    return recovery_run()
