"""The deadline: all-or-nothing met and missed with wallet and card pledges mixed, exact ledger
sums after each, and every pledge settled once however often (or however badly) the task runs."""

from datetime import timedelta

import pytest
from django.core import mail

from stall.campaigns import settlement
from stall.campaigns.models import CampaignStatus, Pledge, PledgeStatus
from stall.campaigns.services import pledge_create, tier_create
from stall.campaigns.settlement import campaign_settle, campaigns_due_run
from stall.ledger.models import Account, AccountKind, Transfer, TransferState, ledger_owner
from stall.orders.models import Entitlement, Order
from stall.payments.models import Payment
from stall.testing import ProductFactory

from .conftest import DEADLINE, account, backer, live_campaign, wallet_account

pytestmark = pytest.mark.django_db


def _escrow(campaign, livemode):
    return account(AccountKind.STORE_PENDING, ledger_owner(campaign.pk, livemode=livemode))


def _balance(store, livemode) -> int:
    """What the store's (real or test) balance holds; 0 before it was opened."""
    found = Account.objects.filter(kind=AccountKind.STORE_BALANCE, owner=ledger_owner(store.pk, livemode=livemode))
    return sum(a.credits_posted - a.debits_posted for a in found)


def _mixed(store, *, goal):
    """A quarter and ten dollars from wallets (the ten for a limited reward with a download), and
    ten dollars by card for the same reward."""
    campaign = live_campaign(store, goal=goal)
    zine = ProductFactory(store=store, name="Moss zine")
    tier = tier_create(campaign=campaign, title="The zine", min_amount=1000, quantity=5, product=zine)
    small, big, card = backer("small@example.com"), backer("big@example.com"), backer("card@example.com", top_up=0)
    pledges = [
        pledge_create(campaign=campaign, buyer=small, amount=25, method="wallet", message="Go moss!"),
        pledge_create(campaign=campaign, buyer=big, amount=1000, method="wallet", tier=tier),
        pledge_create(campaign=campaign, buyer=card, amount=1000, method="card", tier=tier,
                      payment_method="sandbox_visa"),
    ]
    return campaign, tier, zine, pledges, (small, big, card)


def test_a_wallet_pledge_is_held_in_escrow_at_once(store, clock):
    """A wallet pledge is a pending transfer: the wallet can spend that much less, the escrow
    shows it pending, nothing is posted anywhere."""
    campaign, tier, _, (small, big, card), (a, b, _) = _mixed(store, goal=2000)
    livemode = small.livemode
    wallet = wallet_account(b)
    assert (wallet.debits_pending, wallet.available) == (1000, 1000)
    escrow = _escrow(campaign, livemode)
    assert (escrow.credits_pending, escrow.credits_posted, escrow.debits_posted) == (1025, 0, 0)
    assert Transfer.objects.get(pk=big.hold_transfer_id).state == TransferState.PENDING
    assert card.status == PledgeStatus.SAVED and card.saved.method_ref == "sandbox_visa"
    assert not Payment.objects.filter(store=store).exists()  # the card is charged at the deadline
    tier.refresh_from_db()
    assert tier.remaining == 3


def test_all_or_nothing_met_collects_every_pledge_with_exact_sums(store, clock, django_capture_on_commit_callbacks):
    """The goal met: the held wallet pledges are posted and moved to the store's balance, the card is
    charged off-session, the rewards are granted, and every account adds up to the cent."""
    campaign, tier, zine, (small, big, card), (a, b, c) = _mixed(store, goal=2025)
    livemode = small.livemode
    balance_before = {lm: _balance(store, lm) for lm in (True, False)}
    mail.outbox.clear()
    clock.move_to(DEADLINE + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        counts = campaigns_due_run()
    assert counts == {"campaigns": 1, "collected": 3, "voided": 0, "failed": 0}

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SUCCEEDED and campaign.settled_at is not None
    assert set(Pledge.objects.values_list("status", flat=True)) == {PledgeStatus.COLLECTED}
    for buyer, spent in ((a, 25), (b, 1000)):
        wallet = wallet_account(buyer)
        assert (wallet.debits_pending, wallet.debits_posted, wallet.available) == (0, spent, 2000 - spent)
    escrow = _escrow(campaign, livemode)
    assert (escrow.credits_pending, escrow.credits_posted, escrow.debits_posted, escrow.debits_pending) == (0, 1025, 1025, 0)
    assert not Transfer.objects.filter(code="pledge_hold", state=TransferState.PENDING).exists()
    collected = Transfer.objects.filter(code="pledge_collected", reference=campaign.pk)
    assert sum(t.amount for t in collected) == 1025

    card_order = Order.objects.get(payment__store=store, payment__rail="sandbox")
    assert card_order.amount_total == 1000 and Pledge.objects.get(pk=card.pk).order_id == card_order.pk
    # Each wallet was topped up with $20.00 by card (88¢ of fees in its pool); each collected pledge
    # pays its share, as a spend does: 88 × 25 ÷ 2000 = 1.1 → 1, and 88 × 1000 ÷ 2000 = 44.
    shares = {t.reference: t.amount for t in Transfer.objects.filter(code="processor_fee", reference__in=[small.pk, big.pk])}
    assert shares == {small.pk: 1, big.pk: 44}
    gained = {lm: _balance(store, lm) - balance_before[lm] for lm in (True, False)}
    expected = {True: 0, False: 0}
    expected[livemode] += 1025 - 1 - 44
    expected[card_order.livemode] += card_order.net
    assert gained == expected

    # Both backers of the zine tier own the zine.
    assert set(Entitlement.objects.filter(product=zine).values_list("email", flat=True)) == {
        "big@example.com", "card@example.com"}
    outcome = [m for m in mail.outbox if "succeeded" in m.subject]
    assert sorted(m.to[0] for m in outcome) == ["big@example.com", "card@example.com", "small@example.com"]


def test_all_or_nothing_missed_voids_every_pledge_and_charges_nothing(store, clock):
    """The goal missed: every hold is voided back to its wallet, the card is never charged, and the
    escrow ends empty."""
    campaign, tier, _, (small, big, card), (a, b, c) = _mixed(store, goal=5000)
    clock.move_to(DEADLINE)
    counts = campaigns_due_run()
    assert counts == {"campaigns": 1, "collected": 0, "voided": 3, "failed": 0}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.FAILED
    assert set(Pledge.objects.values_list("status", flat=True)) == {PledgeStatus.VOIDED}
    for buyer in (a, b):
        wallet = wallet_account(buyer)
        assert (wallet.debits_pending, wallet.debits_posted, wallet.available) == (0, 0, 2000)
    escrow = _escrow(campaign, small.livemode)
    assert (escrow.credits_pending, escrow.credits_posted, escrow.debits_posted) == (0, 0, 0)
    assert set(Transfer.objects.filter(code="pledge_hold").values_list("state", flat=True)) == {TransferState.VOIDED}
    assert not Transfer.objects.filter(code="pledge_collected").exists()
    assert not Payment.objects.filter(store=store).exists()
    assert not Entitlement.objects.exists()


def test_the_deadline_task_run_twice_settles_each_pledge_once(store, clock):
    campaign, *_ = _mixed(store, goal=1000)
    clock.move_to(DEADLINE)
    first = campaigns_due_run()
    second = campaigns_due_run()
    assert first["collected"] == 3
    assert second == {"campaigns": 0, "collected": 0, "voided": 0, "failed": 0}
    assert campaign_settle(campaign_id=campaign.pk) == {"collected": 0, "voided": 0, "failed": 0}
    assert Transfer.objects.filter(code="pledge_hold", state=TransferState.POSTED).count() == 2
    assert sum(Transfer.objects.filter(code="pledge_collected").values_list("amount", flat=True)) == 1025
    assert Payment.objects.filter(store=store, rail="sandbox").count() == 1


class Killed(Exception):
    pass


def test_a_run_killed_between_two_pledges_is_finished_by_the_next_with_each_settled_once(store, clock, monkeypatch):
    """The task dies after the first committed pledge (a chunk of one); the next run settles the
    rest and nothing twice."""
    campaign, *_ = _mixed(store, goal=1000)
    more = [backer(f"m{i}@example.com") for i in range(3)]
    for buyer in more:
        pledge_create(campaign=campaign, buyer=buyer, amount=300, method="wallet")
    clock.move_to(DEADLINE)
    steps = []

    def die_after_two():
        steps.append(1)
        if len(steps) == 2:
            raise Killed()

    monkeypatch.setattr(settlement, "settle_hook", die_after_two)
    with pytest.raises(Killed):
        campaign_settle(campaign_id=campaign.pk, chunk=1)
    assert Pledge.objects.filter(status=PledgeStatus.COLLECTED).count() == 2
    assert Pledge.objects.filter(status=PledgeStatus.HELD).count() == 3
    monkeypatch.setattr(settlement, "settle_hook", None)
    campaigns_due_run()
    campaigns_due_run()
    assert set(Pledge.objects.values_list("status", flat=True)) == {PledgeStatus.COLLECTED}
    assert Transfer.objects.filter(code="pledge_hold", state=TransferState.POSTED).count() == 5
    assert sum(Transfer.objects.filter(code="pledge_collected").values_list("amount", flat=True)) == 1025 + 900
    escrow = _escrow(campaign, Pledge.objects.filter(method="wallet").first().livemode)
    assert escrow.credits_posted == escrow.debits_posted == 1925 and escrow.credits_pending == 0
    assert Payment.objects.filter(store=store, rail="sandbox").count() == 1


def test_a_card_run_killed_mid_charge_replays_the_same_charge(store, clock, monkeypatch):
    """A crash after the card pledge was claimed leaves it ``charging``; the next run charges it
    with the same idempotency key, so the card is charged once."""
    campaign, *_ = _mixed(store, goal=1000)
    clock.move_to(DEADLINE)
    card = Pledge.objects.get(method="card")
    from stall.campaigns import collect

    real = collect.payment_charge_saved

    def crash(**kwargs):
        real(**kwargs)
        raise Killed()

    monkeypatch.setattr(collect, "payment_charge_saved", crash)
    with pytest.raises(Killed):
        campaign_settle(campaign_id=campaign.pk)
    card.refresh_from_db()
    assert card.status == PledgeStatus.CHARGING
    monkeypatch.setattr(collect, "payment_charge_saved", real)
    campaigns_due_run()
    card.refresh_from_db()
    assert card.status == PledgeStatus.COLLECTED and card.attempts == 1
    assert Payment.objects.filter(store=store, rail="sandbox").count() == 1


def _pool_owed(buyer) -> int:
    from stall.payments.models import Wallet

    pool = account(AccountKind.FEE_POOL, Wallet.objects.get(buyer=buyer, currency="USD").pk)
    return pool.debits_posted - pool.credits_posted


def test_collected_wallet_pledges_pay_their_fee_share_and_the_platform_fee_and_the_books_agree(
    store, clock, settings,
):
    """As any wallet spend: each collected pledge pays its share of its wallet's top-up fee back to
    the wallet's fee pool, and the platform takes its fee (each pledge's rounded on its own); the
    store's balance, the pools, the platform's account and the books agree to the cent."""
    from stall.books.selectors import income_by

    settings.STALL_PLATFORM_FEE_BPS = 250  # 2.5%: 25¢ → 0.625 → 1, $3.00 → 7.5 → 8, $10.00 → 25
    campaign = live_campaign(store, goal=1000)
    amounts = {"a@example.com": 25, "b@example.com": 300, "c@example.com": 1000}
    backers = {email: backer(email) for email in amounts}
    pledges = {email: pledge_create(campaign=campaign, buyer=backers[email], amount=amount, method="wallet")
               for email, amount in amounts.items()}
    livemode = pledges["a@example.com"].livemode
    owed_before = {email: _pool_owed(b) for email, b in backers.items()}
    assert set(owed_before.values()) == {88}  # $20.00 by card: 2.9% + 30¢
    balance_before = _balance(store, livemode)
    clock.move_to(DEADLINE)
    assert campaigns_due_run()["collected"] == 3

    fees = {p.email: Transfer.objects.get(code="processor_fee", reference=p.pk) for p in pledges.values()}
    # 88 × 25 ÷ 2000 = 1.1 → 1; 88 × 300 ÷ 2000 = 13.2 → 13; 88 × 1000 ÷ 2000 = 44.
    assert {email: t.amount for email, t in fees.items()} == {"a@example.com": 1, "b@example.com": 13, "c@example.com": 44}
    for email, transfer in fees.items():
        assert transfer.state == TransferState.POSTED and transfer.credit_account.kind == AccountKind.FEE_POOL
        assert _pool_owed(backers[email]) == 88 - transfer.amount
    platform = Transfer.objects.get(code="platform_fee", reference=campaign.pk)
    assert platform.amount == 1 + 8 + 25
    platform_account = account(AccountKind.PLATFORM_FEES, ledger_owner("platform", livemode=livemode))
    assert platform_account.credits_posted - platform_account.debits_posted == 34
    assert _balance(store, livemode) - balance_before == 1325 - (1 + 13 + 44) - 34

    assert livemode  # the books read the real balance
    income = income_by(store=store, by_kind=False)
    assert len(income) == 1
    (figures,) = income.values()
    assert (figures.processing_fees, figures.platform_fees, figures.other) == (58, 34, 1325)
    assert figures.net == _balance(store, True) == 1325 - 58 - 34

    totals = Account.objects.all()
    assert sum(a.debits_posted for a in totals) == sum(a.credits_posted for a in totals)
    assert sum(a.debits_pending for a in totals) == sum(a.credits_pending for a in totals) == 0


def test_holds_that_empty_a_wallet_pay_exactly_its_top_up_fee_between_them(store, clock):
    """One wallet's $20.00 held by two campaigns' pledges of $10.00: the first collected pays its
    share of the posted balance (44 of 88), the one that empties the wallet pays what is left (44),
    and the pool ends at zero: the fees add up to what the card cost."""
    first, second = live_campaign(store, goal=1000), live_campaign(store, goal=1000)
    buyer = backer("all-in@example.com")
    pledges = [pledge_create(campaign=c, buyer=buyer, amount=1000, method="wallet") for c in (first, second)]
    assert _pool_owed(buyer) == 88
    clock.move_to(DEADLINE)
    assert campaign_settle(campaign_id=first.pk)["collected"] == 1
    assert Transfer.objects.get(code="processor_fee", reference=pledges[0].pk).amount == 44
    assert campaign_settle(campaign_id=second.pk)["collected"] == 1
    assert Transfer.objects.get(code="processor_fee", reference=pledges[1].pk).amount == 44
    assert _pool_owed(buyer) == 0
    assert wallet_account(buyer).available == 0


def test_a_keep_what_you_raise_pledge_pays_its_fee_share_when_collected_at_once(store, clock):
    """Keep-what-you-raise collects a wallet pledge as it comes, with its fee share then."""
    campaign = live_campaign(store, goal=1000, mode="keep_what_you_raise")
    buyer = backer("now@example.com")
    pledge = pledge_create(campaign=campaign, buyer=buyer, amount=500, method="wallet")
    assert Pledge.objects.get(pk=pledge.pk).status == PledgeStatus.COLLECTED
    assert Transfer.objects.get(code="processor_fee", reference=pledge.pk).amount == 22  # 88 × 500 ÷ 2000
    assert _pool_owed(buyer) == 66


def test_pledges_from_one_wallet_in_one_chunk_take_their_shares_in_turn(store, clock):
    """Three pledges from one $20.00 wallet (88¢ of fees) collected in the same chunk: each share is
    taken from what the ones before it left, so the last, which empties the wallet, pays what is
    left and the three add up to the 88¢ (shares taken all from the starting figures would add up
    to 87: 1 + 1 + 85)."""
    campaign = live_campaign(store, goal=1000)
    buyer = backer("thrice@example.com")
    pledges = []
    for amount in (33, 33, 1934):
        clock.shift(timedelta(seconds=1))  # ids sort by time: the chunk takes them in this order
        pledges.append(pledge_create(campaign=campaign, buyer=buyer, amount=amount, method="wallet"))
    assert sorted(p.pk for p in pledges) == [p.pk for p in pledges]
    clock.move_to(DEADLINE)
    assert campaign_settle(campaign_id=campaign.pk)["collected"] == 3
    shares = [Transfer.objects.get(code="processor_fee", reference=p.pk).amount for p in pledges]
    # 88 × 33 ÷ 2000 = 1.45 → 1; 87 × 33 ÷ 1967 = 1.46 → 1; then the rest: 86.
    assert shares == [1, 1, 86]
    assert _pool_owed(buyer) == 0
