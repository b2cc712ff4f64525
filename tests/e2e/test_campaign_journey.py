"""Browser journey for crowdfunding (#10): one backer pledges 25¢ from the wallet and another $10 by
card for a limited reward; the creator posts an update; the deadline passes; both pledges are
collected, the reward is in both backers' libraries, and the creator sees the result.

Time travel: time-machine moves the clock of the whole test process, the live server's thread
included; the deadline task itself (``campaigns_due_run``, what the periodic Huey task runs) is
called directly from the test with the clock past the deadline, not by a Huey worker."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.services import campaign_create, campaign_publish, tier_create
from stall.campaigns.settlement import campaigns_due_run
from stall.ledger.models import Account
from stall.ledger.selectors import account_sums_from_transfers
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory, product_with_file
from stall.wallets.services import wallet_top_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, email: str) -> None:
    link = urlsplit(buyer_magic_link(email=email))
    page.goto(f"{live_server.url}{link.path}?{link.query}")


def test_two_backers_an_update_and_the_deadline(live_server, browser, phone, desktop, shot):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Moss Press", slug="moss")
    zine = product_with_file(store=store, name="Moss zine", amount=500)
    campaign = campaign_publish(campaign=campaign_create(
        store=store, title="A field guide to moss", goal=1000, deadline=timezone.now() + timedelta(hours=2),
        story="We walk, we **look**, we print.",
    ))
    tier_create(campaign=campaign, title="The zine", min_amount=25, quantity=2, product=zine,
                description="A printed and a PDF copy.")
    small = buyer_for_email(email="quarter@example.com")
    wallet_top_up(buyer=small, amount=500, currency="USD", payment_method="sandbox_visa")

    # A backer pledges 25¢ from the wallet, on a phone.
    page = phone.new_page()
    sign_in(page, live_server, small.email)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    expect(page.get_by_role("heading", name="A field guide to moss")).to_be_visible()
    expect(page.get_by_test_id("raised")).to_have_text("$0.00")
    page.get_by_label(re.compile("The zine")).check()
    page.get_by_label("Amount").fill("0.25")
    page.get_by_label("Public message (optional)").fill("Small but keen")
    shot(page, "1-pledge-form")
    page.get_by_role("button", name="Pledge from my wallet").click()
    expect(page.get_by_test_id("pledge-status")).to_have_text("Held in escrow")
    shot(page, "2-pledged-quarter")

    # Another pledges $10 by card for the same limited reward; the card is saved, not charged.
    other = desktop.new_page()
    sign_in(other, live_server, "tenner@example.com")
    other.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    expect(other.get_by_text("1 of 2 left")).to_be_visible()
    other.get_by_label(re.compile("The zine")).check()
    other.get_by_label("Amount").fill("10")
    other.get_by_label(re.compile("4242")).check()
    other.get_by_role("button", name="Pledge by card").click()
    expect(other.get_by_test_id("pledge-status")).to_have_text("Card saved")
    other.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    expect(other.get_by_test_id("raised")).to_have_text("$10.25")
    expect(other.get_by_text("Sold out")).to_be_visible()
    shot(other, "3-campaign-sold-out")

    # The creator posts an update to the backers.
    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill(creator.email)
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    dash.get_by_role("link", name="Campaigns", exact=True).click()
    dash.get_by_role("link", name="A field guide to moss").click()
    dash.get_by_text("Post an update").click()
    dash.locator("#id_update-title").fill("At the printer")
    dash.get_by_label("Update").fill("The zines are being printed.")
    mail.outbox.clear()
    dash.get_by_role("button", name="Post and email").click()
    expect(dash.get_by_text("Update posted and emailed to backers.")).to_be_visible()
    assert sorted(m.to[0] for m in mail.outbox) == ["quarter@example.com", "tenner@example.com"]
    shot(dash, "4-creator-update")

    # The deadline passes: the task collects both pledges.
    with time_machine.travel(campaign.deadline + timedelta(minutes=1), tick=True):
        assert campaigns_due_run()["collected"] == 2
        assert set(Pledge.objects.values_list("status", flat=True)) == {PledgeStatus.COLLECTED}

        for backer_page, email in ((page, "quarter@example.com"), (other, "tenner@example.com")):
            sign_in(backer_page, live_server, email)
            backer_page.goto(f"{live_server.url}/library/")
            expect(backer_page.get_by_text("Moss zine").first).to_be_visible()
        shot(page, "5-reward-in-library")
        page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
        expect(page.get_by_test_id("raised")).to_have_text("$10.25")
        expect(page.get_by_test_id("status")).to_have_text("Succeeded")

        dash.reload()
        expect(dash.get_by_test_id("result-collected")).to_have_text("$10.25")
        shot(dash, "6-creator-results")

    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
