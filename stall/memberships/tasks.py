"""Background work for memberships: the periodic renewal of due subscriptions (see billing)."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .renewals import renewals_run


@db_periodic_task(crontab(minute="*/10"))
def renewals_task():
    """Every ten minutes: renew, retry (dunning) or end every due subscription. Idempotent per
    (subscription, period), so two workers running it at once charge once."""
    return renewals_run()
