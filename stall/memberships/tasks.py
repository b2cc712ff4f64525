"""Background work for memberships: the periodic renewal of due subscriptions (see billing), and
the sweep of refunds owed past a cap (see cap_refunds)."""

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .cap_refunds import cap_excess_sweep
from .renewals import renewals_run


@db_periodic_task(crontab(minute="*/10"))
def renewals_task():
    """Every ten minutes: renew, retry (dunning) or end every due subscription. Idempotent per
    (subscription, period), so two workers running it at once charge once."""
    return renewals_run(workers=settings.STALL_RENEWAL_WORKERS)


@db_periodic_task(crontab(minute="*/10"))
def cap_excess_sweep_task():
    """Every ten minutes: give back what a card paid past a cap whose refund task was lost."""
    return cap_excess_sweep()
