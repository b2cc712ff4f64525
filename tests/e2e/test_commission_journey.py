"""Browser journey for commissions (#11): a creator opens a commission offer with limited slots;
a buyer orders it with a brief and a reference file and pays; the creator answers in the thread and
delivers; the buyer accepts, and the held payment reaches the creator's balance."""

import re

import pytest
from playwright.sync_api import expect

from stall.commissions.models import Commission
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_commission_is_ordered_delivered_and_accepted(live_server, browser, phone, desktop, shot, tmp_path):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Ada's Studio", slug="ada")
    sketch = tmp_path / "my-cat.txt"
    sketch.write_text("a cat, orange, very round\n")
    work = tmp_path / "cat-knight.txt"
    work.write_text("the finished portrait\n")

    # The creator opens a commission offer: $40, two slots, five days to accept.
    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill(creator.email)
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    dash.get_by_role("link", name="Commissions", exact=True).click()
    dash.get_by_label("Name").fill("Pet portrait")
    dash.get_by_label("Price (USD)").fill("40")
    dash.get_by_label("Open slots").fill("2")
    dash.get_by_label("Days for the buyer to accept").fill("5")
    dash.get_by_role("button", name="Open for commissions").click()
    expect(dash.get_by_text("“Pet portrait” is open for commissions.")).to_be_visible()

    # A buyer on a phone orders it with a brief and a reference file, and pays by card.
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/ada/")
    page.get_by_role("link", name=re.compile("Pet portrait")).click()
    expect(page.get_by_test_id("slots-left")).to_have_text("2 commission slots open")
    page.get_by_role("link", name="Buy").click()
    page.get_by_label("Your email").fill("fan@example.com")
    page.get_by_label("Your brief").fill("My cat as a knight, please. Orange armour.")
    page.get_by_label("Reference files").set_input_files(str(sketch))
    shot(page, "1-brief")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Pay $40.00")).to_be_visible()
    page.get_by_label(re.compile("4242")).check()
    page.get_by_role("button", name="Pay $40.00").click()
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    page.get_by_role("link", name="Follow your commission").click()
    expect(page.get_by_test_id("commission-status")).to_have_text("Ada's Studio is working on it.")
    page.get_by_role("textbox", name="Message").fill("Could the sword be wooden?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Message sent.")).to_be_visible()
    buyer_url = page.url

    commission = Commission.objects.get()
    held = commission.amount_held
    assert held > 0 and Transfer.objects.get(pk=commission.hold_transfer_id).state == "pending"

    # The creator finds it in the queue, answers and delivers a note and the file.
    dash.get_by_role("link", name="Commissions", exact=True).click()
    dash.get_by_role("link", name="fan@example.com").click()
    expect(dash.get_by_text("My cat as a knight, please. Orange armour.")).to_be_visible()
    expect(dash.get_by_text("Could the sword be wooden?")).to_be_visible()
    expect(dash.get_by_role("link", name="my-cat.txt")).to_be_visible()
    dash.get_by_role("textbox", name="Message").fill("Wooden it is.")
    dash.get_by_role("button", name="Send").click()
    expect(dash.get_by_text("Message sent.")).to_be_visible()
    dash.get_by_label("Note to the buyer").fill("Here is Sir Whiskers.")
    dash.get_by_label("Files").set_input_files(str(work))
    dash.get_by_role("button", name="Deliver").click()
    expect(dash.get_by_text("Delivered. The buyer is told by email.")).to_be_visible()
    shot(dash, "2-delivered")

    # The buyer sees the delivery, downloads it, and accepts.
    page.goto(buyer_url)
    expect(page.get_by_text("Wooden it is.")).to_be_visible()
    expect(page.get_by_text("Here is Sir Whiskers.")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="cat-knight.txt").click()
    assert open(download.value.path()).read() == "the finished portrait\n"
    page.get_by_role("button", name="Accept the delivery").click()
    expect(page.get_by_test_id("commission-status")).to_have_text("Accepted. Thank you!")
    shot(page, "3-accepted")

    commission.refresh_from_db()
    assert commission.status == "accepted"
    assert Transfer.objects.get(pk=commission.hold_transfer_id).state == "posted"
    balance = Account.objects.get(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD")
    assert (balance.balance, balance.credits_pending) == (held, 0)
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
