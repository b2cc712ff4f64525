"""The deadline: deciding a campaign's outcome and settling every pledge exactly once.

``campaigns_due_run`` (the periodic task) settles each campaign whose deadline has passed, and
each one decided but not yet fully settled (a run that crashed, a card the rail could not reach).
``campaign_settle`` first decides the outcome under the campaign's row lock (live → succeeded or
failed, once), then streams the pledges: wallet pledges ``CHUNK`` at a time (``collect``), card
pledges one at a time. Every step is claimed by a guarded UPDATE of the pledge's status in the
transaction that moves its money, so running it twice, at once, or again after a crash between
any two pledges settles each pledge once. ``recovery_run`` walks failed card charges through their
seven days: retried on days 3 and 6 (an email each time it fails), dropped on day 7.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from stall.checkout.models import CheckoutStatus
from stall.integrations.webhooks import EventRow, events_record

from .collect import (
    CHUNK,
    DROP_DAY,
    card_charge,
    card_claim,
    endpoints_enabled,
    wallet_settle_chunks,
)
from .models import OPEN_STATUSES, Campaign, CampaignStatus, Pledge, PledgeMethod, PledgeStatus
from .notices import campaign_outcome_notice
from .schemas import campaign_out
from .selectors import pledges_stream
from .services import campaign_cancel_mark

DECIDED = (CampaignStatus.SUCCEEDED, CampaignStatus.FAILED, CampaignStatus.CANCELED)
UNSETTLED = (PledgeStatus.HELD, PledgeStatus.SAVED, PledgeStatus.CHARGING)

# Called after each committed step of a settlement (a chunk of wallet pledges, one card pledge).
# Tests set it to raise, to show that a run killed between two pledges is finished by the next.
settle_hook = None


def _step_done() -> None:
    if settle_hook is not None:
        settle_hook()


def campaign_decide(*, campaign_id: str) -> Campaign:
    """Decide a live campaign whose deadline has passed, once: all-or-nothing succeeds when what
    is pledged (held and saved) reaches the goal; keep-what-you-raise always succeeds (its pledges
    were collected as they came)."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        now = timezone.now()
        if campaign.status != CampaignStatus.LIVE or now < campaign.deadline:
            return campaign
        if campaign.all_or_nothing:
            pledged = campaign.pledges.filter(status__in=OPEN_STATUSES).aggregate(s=Sum("amount"))["s"] or 0
            campaign.status = CampaignStatus.SUCCEEDED if pledged >= campaign.goal else CampaignStatus.FAILED
        else:
            campaign.status = CampaignStatus.SUCCEEDED
        campaign.decided_at = now
        campaign.save(update_fields=["status", "decided_at", "updated_at"])
        events_record(store_id=campaign.store_id, events=[EventRow(f"campaign.{campaign.status}", campaign_out(campaign))])
    return campaign


def campaign_settle(*, campaign_id: str, chunk: int = CHUNK) -> dict:
    """Decide the campaign if its deadline has passed, then settle its pledges. Idempotent."""
    campaign = campaign_decide(campaign_id=campaign_id)
    counts = {"collected": 0, "voided": 0, "failed": 0}
    if campaign.status not in DECIDED or campaign.settled_at is not None:
        return counts
    collect = campaign.status == CampaignStatus.SUCCEEDED
    endpoints = endpoints_enabled(campaign.store_id)
    for n in wallet_settle_chunks(campaign=campaign, collect=collect, limit=chunk, endpoints=endpoints):
        counts["collected" if collect else "voided"] += n
        _step_done()
    cards = Pledge.objects.filter(
        campaign=campaign, method=PledgeMethod.CARD, status__in=(PledgeStatus.SAVED, PledgeStatus.CHARGING)
    ).select_related("saved", "tier__product")
    if collect:
        for pledge in pledges_stream(cards):
            pledge.campaign = campaign
            if pledge.status == PledgeStatus.SAVED and not card_claim(pledge=pledge, from_statuses=(PledgeStatus.SAVED,)):
                continue  # another run has it
            outcome = card_charge(pledge=pledge)
            counts[outcome if outcome in counts else "failed"] += outcome in (PledgeStatus.COLLECTED, PledgeStatus.FAILED)
            _step_done()
    else:
        counts["voided"] += cards.filter(status=PledgeStatus.SAVED).update(
            status=PledgeStatus.VOIDED, updated_at=timezone.now()
        )
    with transaction.atomic():
        if not campaign.pledges.filter(status__in=UNSETTLED).exists():
            if Campaign.objects.filter(pk=campaign.pk, settled_at__isnull=True).update(settled_at=timezone.now()):
                transaction.on_commit(lambda: campaign_outcome_notice(campaign.pk))
    return counts


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Cancel a draft or live campaign: held wallet pledges are voided back, saved cards released.
    What a keep-what-you-raise campaign already collected stays collected."""
    campaign_cancel_mark(campaign=campaign)
    campaign_settle(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    return campaign


def campaigns_due_run() -> dict:
    """Settle every campaign past its deadline, or decided but not yet settled."""
    now = timezone.now()
    due = Campaign.objects.filter(status=CampaignStatus.LIVE, deadline__lte=now) | Campaign.objects.filter(
        status__in=DECIDED, settled_at__isnull=True
    )
    totals = {"campaigns": 0, "collected": 0, "voided": 0, "failed": 0}
    for campaign_id in list(due.values_list("pk", flat=True)):
        counts = campaign_settle(campaign_id=campaign_id)
        totals["campaigns"] += 1
        for key, value in counts.items():
            totals[key] += value
    return totals


def recovery_run() -> dict:
    """Retry or drop failed card charges that are due (see ``collect.RETRY_DAYS``)."""
    now = timezone.now()
    # Not while the backer is paying another way (a recovery checkout still open): the card is
    # neither charged again nor the pledge dropped under them; the next run after it expires does.
    paying = Q(recovery_checkout__status=CheckoutStatus.OPEN, recovery_checkout__expires_at__gt=now)
    due = Pledge.objects.filter(status=PledgeStatus.FAILED, next_attempt_at__lte=now).exclude(paying).select_related(
        "campaign__store", "saved", "tier__product"
    )
    counts = {"collected": 0, "failed": 0, "dropped": 0}
    for pledge in pledges_stream(due):
        if pledge.failed_at and now >= pledge.failed_at + timedelta(days=DROP_DAY):
            with transaction.atomic():
                if Pledge.objects.filter(pk=pledge.pk, status=PledgeStatus.FAILED).update(
                    status=PledgeStatus.DROPPED, next_attempt_at=None, updated_at=now
                ):
                    counts["dropped"] += 1
            continue
        if not card_claim(pledge=pledge, from_statuses=(PledgeStatus.FAILED,)):
            continue
        outcome = card_charge(pledge=pledge)
        if outcome in counts:
            counts[outcome] += 1
    return counts
