"""Browser journey for broadcasts (#12): a creator writes a broadcast to the buyers of one
product, previews it, sends it, and watches its progress update on the page while the worker
sends it in batches."""

import re

import pytest
from django.core import mail
from huey.contrib.djhuey import HUEY
from playwright.sync_api import expect

from stall.audience import broadcasts as bc
from stall.audience.models import Broadcast, Subscriber, SubscriberSource, SubscriberStatus
from stall.audience.services import customer_ensure
from stall.testing import FACTORY_PASSWORD, ProductFactory, StoreFactory, UserFactory, buy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queued_tasks():
    """Tasks wait in the queue, as with a real worker, so the page can show a send in progress."""
    HUEY.immediate = False
    yield
    HUEY.flush()
    HUEY.immediate = True


def test_a_creator_sends_a_broadcast_to_buyers_of_a_product_and_sees_it_progress(live_server, desktop, shot, queued_tasks):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Riso Press", slug="riso")
    zine = ProductFactory(store=store, name="Spring zine", amount=500)
    poster = ProductFactory(store=store, name="Poster", amount=900)
    HUEY.immediate = True  # the purchases' receipts and webhooks run at once
    for i in range(5):
        buy(store=store, product=zine, email=f"fan{i}@example.com")
    buy(store=store, product=poster, email="poster@example.com")
    HUEY.immediate = False
    for email in [f"fan{i}@example.com" for i in range(5)] + ["poster@example.com"]:
        Subscriber.objects.create(store=store, email=email, customer=customer_ensure(store=store, email=email),
                                  status=SubscriberStatus.SUBSCRIBED, source=SubscriberSource.CHECKOUT)
    mail.outbox.clear()

    page = desktop.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(creator.email)
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Audience", exact=True).click()
    expect(page.get_by_test_id("list-counts")).to_contain_text("6 subscribed")
    page.get_by_role("link", name="Broadcasts").click()
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Subject").fill("The summer zine is coming")
    page.get_by_label("Email").fill("Thank you for buying the **spring** issue.")
    page.get_by_label("Send to").select_option(label="Buyers of a product")
    page.get_by_role("button", name="Save and preview").click()
    expect(page.get_by_text("Choose one for “Buyers of a product”.")).to_be_visible()
    page.get_by_label("Which one").select_option(label="Spring zine")
    page.get_by_role("button", name="Save and preview").click()
    expect(page.get_by_test_id("recipient-count")).to_contain_text("Goes to 5 subscribers")
    expect(page.get_by_test_id("broadcast-preview").locator("strong")).to_have_text("spring")
    shot(page, "1-preview")

    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_test_id("progress-count")).to_have_text("0 of 5 sent")
    broadcast = Broadcast.objects.get(store=store)
    # The worker sends a first batch; the page, polling, shows it without a reload.
    bc.broadcast_recipients_write(broadcast=broadcast)
    bc.broadcast_send_batch(broadcast=broadcast, limit=2)
    expect(page.get_by_test_id("progress-count")).to_have_text("2 of 5 sent")
    shot(page, "2-sending")
    assert bc.broadcast_send(broadcast_id=broadcast.pk) is True
    expect(page.get_by_test_id("broadcast-progress")).to_contain_text("Sent")
    expect(page.get_by_test_id("progress-count")).to_have_text("5 of 5 sent")
    shot(page, "3-sent")
    assert sorted(m.to[0] for m in mail.outbox) == [f"fan{i}@example.com" for i in range(5)]
    assert all(re.search(r"/list/unsubscribe/", m.extra_headers["List-Unsubscribe"]) for m in mail.outbox)
