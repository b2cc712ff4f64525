"""A card that fails at the deadline walks seven days of recovery: emailed at once, retried with
an email on days 3 and 6, dropped on day 7; or paid another way in between. The page never counts
it as collected until it is."""

from datetime import timedelta

import pytest
from django.core import mail

from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.selectors import campaign_totals
from stall.campaigns.services import pledge_create, pledge_pay_another_way
from stall.campaigns.settlement import campaigns_due_run, recovery_run
from stall.payments.models import Payment

from .conftest import DEADLINE, backer, live_campaign, wallet_account

pytestmark = pytest.mark.django_db


def _declined_pledge(store, *, email="card@example.com", top_up=0):
    campaign = live_campaign(store, goal=1000)
    pledge_create(campaign=campaign, buyer=backer("w@example.com"), amount=1000, method="wallet")
    pledge = pledge_create(campaign=campaign, buyer=backer(email, top_up=top_up), amount=700, method="card",
                           payment_method="sandbox_declined")
    return campaign, pledge


def test_a_declined_card_is_retried_emailed_three_times_then_dropped(store, clock, django_capture_on_commit_callbacks):
    campaign, pledge = _declined_pledge(store)
    clock.move_to(DEADLINE)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert campaigns_due_run()["failed"] == 1
    pledge.refresh_from_db()
    assert (pledge.status, pledge.reminders_sent) == (PledgeStatus.FAILED, 1)
    totals = campaign_totals(campaign=campaign)
    assert (totals.collected, totals.uncollected) == (1000, 700)  # the card is not counted as collected

    def walk(days):
        clock.move_to(DEADLINE + timedelta(days=days, minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            return recovery_run()

    assert walk(2) == {"collected": 0, "failed": 0, "dropped": 0}  # not due yet
    assert walk(3) == {"collected": 0, "failed": 1, "dropped": 0}
    assert walk(5) == {"collected": 0, "failed": 0, "dropped": 0}
    assert walk(6) == {"collected": 0, "failed": 1, "dropped": 0}
    assert walk(7) == {"collected": 0, "failed": 0, "dropped": 1}
    assert walk(8) == {"collected": 0, "failed": 0, "dropped": 0}
    pledge.refresh_from_db()
    assert (pledge.status, pledge.attempts) == (PledgeStatus.DROPPED, 3)
    failed_mails = [m for m in mail.outbox if "could not be charged" in m.subject]
    assert [m.to for m in failed_mails] == [["card@example.com"]] * 3
    assert pledge.pk in failed_mails[0].body and "another way" in failed_mails[0].body
    assert Payment.objects.filter(store=store, status="failed").count() == 3
    totals = campaign_totals(campaign=campaign)
    assert (totals.collected, totals.uncollected, totals.dropped) == (1000, 0, 700)


def test_a_declined_card_paid_from_the_wallet_during_recovery_is_collected(store, clock, django_capture_on_commit_callbacks):
    campaign, pledge = _declined_pledge(store, top_up=2000)
    clock.move_to(DEADLINE)
    campaigns_due_run()
    clock.move_to(DEADLINE + timedelta(days=4))
    pledge = pledge_pay_another_way(pledge=Pledge.objects.get(pk=pledge.pk), method="wallet")
    assert pledge.status == PledgeStatus.COLLECTED
    wallet = wallet_account(pledge.buyer)
    assert (wallet.debits_posted, wallet.debits_pending) == (700, 0)
    clock.move_to(DEADLINE + timedelta(days=8))
    assert recovery_run() == {"collected": 0, "failed": 0, "dropped": 0}
    assert campaign_totals(campaign=campaign).collected == 1700


def test_a_declined_card_replaced_by_another_card_is_collected(store, clock):
    campaign, pledge = _declined_pledge(store)
    clock.move_to(DEADLINE)
    campaigns_due_run()
    pledge = pledge_pay_another_way(pledge=Pledge.objects.get(pk=pledge.pk), method="card",
                                    payment_method="sandbox_visa")
    assert pledge.status == PledgeStatus.COLLECTED and pledge.attempts == 2
    assert Payment.objects.filter(store=store, status="succeeded").count() == 1
