"""One card setup, one pledge. The card page's return URL may be hit more than once for the same
Stripe SetupIntent: a double click, a reload, Stripe's redirect racing a second tab. The pledge
keeps the SetupIntent's id under a unique constraint, so whichever request inserts second is
refused by the database (its limited reward's slot rolled back with it) and answers with the
first pledge; a later replay finds that pledge before asking Stripe anything."""

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from stall.campaigns.errors import PledgeInvalid
from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.services import pledge_create, tier_create
from stall.ledger.tests.test_concurrency import in_threads
from stall.payments.models import SavedPaymentMethod
from stall.payments.tests.conftest import VISA, card, localstripe, localstripe_client, stripe_store  # noqa: F401

from .conftest import backer, live_campaign
from .test_pages import sign_in, words

AT_ONCE = 4


def _card_confirmed(client, campaign, localstripe_client, card, *, tier=None) -> str:  # noqa: F811
    """Pledge by card on the page and confirm the card in "Stripe.js": the SetupIntent's id."""
    response = client.post(reverse("campaigns:campaign", args=[campaign.pk]), {
        "amount": "12.00", "method": "card", "payment_method": "stripe", "tier": tier.pk if tier else ""})
    assert response.status_code == 302, words(response)
    setup_id = urlsplit(response["Location"]).path.rstrip("/").rsplit("/", 1)[1]
    assert setup_id.startswith("seti_")
    setup = localstripe_client.v1.setup_intents.confirm(setup_id, params={"payment_method": card(VISA)})
    assert setup.status == "succeeded"
    return setup_id


@pytest.mark.django_db(transaction=True)
def test_the_return_page_hit_at_once_makes_one_pledge(stripe_store, clock, card, localstripe_client):  # noqa: F811
    """Four requests for the same finished SetupIntent at the same instant, one connection each,
    from the same signed-in browser: one pledge, one slot of the limited reward taken, and every
    request sent to that pledge."""
    campaign = live_campaign(stripe_store, goal=1000)
    tier = tier_create(campaign=campaign, title="Signed copy", min_amount=500, quantity=5)
    browser = Client()
    sign_in(browser, backer("twice@example.com", top_up=0))
    setup_id = _card_confirmed(browser, campaign, localstripe_client, card, tier=tier)
    tabs = [browser]
    for _ in range(AT_ONCE - 1):
        tab = Client()
        tab.cookies = browser.cookies  # the same browser: its session, with the pledge waiting in it
        tabs.append(tab)
    url = f"/campaigns/{campaign.pk}/card/{setup_id}/return/"

    results, errors = in_threads(AT_ONCE, lambda i: tabs[i].get(url))

    assert errors == [None] * AT_ONCE
    pledge = Pledge.objects.get()
    assert (pledge.status, pledge.setup_ref, pledge.amount, pledge.tier_id) == (PledgeStatus.SAVED, setup_id, 1200, tier.pk)
    assert [(r.status_code, r["Location"]) for r in results] == [
        (302, reverse("campaigns:pledge", args=[pledge.pk]))] * AT_ONCE
    tier.refresh_from_db()
    assert tier.remaining == 4


@pytest.mark.django_db
def test_a_replayed_setup_answers_with_its_pledge_and_is_refused_elsewhere(client, stripe_store, clock, card,  # noqa: F811
                                                                           localstripe_client):  # noqa: F811
    """The same SetupIntent given to the pledge service again (the API, or a page whose session
    lost track of it): the first pledge, nothing asked of Stripe, no second slot; given for
    another campaign: refused, nothing pledged there."""
    campaign = live_campaign(stripe_store, goal=1000)
    tier = tier_create(campaign=campaign, title="Signed copy", min_amount=500, quantity=5)
    buyer = backer("replay@example.com", top_up=0)
    sign_in(client, buyer)
    setup_id = _card_confirmed(client, campaign, localstripe_client, card, tier=tier)

    def pledge(on):
        return pledge_create(campaign=on, buyer=buyer, amount=1200, method="card", tier=tier if on == campaign else None,
                             payment_method=setup_id)

    first = pledge(campaign)
    assert pledge(campaign).pk == first.pk
    back = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    assert back.status_code == 302 and back["Location"] == reverse("campaigns:pledge", args=[first.pk])
    assert Pledge.objects.count() == 1 and SavedPaymentMethod.objects.count() == 1
    tier.refresh_from_db()
    assert tier.remaining == 4

    other = live_campaign(stripe_store, goal=1000)
    with pytest.raises(PledgeInvalid) as refused:
        pledge(other)
    assert refused.value.code == "setup_used"
    assert not Pledge.objects.filter(campaign=other).exists()
    # Another buyer following the first one's return URL finds nothing of theirs.
    client.logout()
    sign_in(client, backer("someone@example.com", top_up=0))
    assert client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/").status_code == 404
