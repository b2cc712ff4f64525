"""Emails to members about their renewals (dunning), sent as tasks after the commit, in the
language the member joined in (``Subscription.language``)."""

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from huey.contrib.djhuey import db_task

from stall.accounts.services import buyer_magic_link
from stall.core.email import email_send
from stall.core.languages import language_for
from stall.core.money import format_money

from .models import Subscription

# Where a member fixes their payment; the memberships page is reached from the library.
MANAGE_PATH = "/library/"


def _context(sub: Subscription) -> dict:
    price = sub.pending_price or sub.price
    return {
        "subscription": sub, "store": sub.store, "tier": sub.tier,
        "amount": format_money(price.amount, price.currency) if price else "",
        "manage_url": buyer_magic_link(email=sub.email, next_path=MANAGE_PATH),
    }


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def renewal_failed_notice(subscription_id: str, reason: str = "") -> None:
    """Tell the member their renewal failed, when it is tried again, and where to fix it."""
    sub = Subscription.objects.select_related("store", "tier", "price", "pending_price").get(pk=subscription_id)
    with translation.override(language_for(sub.language)):
        email_send(
            to=sub.email, subject=_("Your %(tier)s membership payment failed") % {"tier": sub.tier.name},
            template="memberships/email/renewal_failed", context={**_context(sub), "reason": reason},
            reply_to=sub.store.support_email or None,
        )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def subscription_ended_notice(subscription_id: str) -> None:
    """Tell the member their membership ended because it could not be paid."""
    sub = Subscription.objects.select_related("store", "tier", "price", "pending_price").get(pk=subscription_id)
    with translation.override(language_for(sub.language)):
        email_send(
            to=sub.email, subject=_("Your %(tier)s membership has ended") % {"tier": sub.tier.name},
            template="memberships/email/ended", context=_context(sub), reply_to=sub.store.support_email or None,
        )
