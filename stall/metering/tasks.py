"""Background work for metering: live charges after new usage, and the close of ended periods."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from .billing import periods_close, subscription_bill_live


@db_task()
def usage_bill_live_task(subscription_id: str):
    """Charge a live subscription if its accrued usage reached the threshold (queued by ingestion)."""
    return subscription_bill_live(subscription_id=subscription_id) is not None


@db_periodic_task(crontab(minute="*/10"))
def usage_periods_close_task():
    """Every ten minutes: charge and close every ended period (arrears invoices, live remainders),
    and retry the ones still unpaid."""
    return periods_close()
