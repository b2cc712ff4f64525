"""A reader's journey through posts and tips: sign in by magic link, top up, unlock 25¢ posts with one
click, tip with a message, give one unlock back; the creator sees every sale in the dashboard."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.content.services import post_create, tip_jar_update
from stall.ledger.models import Account
from stall.ledger.selectors import account_balance, account_sums_from_transfers
from stall.orders.models import Order, OrderStatus
from stall.payments.rails.wallet import wallet_for
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def overview_balance(page):
    """The Balance figure on the dashboard's overview."""
    return page.locator(".stats .card").filter(has_text="Balance").locator(".stat")


SECRETS = ["The owl was a decoy.", "The map was upside down.", "The river runs north."]


def test_a_reader_unlocks_three_posts_tips_and_refunds_one(live_server, phone, desktop, shot):
    """A new reader signs in from a post's paywall by magic link, tops up $5 with sandbox_visa, unlocks three
    25¢ posts with one click each, tips $1 with a message, asks for one unlock back with a reason; the wallet
    ends at $3.50, the store at $1.37, and the creator's order list shows three unlocks (one refunded) and a tip."""
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Field Journal", slug="journal")
    posts = [
        post_create(store=store, title=title, amount=25, status="published",
                    body=f"An opening anyone may read.\n\nA second paragraph, still free.\n\n{secret}")
        for title, secret in zip(["The owl", "The map", "The river"], SECRETS)
    ]
    tip_jar_update(store=store, enabled=True, title="Buy me a notebook", goal_amount=2000, goal_title="Printing the zine")

    page = phone.new_page()
    page.goto(f"{live_server.url}/s/journal/")
    expect(page.get_by_role("heading", name="Posts")).to_be_visible()
    expect(page.get_by_role("heading", name="Buy me a notebook")).to_be_visible()
    shot(page, "1-store")

    page.get_by_role("link", name="The owl").click()
    expect(page).to_have_url(re.compile(r"/s/journal/posts/the-owl/$"))
    expect(page.get_by_text("A second paragraph, still free.")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(SECRETS[0])
    shot(page, "2-paywall-signed-out")

    paywall = page.locator("#unlock")
    paywall.get_by_label("Your email").fill("reader@example.com")
    paywall.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_text("A sign-in link is on its way to reader@example.com.")).to_be_visible()
    message = [m for m in mail.outbox if m.to == ["reader@example.com"]][-1]
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", message.body).group(0))
    page.goto(f"{live_server.url}{link.path}?{link.query}")
    expect(page).to_have_url(re.compile(r"/s/journal/posts/the-owl/$"))
    # An empty wallet: the one click would use the tab.
    expect(page.get_by_text("Put on your tab")).to_be_visible()
    shot(page, "3-paywall-signed-in")

    page.goto(f"{live_server.url}/wallet/")
    page.get_by_label(re.compile("4242")).first.check()
    page.get_by_role("button", name="Add $5.00").click()
    expect(page.get_by_text("Added $5.00 to your wallet.")).to_be_visible()
    shot(page, "4-topped-up")

    for index, post in enumerate(posts):
        page.goto(f"{live_server.url}/s/journal/posts/{post.slug}/")
        expect(page.get_by_text("Paid from your wallet")).to_be_visible()
        if index == 0:
            shot(page, "5-one-click")
        page.get_by_role("button", name="Unlock with one click").click()
        expect(page).to_have_url(re.compile(rf"/s/journal/posts/{post.slug}/#post-body$"))
        expect(page.get_by_text(SECRETS[index])).to_be_visible()
        unlocked = "Unlocked for $0.25 from your wallet. Enjoy the read."
        expect(page.get_by_text(unlocked)).to_be_visible()
        if index == 0:
            shot(page, "6-unlocked")

    page.goto(f"{live_server.url}/s/journal/")
    jar = page.locator("#tip-jar")
    jar.get_by_text("$1.00", exact=True).click()
    jar.get_by_label("Message (optional)").fill("Loved the owl story!")
    jar.get_by_label("Your name (optional)").fill("Robin")
    jar.get_by_role("button", name="Tip from wallet").click()
    expect(page).to_have_url(re.compile(r"/s/journal/#tip-jar$"))
    expect(page.get_by_text("Thank you for the $1.00 tip!")).to_be_visible()
    expect(jar.get_by_text("Loved the owl story!")).to_be_visible()
    expect(jar.get_by_text("$1.00 of $20.00")).to_be_visible()
    shot(page, "7-tipped")

    page.goto(f"{live_server.url}/s/journal/posts/the-map/")
    page.get_by_text("Not what you expected?").click()
    page.get_by_role("button", name="Refund my unlock").click()
    expect(page.get_by_text("Tell the creator why you want your money back.")).to_be_visible()
    shot(page, "8-refund-needs-a-reason")
    page.get_by_label("Why do you want your money back?").fill("I had read it elsewhere.")
    page.get_by_role("button", name="Refund my unlock").click()
    refunded = "$0.25 is back in your wallet. The post is locked again."
    expect(page.get_by_text(refunded)).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(SECRETS[1])
    shot(page, "9-refunded")

    page.goto(f"{live_server.url}/wallet/")
    expect(page.get_by_test_id("balance")).to_have_text("$3.50")
    wallet = wallet_for(buyer=buyer_for_email(email="reader@example.com"), currency="USD")
    wallet.account.refresh_from_db()
    # 500 - 3 × 25 - 100 + 25. The store: 175 of sales less the top-up fee's shares (2 + 2 + 2 + 9), less the
    # refunded 25 with its 2 of fee back: 175 - 15 - 25 + 2.
    assert wallet.account.balance == 350
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 137
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account

    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill("maker@example.com")
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    expect(dash).to_have_url(re.compile(r"/dashboard/journal/$"))
    expect(overview_balance(dash)).to_have_text("$1.37")
    dash.get_by_role("link", name="Orders", exact=True).click()
    expect(dash).to_have_url(re.compile(r"/dashboard/journal/orders/$"))
    rows = dash.locator("table.orders tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.locator(".c-kind")).to_have_text(
        ["Tip", "Post unlock", "Post unlock", "Post unlock"])
    expect(rows.locator(".c-status")).to_have_text(["Paid", "Paid", "Refunded", "Paid"])
    shot(dash, "10-creator-orders")
    assert list(Order.objects.order_by("pk").values_list("status", flat=True)) == [
        OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.PAID, OrderStatus.PAID]

    dash.get_by_role("link", name="Tips", exact=True).click()
    expect(dash.get_by_text("Loved the owl story!")).to_be_visible()
    shot(dash, "11-creator-tips")

    creator_phone = phone.new_page()
    creator_phone.context.add_cookies(dash.context.cookies())
    for path, step in (("orders/", "12-creator-orders-phone"), ("tips/", "13-creator-tips-phone"), ("posts/", "14-creator-posts-phone")):
        creator_phone.goto(f"{live_server.url}/dashboard/journal/{path}")
        shot(creator_phone, step)
    creator_phone.get_by_role("link", name="The map").click()
    expect(creator_phone.get_by_role("heading", name="Free preview")).to_be_visible()
    shot(creator_phone, "15-creator-post-edit-phone")


def test_a_reader_with_an_empty_wallet_puts_two_posts_on_a_tab_and_settles_it(live_server, phone, desktop, shot):
    """A second reader with an empty wallet unlocks two 25¢ posts on the tab with one click each, settles
    the tab with one card charge, and the creator sees both unlocks with their share of the settlement fee."""
    creator = UserFactory(email="writer@example.com")
    store = StoreFactory(owner=creator, name="Night Notes", slug="night")
    posts = [
        post_create(store=store, title=title, amount=25, status="published",
                    body=f"Free opening.\n\nStill free.\n\n{secret}")
        for title, secret in zip(["Moths", "Lamps"], SECRETS)
    ]
    buyer = buyer_for_email(email="second@example.com")
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/night/posts/moths/")
    page.locator("#unlock").get_by_label("Your email").fill(buyer.email)
    page.locator("#unlock").get_by_role("button", name="Email me a sign-in link").click()
    message = [m for m in mail.outbox if m.to == [buyer.email]][-1]
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", message.body).group(0))
    page.goto(f"{live_server.url}{link.path}?{link.query}")

    for post, secret in zip(posts, SECRETS):
        page.goto(f"{live_server.url}/s/night/posts/{post.product.slug}/")
        expect(page.get_by_text("Put on your tab")).to_be_visible()
        page.get_by_role("button", name="Unlock with one click").click()
        expect(page.get_by_text(secret)).to_be_visible()
    shot(page, "1-second-post-unlocked-on-tab")

    page.goto(f"{live_server.url}/wallet/tab/")
    expect(page.get_by_test_id("owed")).to_have_text("$0.50")
    page.get_by_label(re.compile("4242")).check()
    page.get_by_role("button", name="Settle now ($0.50)").click()
    expect(page.get_by_text("Your tab is settled: $0.50 paid.")).to_be_visible()
    shot(page, "2-tab-settled")

    orders = Order.objects.filter(store=store).order_by("pk")
    # The 31¢ card fee of settling 50¢ is shared by running total: 15.5¢ rounds up to 16¢, then 15¢.
    assert [(o.amount_total, o.payment.rail, o.fee) for o in orders] == [(25, "tab", 16), (25, "tab", 15)]
    assert account_balance(kind="store_balance", owner=store.pk, currency="USD").amount == 50 - 31
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums

    dash = desktop.new_page()
    dash.goto(f"{live_server.url}/login/")
    dash.get_by_label("Email").fill(creator.email)
    dash.get_by_label("Password").fill(FACTORY_PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    expect(dash).to_have_url(re.compile(r"/dashboard/night/$"))
    expect(overview_balance(dash)).to_have_text("$0.19")
    dash.goto(f"{live_server.url}/dashboard/night/orders/")
    expect(dash.get_by_text("second@example.com")).to_have_count(2)
    shot(dash, "3-creator-orders")
    # Each unlock's page shows its share of the settlement's card fee: 16¢ (64% of 25¢), then 15¢.
    for order, fee in zip(orders, ["−$0.16 (64.00%)", "−$0.15 (60.00%)"]):
        dash.goto(f"{live_server.url}/dashboard/night/orders/{order.pk}/")
        fee_cell = dash.get_by_role("row", name=re.compile("^Processor fee")).locator("td")
        expect(fee_cell).to_have_text(fee)
    shot(dash, "4-creator-order-fee")
