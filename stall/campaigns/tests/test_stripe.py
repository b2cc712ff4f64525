"""Card pledges through Stripe, against localstripe: the card typed into Stripe's form on the card
page saves it with a SetupIntent (with the bank's check on that page when the bank asks for one),
and at a successful deadline it is charged off-session."""

from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.settlement import campaigns_due_run
from stall.orders.models import Order
from stall.payments.models import Payment, PaymentStatus
from stall.payments.tests.conftest import (  # noqa: F401 - fixtures
    THREE_D_SECURE,
    VISA,
    buyer_browser,
    card,
    localstripe,
    localstripe_client,
    stripe_store,
)

from .conftest import DEADLINE, backer, live_campaign
from .test_pages import sign_in, words

pytestmark = pytest.mark.django_db


def attribute(page, name: str) -> str:
    html = page.content.decode()
    start = html.index(f'{name}="') + len(name) + 2
    return html[start:html.index('"', start)]


def pledge_by_card(client, campaign, amount="12.00"):
    """Press "Pledge by card" with "Card" (Stripe's form) chosen: the card page, with its SetupIntent."""
    response = client.post(reverse("campaigns:campaign", args=[campaign.pk]),
                           {"amount": amount, "method": "card", "payment_method": "stripe", "message": "For moss"})
    assert response.status_code == 302, words(response)
    path = urlsplit(response["Location"]).path
    setup_id = path.rstrip("/").rsplit("/", 1)[1]
    assert path == f"/campaigns/{campaign.pk}/card/{setup_id}/" and setup_id.startswith("seti_")
    return setup_id, client.get(path)


def test_the_campaign_page_offers_stripes_card_form_where_the_store_takes_cards(client, stripe_store, clock):
    """A store with its own Stripe keys: the pledge form offers "Card" (typed on Stripe's form)."""
    campaign = live_campaign(stripe_store, goal=1000)
    html = client.get(reverse("campaigns:campaign", args=[campaign.pk])).content.decode()
    assert 'value="stripe"' in html and "Pledge by card" in html


def test_a_card_pledge_is_saved_with_a_setup_intent_and_charged_off_session_at_the_deadline(
    client, stripe_store, clock, card, localstripe_client,
):
    """The card page mounts Stripe's form for the pledge's SetupIntent; once the buyer's card is
    confirmed there, the return page makes the pledge with the saved card (nothing charged), and
    the successful deadline charges it off-session once, making the order."""
    campaign = live_campaign(stripe_store, goal=1000)
    buyer = backer("card-backer@example.com", top_up=0)
    sign_in(client, buyer)
    setup_id, page = pledge_by_card(client, campaign)
    assert page.status_code == 200
    assert attribute(page, "data-mode") == "setup"
    secret = attribute(page, "data-client-secret")
    assert secret.startswith(f"{setup_id}_secret_")
    assert attribute(page, "data-return-url") == f"http://testserver/campaigns/{campaign.pk}/card/{setup_id}/return/"
    assert "js.stripe.com" in page["Content-Security-Policy"] or "localhost" in page["Content-Security-Policy"]
    assert not Pledge.objects.exists()

    # The buyer's browser: the card typed into the Payment Element, confirmSetup.
    setup = localstripe_client.v1.setup_intents.confirm(setup_id, params={"payment_method": card(VISA)}).to_dict()
    assert setup["status"] == "succeeded" and setup["usage"] == "off_session"
    back = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    pledge = Pledge.objects.get()
    assert back.status_code == 302 and back["Location"] == reverse("campaigns:pledge", args=[pledge.pk])
    assert (pledge.method, pledge.status, pledge.amount, pledge.message) == ("card", PledgeStatus.SAVED, 1200, "For moss")
    assert (pledge.saved.rail, pledge.saved.method_ref) == ("stripe", setup["payment_method"])
    assert pledge.saved.customer_ref == setup["customer"]
    assert not Payment.objects.exists()
    # Reloading the return page pledges nothing twice: it answers with the pledge already made.
    again = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    assert again.status_code == 302 and again["Location"] == reverse("campaigns:pledge", args=[pledge.pk])
    assert Pledge.objects.count() == 1

    clock.move_to(DEADLINE)
    assert campaigns_due_run()["collected"] == 1
    pledge.refresh_from_db()
    payment = Payment.objects.get(rail="stripe")
    assert (pledge.status, payment.status, payment.amount) == (PledgeStatus.COLLECTED, PaymentStatus.SUCCEEDED, 1200)
    intent = localstripe_client.v1.payment_intents.retrieve(payment.rail_reference).to_dict()
    assert (intent["status"], intent["customer"], intent["payment_method"]) == (
        "succeeded", setup["customer"], setup["payment_method"])
    order = Order.objects.get(payment=payment)
    assert pledge.order_id == order.pk and order.amount_total == 1200
    assert campaigns_due_run()["collected"] == 0
    assert Payment.objects.filter(rail="stripe").count() == 1


def test_a_card_whose_bank_asks_for_confirmation_is_confirmed_on_the_page_before_the_pledge(
    client, stripe_store, clock, card, localstripe_client, buyer_browser, django_capture_on_commit_callbacks,
):
    """A card whose bank wants the cardholder when it is saved (SetupIntent ``requires_action``):
    back from Stripe's form, the return page sends the buyer to the card page in the bank's-check
    step (Stripe.js's handleNextAction with the same SetupIntent), and makes no pledge until that
    check is passed; then the pledge is made with the card.

    At the deadline localstripe asks for the cardholder again (it treats every authenticating test
    card as asking on every payment, unlike Stripe's 4000002500003155 which asks only when saved),
    so the off-session charge fails with ``authentication_required`` and the pledge starts its
    seven days of recovery with an email: nothing is counted as collected."""
    campaign = live_campaign(stripe_store, goal=1000)
    buyer = backer("3ds-backer@example.com", top_up=0)
    sign_in(client, buyer)
    setup_id, _ = pledge_by_card(client, campaign)
    setup = localstripe_client.v1.setup_intents.confirm(setup_id, params={"payment_method": card(THREE_D_SECURE)})
    assert setup.status == "requires_action"

    back = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    assert back.status_code == 302 and urlsplit(back["Location"]).path == f"/campaigns/{campaign.pk}/card/{setup_id}/"
    assert not Pledge.objects.exists()
    page = client.get(back["Location"])
    assert attribute(page, "data-mode") == "next_action"
    assert "Confirm with your bank" in words(page)
    secret = attribute(page, "data-client-secret")
    assert secret.startswith(f"{setup_id}_secret_")

    buyer_browser.confirm_setup(setup_id, secret)  # the bank's check passed, in Stripe.js
    back = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    pledge = Pledge.objects.get()
    assert back["Location"] == reverse("campaigns:pledge", args=[pledge.pk])
    assert (pledge.status, pledge.saved.label) == (PledgeStatus.SAVED, "Visa •••• 3184")

    mail.outbox.clear()
    clock.move_to(DEADLINE)
    with django_capture_on_commit_callbacks(execute=True):
        assert campaigns_due_run()["failed"] == 1
    pledge.refresh_from_db()
    payment = Payment.objects.get(rail="stripe")
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "authentication_required")
    assert pledge.status == PledgeStatus.FAILED and pledge.next_attempt_at is not None
    assert {m.to[0] for m in mail.outbox} == {"3ds-backer@example.com"}
    assert [m.subject for m in mail.outbox if "could not be charged" in m.subject] == [
        "Your pledge to A field guide to moss could not be charged"]


def test_a_card_refused_on_stripes_form_makes_no_pledge(client, stripe_store, clock):
    """Back from the card page with no finished card: the card page again, nothing pledged; another
    buyer (or a made-up SetupIntent) finds no such page."""
    campaign = live_campaign(stripe_store, goal=1000)
    buyer = backer("undecided@example.com", top_up=0)
    sign_in(client, buyer)
    setup_id, _ = pledge_by_card(client, campaign)
    back = client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/return/")
    assert urlsplit(back["Location"]).path == f"/campaigns/{campaign.pk}/card/{setup_id}/"
    assert not Pledge.objects.exists()
    assert client.get(f"/campaigns/{campaign.pk}/card/seti_made_up/").status_code == 404
    client.logout()
    sign_in(client, backer("other@example.com", top_up=0))
    assert client.get(f"/campaigns/{campaign.pk}/card/{setup_id}/").status_code == 404
