from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .broadcasts import broadcast_send_task, broadcasts_due, broadcasts_stalled
from .notifications import digests_send, notifications_send

__all__ = ["broadcast_send_task"]


@db_periodic_task(crontab(minute="*"))
def broadcasts_sweep():
    """Start scheduled broadcasts whose time has come, and restart any whose task was lost."""
    for broadcast_id in broadcasts_due() + broadcasts_stalled():
        broadcast_send_task(broadcast_id)


@db_periodic_task(crontab(minute="*"))
def notifications_sweep():
    """Email creators about new sales, tips, members and refunds (read from the outbox)."""
    return notifications_send()


@db_periodic_task(crontab(minute="5", hour="7"))
def digests_sweep():
    """Yesterday's figures to the creators who asked for a daily digest."""
    return digests_send()
