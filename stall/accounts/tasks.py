from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from .models import MagicLinkUse


@db_periodic_task(crontab(minute="23"))
def magic_link_uses_prune():
    """Forget used sign-in links once they would have expired anyway: a link is used after it was
    made, so one used longer ago than a link lives is past its expiry and refused for that."""
    before = timezone.now() - timedelta(seconds=settings.STALL_MAGIC_LINK_TTL_SECONDS)
    deleted, _ = MagicLinkUse.objects.filter(used_at__lt=before).delete()
    return deleted
