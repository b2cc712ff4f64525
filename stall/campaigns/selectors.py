"""Reads for campaigns: totals for the page and the dashboard, lists for the API and the library."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import ngettext

from .models import OPEN_STATUSES, Campaign, CampaignStatus, Pledge, PledgeStatus, RewardTier


@dataclass(frozen=True)
class Totals:
    """What a campaign has raised. ``collected`` is money that reached the store's balance;
    ``pledged`` what is held or saved for the deadline; ``uncollected`` what failed and is in
    recovery (not counted as collected until it is paid)."""

    pledged: int
    collected: int
    uncollected: int
    dropped: int
    backers: int
    goal: int

    @property
    def raised(self) -> int:
        """What the progress bar shows: held and saved pledges before the end, collected after."""
        return self.pledged + self.collected

    @property
    def percent(self) -> int:
        return int(self.raised * 100 // self.goal) if self.goal else 0

    @property
    def bar_percent(self) -> int:
        return min(self.percent, 100)


def campaign_totals(*, campaign: Campaign) -> Totals:
    sums = campaign.pledges.aggregate(
        pledged=Sum("amount", filter=Q(status__in=OPEN_STATUSES)),
        collected=Sum("amount", filter=Q(status=PledgeStatus.COLLECTED)),
        uncollected=Sum("amount", filter=Q(status__in=(PledgeStatus.FAILED, PledgeStatus.CHARGING))),
        dropped=Sum("amount", filter=Q(status=PledgeStatus.DROPPED)),
        backers=Count("email", distinct=True, filter=~Q(status=PledgeStatus.CANCELED)),
    )
    return Totals(
        pledged=sums["pledged"] or 0, collected=sums["collected"] or 0, uncollected=sums["uncollected"] or 0,
        dropped=sums["dropped"] or 0, backers=sums["backers"] or 0, goal=campaign.goal,
    )


def days_left(campaign: Campaign) -> int:
    seconds = (campaign.deadline - timezone.now()).total_seconds()
    return max(0, int(-(-seconds // 86400)))


def time_left(campaign: Campaign) -> str:
    """"3 days", "5 hours", "12 minutes": what the campaign page shows until the deadline."""
    seconds = max(0, int((campaign.deadline - timezone.now()).total_seconds()))
    if seconds >= 86400:
        count = -(-seconds // 86400)
        return ngettext("%(count)d day", "%(count)d days", count) % {"count": count}
    if seconds >= 3600:
        count = seconds // 3600
        return ngettext("%(count)d hour", "%(count)d hours", count) % {"count": count}
    count = seconds // 60
    return ngettext("%(count)d minute", "%(count)d minutes", count) % {"count": count}


def tiers_with_counts(*, campaign: Campaign):
    return RewardTier.objects.filter(campaign=campaign).annotate(
        backers=Count("pledges", filter=~Q(pledges__status=PledgeStatus.CANCELED)),
        pledged=Sum("pledges__amount", filter=~Q(pledges__status=PledgeStatus.CANCELED)),
    )


def campaigns_for_store(*, store, limit: int = 20, starting_after: str | None = None):
    qs = Campaign.objects.filter(store=store).order_by("-id")
    if starting_after:
        qs = qs.filter(id__lt=starting_after)
    return list(qs[:limit])


def campaigns_public(*, store):
    return Campaign.objects.filter(store=store).exclude(status__in=(CampaignStatus.DRAFT,)).order_by("-id")


def pledges_for_campaign(*, campaign: Campaign, limit: int = 20, starting_after: str | None = None):
    qs = Pledge.objects.filter(campaign=campaign).select_related("tier").order_by("-id")
    if starting_after:
        qs = qs.filter(id__lt=starting_after)
    return list(qs[:limit])


def pledges_public(*, campaign: Campaign, limit: int = 20):
    """Recent backers' messages for the campaign page."""
    return list(
        Pledge.objects.filter(campaign=campaign).exclude(status=PledgeStatus.CANCELED).exclude(message="")
        .order_by("-id").only("message", "created_at", "email")[:limit]
    )


def pledges_for_email(*, email: str):
    """A backer's pledges, newest first. A pledge's email is its buyer's, which is kept lower-case:
    an exact match on the lower-cased address walks the (email, -id) index, where a
    case-insensitive one (UPPER(email) on PostgreSQL, LIKE on SQLite) reads every pledge."""
    return Pledge.objects.filter(email=email.strip().lower()).select_related("campaign__store", "tier").order_by("-id")


STREAM = 500  # pledges read per query


def pledges_stream(queryset):
    """Pledges by id, ``STREAM`` a query (keyset pagination: memory flat in their number)."""
    last = ""
    while True:
        chunk = list(queryset.filter(id__gt=last).order_by("id")[:STREAM])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].pk


def pledge_of_setup(*, campaign_id: str, setup_ref: str, email: str) -> Pledge | None:
    """The pledge a buyer's card setup (``seti_…``) made on a campaign, if it made one."""
    if not setup_ref:
        return None
    return Pledge.objects.filter(campaign_id=campaign_id, setup_ref=setup_ref, email=email).first()
