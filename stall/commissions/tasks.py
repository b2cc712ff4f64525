"""Background work for commissions: the periodic auto-accept (the emails are in notices)."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .services import commissions_auto_accept


@db_periodic_task(crontab(minute="7"))
def commissions_auto_accept_task():
    """Every hour: accept the deliveries whose buyers let the offer's days pass."""
    return commissions_auto_accept()
