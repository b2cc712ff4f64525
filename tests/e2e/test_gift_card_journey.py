"""Browser journey for gift cards (#11): a giver buys a $5 gift card for a friend with a test card;
the friend gets the code by email, signs in from it, redeems the card into their wallet and spends
25¢ of it on a post with one click; the creator sees what the store still owes on its cards."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.catalog.models import ProductKind
from stall.content.services import post_create
from stall.ledger.models import Account
from stall.ledger.selectors import account_sums_from_transfers
from stall.payments.rails.wallet import wallet_for
from stall.testing import FACTORY_PASSWORD, ProductFactory, StoreFactory, UserFactory
from stall.wallets.models import GiftCard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "The heron nests in the reeds."


def test_a_gift_card_is_bought_emailed_redeemed_and_spent_on_a_25_cent_post(live_server, phone, desktop, shot):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="River Notes", slug="river")
    ProductFactory(store=store, name="River gift card", slug="gift", kind=ProductKind.GIFT_CARD, amount=500)
    post_create(store=store, title="The heron", amount=25, status="published",
                body=f"Free opening.\n\nStill free.\n\n{SECRET}")

    # The giver finds the gift card on the store page and buys it for a friend.
    giver = phone.new_page()
    giver.goto(f"{live_server.url}/s/river/")
    giver.get_by_role("link", name=re.compile("River gift card")).click()
    expect(giver).to_have_url(re.compile(r"/s/river/gift/gift/$"))
    expect(giver.get_by_text("A gift card for River Notes: the recipient gets a code by email")).to_be_visible()
    giver.get_by_label("Your email").fill("giver@example.com")
    giver.get_by_label("Recipient's email").fill("not an email")
    giver.get_by_role("button", name="Continue to payment").click()
    expect(giver.get_by_text("Enter a valid email address.")).to_be_visible()
    giver.get_by_label("Recipient's email").fill("friend@example.com")
    giver.get_by_label("Recipient's name").fill("Robin")
    giver.get_by_label("From", exact=True).fill("Sam")
    giver.get_by_label("Message").fill("For your rainy days.")
    shot(giver, "1-gift-form")
    giver.get_by_role("button", name="Continue to payment").click()
    expect(giver.get_by_role("heading", name="Pay $5.00")).to_be_visible()
    giver.get_by_label(re.compile("4242")).check()
    giver.get_by_role("button", name="Pay $5.00").click()
    expect(giver.get_by_role("heading", name="Thank you!")).to_be_visible()
    shot(giver, "2-gift-paid")

    # The friend's email: the code, the message, and a sign-in link to the redeem page.
    email = [m for m in mail.outbox if m.to == ["friend@example.com"]][-1]
    assert "Sam sent you a $5.00 gift card for River Notes." in email.body and "For your rainy days." in email.body
    code = re.search(r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){4}", email.body).group(0)
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", email.body).group(0))

    friend = desktop.new_page()
    friend.goto(f"{live_server.url}{link.path}?{link.query}")
    expect(friend.get_by_role("heading", name="Redeem a gift card")).to_be_visible()
    friend.get_by_label("Gift card code").fill("0000-0000-0000-0000-0000")
    friend.get_by_role("button", name="Redeem", exact=True).click()
    expect(friend.get_by_text("No gift card of this store has that code. Check it and try again.")).to_be_visible()
    friend.get_by_label("Gift card code").fill(code.lower().replace("-", " "))
    shot(friend, "3-redeem")
    friend.get_by_role("button", name="Redeem", exact=True).click()
    expect(friend.get_by_text("$5.00 from your gift card is in your wallet.")).to_be_visible()
    expect(friend.get_by_test_id("balance")).to_have_text("$5.00")
    shot(friend, "4-wallet")

    # 25¢ of it on a post, with one click.
    friend.goto(f"{live_server.url}/s/river/posts/the-heron/")
    friend.get_by_role("button", name="Unlock with one click").click()
    expect(friend.get_by_text(SECRET)).to_be_visible()
    shot(friend, "5-post-unlocked")
    friend_buyer = buyer_for_email(email="friend@example.com")
    assert wallet_for(buyer=friend_buyer, currency="USD").account.balance == 475
    card = GiftCard.objects.get(store=store)
    assert (card.status, card.balance, card.redeemed_by_id) == ("redeemed", 0, friend_buyer.pk)

    # The creator sees nothing left owed on cards, and the card's history.
    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill(creator.email)
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    dash.goto(f"{live_server.url}/dashboard/river/gift-cards/")
    expect(dash.get_by_test_id("liability")).to_contain_text("Outstanding: $0.00 owed on 0 unredeemed cards")
    dash.get_by_role("link", name=card.code_hint).click()
    expect(dash.get_by_text("into the wallet of friend@example.com")).to_be_visible()
    shot(dash, "6-creator-card-history")

    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
