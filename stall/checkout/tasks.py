from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .services import checkouts_expire_due


@db_periodic_task(crontab(minute="*/5"))
def checkouts_expire():
    """Every five minutes, close checkouts that were abandoned past their expiry."""
    return checkouts_expire_due()
