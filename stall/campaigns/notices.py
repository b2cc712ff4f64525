"""Emails to backers, sent as tasks after the commit: a failed card charge (three over the
recovery), the campaign's outcome, and the creator's updates. Lists of backers are streamed."""

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from huey.contrib.djhuey import db_task

from stall.accounts.services import buyer_magic_link
from stall.core.email import email_send
from stall.core.languages import language_for
from stall.core.money import format_money

from .models import Campaign, CampaignUpdate, Pledge, PledgeStatus
from .selectors import pledges_stream


def pledge_link(pledge: Pledge) -> str:
    """A sign-in link to the pledge's page, where the backer changes it or pays another way."""
    return buyer_magic_link(email=pledge.email, next_path=reverse("campaigns:pledge", args=[pledge.pk]))


def _context(pledge: Pledge) -> dict:
    return {
        "pledge": pledge, "campaign": pledge.campaign, "store": pledge.campaign.store,
        "amount": format_money(pledge.amount, pledge.currency), "pledge_url": pledge_link(pledge),
    }


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def pledge_charge_failed_notice(pledge_id: str) -> None:
    pledge = Pledge.objects.select_related("campaign__store").get(pk=pledge_id)
    if pledge.status != PledgeStatus.FAILED:
        return
    with translation.override(language_for(pledge.language)):
        email_send(
            to=pledge.email,
            subject=gettext("Your pledge to %(campaign)s could not be charged") % {"campaign": pledge.campaign.title},
            template="campaigns/email/charge_failed", context=_context(pledge),
            reply_to=pledge.campaign.store.support_email or None,
        )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def campaign_outcome_notice(campaign_id: str) -> None:
    """Tell every backer how the campaign ended and what happened to their pledge."""
    campaign = Campaign.objects.select_related("store").get(pk=campaign_id)
    statuses = (PledgeStatus.COLLECTED, PledgeStatus.VOIDED, PledgeStatus.FAILED)
    for pledge in pledges_stream(Pledge.objects.filter(campaign=campaign, status__in=statuses)):
        pledge.campaign = campaign
        with translation.override(language_for(pledge.language)):
            email_send(
                to=pledge.email, subject=f"{campaign.title}: {campaign.get_status_display().lower()}",
                template="campaigns/email/outcome", context=_context(pledge),
                reply_to=campaign.store.support_email or None,
            )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def campaign_update_send(update_id: str) -> None:
    """Email an update to its campaign's backers (or one tier's), once per address."""
    update = CampaignUpdate.objects.select_related("campaign__store").get(pk=update_id)
    campaign = update.campaign
    backers = Pledge.objects.filter(campaign=campaign).exclude(status=PledgeStatus.CANCELED)
    if update.tier_id:
        backers = backers.filter(tier_id=update.tier_id)
    seen: set[str] = set()
    for pledge in pledges_stream(backers):
        if pledge.email.lower() in seen:
            continue
        seen.add(pledge.email.lower())
        pledge.campaign = campaign
        with translation.override(language_for(pledge.language)):
            email_send(
                to=pledge.email, subject=f"{campaign.title}: {update.title}", template="campaigns/email/update",
                context={**_context(pledge), "update": update}, reply_to=campaign.store.support_email or None,
            )
