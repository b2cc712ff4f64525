"""Pledging, changing and canceling before the deadline; keep-what-you-raise collecting as pledges
come; and bad input refused with a clear error, nothing held and no slot taken."""

from datetime import timedelta

import pytest

from stall.campaigns.errors import (
    CampaignEnded,
    CampaignInvalid,
    CampaignNotLive,
    PledgeInvalid,
    RewardTierNotFound,
    TierSoldOut,
)
from stall.campaigns.models import CampaignStatus, Pledge, PledgeStatus
from stall.campaigns.services import (
    campaign_create,
    pledge_cancel,
    pledge_change,
    pledge_create,
    tier_create,
)
from stall.campaigns.settlement import campaign_cancel
from stall.core.money import InvalidAmount
from stall.ledger.models import AccountKind, Transfer, TransferState, ledger_owner
from stall.payments.errors import WalletEmpty
from stall.payments.models import Payment
from stall.testing import StoreFactory

from .conftest import DEADLINE, START, account, backer, live_campaign, wallet_account

pytestmark = pytest.mark.django_db


def _nothing_held(buyer):
    wallet = wallet_account(buyer)
    assert (wallet.debits_pending, wallet.debits_posted) == (0, 0)
    assert not Pledge.objects.exists()


def test_a_pledge_under_the_tiers_minimum_is_refused(store, clock):
    campaign = live_campaign(store)
    tier = tier_create(campaign=campaign, title="Print", min_amount=1000, quantity=2)
    buyer = backer("b@example.com")
    with pytest.raises(PledgeInvalid, match=r"at least \$10\.00") as caught:
        pledge_create(campaign=campaign, buyer=buyer, amount=999, method="wallet", tier=tier)
    assert caught.value.param == "amount" and caught.value.code == "amount_below_minimum"
    _nothing_held(buyer)
    tier.refresh_from_db()
    assert tier.remaining == 2


def test_a_pledge_after_the_deadline_is_refused_even_before_the_task_ran(store, clock):
    campaign = live_campaign(store)
    buyer = backer("b@example.com")
    clock.move_to(DEADLINE)
    with pytest.raises(CampaignEnded, match="deadline has passed"):
        pledge_create(campaign=campaign, buyer=buyer, amount=100, method="wallet")
    _nothing_held(buyer)


def test_a_pledge_to_a_draft_campaign_is_refused(store, clock):
    campaign = campaign_create(store=store, title="Not yet", goal=1000, deadline=DEADLINE)
    buyer = backer("b@example.com")
    with pytest.raises(CampaignNotLive, match="not taking pledges"):
        pledge_create(campaign=campaign, buyer=buyer, amount=100, method="wallet")
    _nothing_held(buyer)


def test_a_pledge_for_another_stores_tier_is_not_found(store, clock):
    campaign = live_campaign(store)
    other = live_campaign(StoreFactory())
    foreign = tier_create(campaign=other, title="Theirs", min_amount=100)
    buyer = backer("b@example.com")
    with pytest.raises(RewardTierNotFound) as caught:
        pledge_create(campaign=campaign, buyer=buyer, amount=100, method="wallet", tier=foreign)
    assert caught.value.status == 404
    _nothing_held(buyer)


@pytest.mark.parametrize("goal", [0, -100, "10", None, True])
def test_a_goal_of_zero_or_less_is_refused(store, clock, goal):
    with pytest.raises(CampaignInvalid, match="goal must be a positive amount") as caught:
        campaign_create(store=store, title="Broke", goal=goal, deadline=DEADLINE)
    assert caught.value.param == "goal"


def test_amounts_past_what_the_database_holds_are_refused(store, clock):
    with pytest.raises(InvalidAmount, match="too large") as caught:
        campaign_create(store=store, title="Huge", goal=10**30, deadline=DEADLINE)
    assert caught.value.param == "goal"
    campaign = live_campaign(store)
    with pytest.raises(InvalidAmount, match="too large"):
        tier_create(campaign=campaign, title="Huge", min_amount=10**30)
    with pytest.raises(InvalidAmount, match="too large"):
        pledge_create(campaign=campaign, buyer=backer("b@example.com"), amount=10**30, method="wallet")


def test_a_deadline_in_the_past_or_without_a_time_zone_is_refused(store, clock):
    with pytest.raises(CampaignInvalid, match="must be in the future"):
        campaign_create(store=store, title="Late", goal=100, deadline=START - timedelta(minutes=1))
    with pytest.raises(CampaignInvalid, match="time zone"):
        campaign_create(store=store, title="Where", goal=100, deadline=DEADLINE.replace(tzinfo=None))


def test_an_empty_wallet_or_a_tiny_card_pledge_is_refused_and_gives_the_slot_back(store, clock):
    campaign = live_campaign(store)
    tier = tier_create(campaign=campaign, title="Sticker", min_amount=25, quantity=1)
    poor = backer("poor@example.com", top_up=0)
    with pytest.raises(WalletEmpty):
        pledge_create(campaign=campaign, buyer=poor, amount=25, method="wallet", tier=tier)
    with pytest.raises(PledgeInvalid, match=r"card pledge must be at least \$0\.50"):
        pledge_create(campaign=campaign, buyer=poor, amount=25, method="card", tier=tier, payment_method="sandbox_visa")
    tier.refresh_from_db()
    assert tier.remaining == 1 and not Pledge.objects.exists()


def test_a_sold_out_tier_is_refused(store, clock):
    campaign = live_campaign(store)
    tier = tier_create(campaign=campaign, title="Only one", min_amount=100, quantity=1)
    pledge_create(campaign=campaign, buyer=backer("a@example.com"), amount=100, method="wallet", tier=tier)
    late = backer("late@example.com")
    with pytest.raises(TierSoldOut, match="sold out"):
        pledge_create(campaign=campaign, buyer=late, amount=100, method="wallet", tier=tier)
    _wallet = wallet_account(late)
    assert _wallet.debits_pending == 0


def test_changing_a_held_pledge_moves_the_hold_and_canceling_voids_it(store, clock):
    campaign = live_campaign(store)
    small = tier_create(campaign=campaign, title="Thanks", min_amount=100, quantity=1)
    big = tier_create(campaign=campaign, title="Print", min_amount=500, quantity=1)
    buyer = backer("b@example.com")
    pledge = pledge_create(campaign=campaign, buyer=buyer, amount=100, method="wallet", tier=small)
    pledge = pledge_change(pledge=pledge, amount=600, tier=big, message="More moss")
    assert wallet_account(buyer).debits_pending == 600
    small.refresh_from_db(), big.refresh_from_db()
    assert (small.remaining, big.remaining) == (1, 0)
    holds = Transfer.objects.filter(code="pledge_hold").order_by("created_at", "id")
    assert sorted(holds.values_list("amount", "state")) == [(100, TransferState.VOIDED), (600, TransferState.PENDING)]
    with pytest.raises(PledgeInvalid, match="at least"):
        pledge_change(pledge=pledge, amount=400)
    assert wallet_account(buyer).debits_pending == 600  # the refused change left the hold alone

    pledge_cancel(pledge=pledge)
    assert Pledge.objects.get().status == PledgeStatus.CANCELED
    assert wallet_account(buyer).debits_pending == 0 and wallet_account(buyer).available == 2000
    big.refresh_from_db()
    assert big.remaining == 1
    clock.move_to(DEADLINE)
    with pytest.raises(CampaignEnded):
        pledge_cancel(pledge=pledge)


def test_keep_what_you_raise_collects_wallet_and_card_pledges_as_they_come(store, clock):
    campaign = live_campaign(store, mode="keep_what_you_raise", goal=100_000)
    buyer = backer("b@example.com")
    wallet_pledge = pledge_create(campaign=campaign, buyer=buyer, amount=25, method="wallet")
    card_pledge = pledge_create(campaign=campaign, buyer=backer("c@example.com", top_up=0), amount=500,
                                method="card", payment_method="sandbox_visa")
    assert (wallet_pledge.status, card_pledge.status) == (PledgeStatus.COLLECTED, PledgeStatus.COLLECTED)
    wallet = wallet_account(buyer)
    assert (wallet.debits_pending, wallet.debits_posted) == (0, 25)
    escrow = account(AccountKind.STORE_PENDING, ledger_owner(campaign.pk, livemode=wallet_pledge.livemode))
    assert (escrow.credits_posted, escrow.debits_posted, escrow.credits_pending) == (25, 25, 0)
    assert Payment.objects.get(store=store).amount == 500
    with pytest.raises(PledgeInvalid, match="declined"):
        pledge_create(campaign=campaign, buyer=backer("d@example.com", top_up=0), amount=500, method="card",
                      payment_method="sandbox_declined")
    assert Pledge.objects.filter(status=PledgeStatus.CANCELED).count() == 1


def test_canceling_a_live_campaign_releases_every_hold(store, clock):
    campaign = live_campaign(store)
    buyer = backer("b@example.com")
    pledge_create(campaign=campaign, buyer=buyer, amount=700, method="wallet")
    pledge_create(campaign=campaign, buyer=backer("c@example.com", top_up=0), amount=700, method="card",
                  payment_method="sandbox_visa")
    campaign = campaign_cancel(campaign=campaign)
    assert campaign.status == CampaignStatus.CANCELED and campaign.settled_at is not None
    assert set(Pledge.objects.values_list("status", flat=True)) == {PledgeStatus.VOIDED}
    assert wallet_account(buyer).available == 2000
    assert not Payment.objects.filter(store=store).exists()
