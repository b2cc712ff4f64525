"""Backer pages (the campaign page without JavaScript, pledging, changing, canceling, "Your
pledges") and the creator's dashboard (create, rewards, publish, updates emailed, backers CSV,
results after the deadline); another store's campaign and another backer's pledge are 404."""

import html
import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from stall.accounts.services import buyer_magic_link
from stall.campaigns.models import Campaign, CampaignStatus, Pledge, PledgeStatus
from stall.campaigns.services import campaign_create, pledge_create, tier_create
from stall.campaigns.settlement import campaigns_due_run
from stall.testing import ProductFactory, StoreFactory
from stall.wallets.tests.test_page_ids import duplicate_ids

from .conftest import DEADLINE, backer, live_campaign, wallet_account

pytestmark = pytest.mark.django_db


def sign_in(client, buyer) -> None:
    client.get(urlsplit(buyer_magic_link(email=buyer.email)).path)


def words(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def test_the_campaign_page_shows_progress_and_rewards_to_anyone(client, store, clock):
    campaign = live_campaign(store, goal=1000)
    tier_create(campaign=campaign, title="Postcard", min_amount=300, quantity=2)
    pledge_create(campaign=campaign, buyer=backer("a@example.com"), amount=250, method="wallet", message="Mossy!")
    page = client.get(reverse("campaigns:campaign", args=[campaign.pk]))
    text = words(page)
    assert page.status_code == 200
    assert "$2.50 of $10.00 pledged" in text and "25%" in text and "1 backer" in text and "14 days left" in text
    assert "Postcard · $3.00 or more 2 of 2 left" in text and "Mossy!" in text
    assert 'value="25"' in page.content.decode()  # the progress element, without JavaScript
    signed_out = client.post(reverse("campaigns:campaign", args=[campaign.pk]), {"amount": "1", "method": "wallet"})
    assert signed_out.status_code == 302 and "/library/" in signed_out["Location"]


def test_a_draft_campaign_page_is_not_found(client, store, clock):
    draft = campaign_create(store=store, title="Secret", goal=100, deadline=DEADLINE)
    assert client.get(reverse("campaigns:campaign", args=[draft.pk])).status_code == 404


def test_a_backer_pledges_a_quarter_changes_it_then_cancels(client, store, clock):
    campaign = live_campaign(store)
    tier = tier_create(campaign=campaign, title="Sticker", min_amount=100, quantity=1)
    buyer = backer("b@example.com")
    sign_in(client, buyer)
    url = reverse("campaigns:campaign", args=[campaign.pk])
    refused = client.post(url, {"amount": "0.50", "tier": tier.pk, "method": "wallet"})
    assert refused.status_code == 400 and "This reward needs a pledge of at least $1.00." in words(refused)
    done = client.post(url, {"amount": "0.25", "tier": "", "method": "wallet", "message": "Small but keen"})
    pledge = Pledge.objects.get()
    assert done.status_code == 302 and done["Location"] == reverse("campaigns:pledge", args=[pledge.pk])
    assert wallet_account(buyer).debits_pending == 25
    page = client.get(done["Location"])
    assert "$0.25 with no reward" in words(page) and "Held in escrow" in words(page)

    changed = client.post(done["Location"], {"action": "change", "amount": "1", "tier": tier.pk, "message": "More"})
    assert changed.status_code == 302
    pledge.refresh_from_db()
    assert (pledge.amount, pledge.tier_id, wallet_account(buyer).debits_pending) == (100, tier.pk, 100)
    assert "$1.00" in words(client.get(reverse("campaigns:mine")))
    client.post(done["Location"], {"action": "cancel"})
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.CANCELED and wallet_account(buyer).debits_pending == 0


def test_another_backers_pledge_is_not_found(client, store, clock):
    campaign = live_campaign(store)
    pledge = pledge_create(campaign=campaign, buyer=backer("a@example.com"), amount=100, method="wallet")
    sign_in(client, backer("other@example.com", top_up=0))
    assert client.get(reverse("campaigns:pledge", args=[pledge.pk])).status_code == 404
    assert client.post(reverse("campaigns:pledge", args=[pledge.pk]), {"action": "cancel"}).status_code == 404


def test_the_creator_creates_publishes_posts_updates_exports_and_sees_results(
    client, creator, store, clock, django_capture_on_commit_callbacks,
):
    client.force_login(creator)
    base = f"/dashboard/{store.slug}/campaigns/"
    bad = client.post(base + "new/", {"title": "Moss", "goal": "0", "deadline": "2027-03-20T18:00",
                                      "time_zone": "Europe/Berlin", "mode": "all_or_nothing"})
    assert bad.status_code == 400 and "goal must be a positive amount" in words(bad)
    past = client.post(base + "new/", {"title": "Moss", "goal": "15", "deadline": "2027-02-20T18:00",
                                       "time_zone": "UTC", "mode": "all_or_nothing"})
    assert past.status_code == 400 and "deadline must be in the future" in words(past)
    created = client.post(base + "new/", {"title": "Moss", "goal": "15", "deadline": "2027-03-15T13:00",
                                          "time_zone": "Europe/Berlin", "mode": "all_or_nothing", "story": "Hi"})
    campaign = Campaign.objects.get()
    assert created.status_code == 302
    assert campaign.deadline == DEADLINE  # 13:00 in Berlin (UTC+1 in March) is 12:00 UTC
    page = f"{base}{campaign.pk}/"
    zine = ProductFactory(store=store, name="Moss zine")
    added = client.post(page + "tiers/", {"tier-title": "Zine", "tier-min_amount": "10", "tier-quantity": "5",
                                         "tier-product": zine.pk})
    assert added.status_code == 302
    client.post(page + "publish/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.LIVE
    tier = campaign.tiers.get()
    pledge_create(campaign=campaign, buyer=backer("a@example.com"), amount=1000, method="wallet", tier=tier)
    pledge_create(campaign=campaign, buyer=backer("b@example.com"), amount=500, method="wallet")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(page + "updates/", {"update-title": "Printing", "update-body": "At the printer.", "update-tier": tier.pk})
    assert [m.to for m in mail.outbox] == [["a@example.com"]] and "At the printer." in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        client.post(page + "updates/", {"update-title": "Thanks", "update-body": "All of you.", "update-tier": ""})
    assert sorted(m.to[0] for m in mail.outbox[1:]) == ["a@example.com", "b@example.com"]

    dashboard_page = client.get(page)
    assert not duplicate_ids(dashboard_page.content.decode())
    dash = words(dashboard_page)
    assert "Pledged $15.00 100% of $15.00" in dash and "Backers 2" in dash
    csv_text = b"".join(client.get(page + "backers.csv").streaming_content).decode()
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("pledge,email,reward,amount") and len(lines) == 3 and "a@example.com,Zine,1000" in csv_text

    clock.move_to(DEADLINE)
    campaigns_due_run()
    client.force_login(creator)  # the creator's session has expired over the fortnight
    response = client.get(page)
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    results = words(response)
    assert "Results Collected: $15.00" in results
    other = StoreFactory(owner=creator)
    assert client.get(f"/dashboard/{other.slug}/campaigns/{campaign.pk}/").status_code == 404
    stranger = StoreFactory()
    assert client.get(f"/dashboard/{stranger.slug}/campaigns/").status_code == 404
