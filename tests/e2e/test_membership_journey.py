"""Browser journeys for memberships (#8): a creator makes a $3/month tier and gates a post to it; a
reader joins by card on the hosted payment page, reads the gated post, upgrades, cancels at the
period's end, and the creator sees it all on the dashboard. A second reader pays 25¢ per post
from the wallet until cap-to-subscribe makes them a member."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.content.services import post_create
from stall.ledger.models import Account
from stall.ledger.selectors import account_sums_from_transfers
from stall.memberships.models import Subscription
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.models import Order
from stall.payments.rails.wallet import wallet_for
from stall.testing import FACTORY_PASSWORD, StoreFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "The owl was a decoy."
BODY = f"An opening anyone may read.\n\nA second paragraph, still free.\n\n{SECRET}"


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


def follow_sign_in_link(page, live_server, email: str) -> None:
    message = [m for m in mail.outbox if m.to == [email]][-1]
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", message.body).group(0))
    page.goto(f"{live_server.url}{link.path}?{link.query}")


def log_in(page, live_server, email: str, slug: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(FACTORY_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/{slug}/$"))


def test_a_reader_joins_by_card_reads_upgrades_and_cancels(live_server, browser, phone, desktop, shot):
    creator = UserFactory(email="maker@example.com")
    store = StoreFactory(owner=creator, name="Field Journal", slug="journal")
    post = post_create(store=store, title="The owl", amount=0, status="published", body=BODY)
    tier_create(store=store, name="Patron", description="For the keenest readers.", benefits=["Every post", "A monthly letter"],
                prices=[{"interval": "month", "amount": 500}], position=2)

    # The creator makes a $3/month tier and gates the post to it from the post's editor.
    dash = desktop.new_page()
    log_in(dash, live_server, creator.email, "journal")
    dash.get_by_role("link", name="Memberships", exact=True).click()
    dash.get_by_role("link", name="New tier").click()
    dash.get_by_label("Name").fill("Supporter")
    dash.get_by_label("Benefits").fill("Every post in full\nThe private podcast feed")
    dash.get_by_label("Monthly price (USD)").fill("0")
    dash.get_by_role("button", name="Create tier").click()
    expect(dash.get_by_text("A price must be more than 0. For a free tier, give it no prices.")).to_be_visible()
    shot(dash, "1-creator-tier-zero-price")
    dash.get_by_label("Monthly price (USD)").fill("3")
    dash.get_by_label("Order on the store page").fill("1")
    dash.get_by_role("button", name="Create tier").click()
    expect(dash.get_by_text("“Supporter” is ready.")).to_be_visible()
    shot(dash, "2-creator-tiers")
    dash.goto(f"{live_server.url}/dashboard/journal/posts/{post.pk}/")
    dash.locator("#tiers").get_by_label("Supporter").check()
    dash.get_by_role("button", name="Save members' access").click()
    expect(dash.get_by_text("Gated to 1 tier.")).to_be_visible()
    shot(dash, "3-creator-post-gated")

    # The reader finds the post for members, signs in from it, and joins by card.
    page = phone.new_page()
    page.goto(f"{live_server.url}/s/journal/")
    expect(page.get_by_role("heading", name="Memberships")).to_be_visible()
    shot(page, "4-store-tiers")
    page.goto(f"{live_server.url}/s/journal/posts/the-owl/")
    expect(page.get_by_role("heading", name="This post is for members.")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(SECRET)
    expect(page.get_by_text("$3.00 a month")).to_be_visible()
    shot(page, "5-post-members-only")
    box = page.locator("#members-only")
    box.get_by_label("Your email").fill("reader@example.com")
    box.get_by_role("button", name="Email me a sign-in link").click()
    follow_sign_in_link(page, live_server, "reader@example.com")
    expect(page).to_have_url(re.compile(r"/s/journal/posts/the-owl/$"))
    page.get_by_role("link", name="Join Supporter").click()
    expect(page.get_by_role("heading", name="Supporter")).to_be_visible()
    expect(page.get_by_role("button", name="Pay $3.00 from your wallet")).to_be_visible()
    shot(page, "6-join-page")
    page.get_by_role("button", name="Pay by card").click()
    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))
    page.get_by_label(re.compile("4242")).check()
    page.get_by_role("button", name="Pay $3.00").click()
    expect(page.get_by_role("heading", name="Welcome to Supporter!")).to_be_visible()
    shot(page, "7-joined")

    page.get_by_role("link", name="Read the posts").click()
    page.get_by_role("link", name="The owl").click()
    expect(page.get_by_text(SECRET)).to_be_visible()
    expect(page.locator(".badge", has_text="Members")).to_be_visible()
    shot(page, "8-reading-as-member")

    # From the library to "Your memberships": upgrade now, then cancel at the period's end.
    page.goto(f"{live_server.url}/library/")
    page.get_by_role("link", name="Your memberships").click()
    expect(page.get_by_role("heading", name="Your memberships")).to_be_visible()
    expect(page.get_by_test_id("renewal")).to_contain_text("$3.00 on")
    page.get_by_text("Change tier").click()
    upgrade = page.get_by_role("button", name=re.compile(r"^Upgrade now for \$\d\.\d\d$"))
    expect(upgrade).to_be_visible()
    shot(page, "9-manage-upgrade-offer")
    due = upgrade.inner_text().rsplit("$", 1)[1]
    upgrade.click()
    expect(page.get_by_text("Upgraded to Patron.")).to_be_visible()
    expect(page.get_by_test_id("renewal")).to_contain_text("$5.00 on")
    page.get_by_role("button", name="Cancel at the end of the period").click()
    expect(page.get_by_text("Your Patron membership ends on")).to_be_visible()
    expect(page.get_by_role("button", name="Keep my membership")).to_be_visible()
    shot(page, "10-manage-canceled")
    page.get_by_text("Private RSS feed").click()
    expect(page.get_by_test_id("feed-url")).to_have_value(re.compile(r"/s/journal/posts/feed/[\w-]+\.xml$"))
    shot(page, "11-manage-feed")

    sub = Subscription.objects.get(email="reader@example.com")
    assert (sub.tier.name, sub.pay_with, sub.cancel_at_period_end, sub.status) == ("Patron", "card", True, "active")
    orders = Order.objects.filter(store=store).order_by("pk")
    assert [(o.amount_total, o.payment.rail) for o in orders] == [(300, "sandbox"), (round(float(due) * 100), "sandbox")]
    assert_ledger_balanced()

    # The creator sees the member, the upgrade, the cancellation and the payments.
    dash.goto(f"{live_server.url}/dashboard/journal/memberships/")
    expect(dash.get_by_test_id("stat-members")).to_have_text("1")
    expect(dash.get_by_test_id("stat-mrr")).to_have_text("$5.00")
    expect(dash.get_by_test_id("stat-new")).to_have_text("1")
    expect(dash.get_by_test_id("stat-canceled")).to_have_text("1")
    expect(dash.get_by_role("row", name=re.compile("^Patron"))).to_contain_text("$5.00")
    shot(dash, "12-creator-memberships")
    dash.get_by_role("link", name="Members", exact=True).click()
    row = dash.get_by_role("row", name=re.compile("reader@example.com"))
    expect(row).to_contain_text("Patron")
    expect(row).to_contain_text("ending")
    expect(row).to_contain_text("Visa")
    shot(dash, "13-creator-members")
    row.get_by_role("link").click()
    expect(dash.get_by_role("heading", name="Payment history")).to_be_visible()
    # The join's $3.00, and the upgrade's prorated difference (an order of no period of its own).
    expect(dash.locator("table.payments tbody tr .c-amount")).to_have_text([f"${due}", "$3.00"])
    expect(dash.locator("table.periods tbody tr")).to_have_count(1)
    shot(dash, "14-creator-member")

    # The same pages at the other size, each in a context of its own (one session cookie each).
    reader_desktop = browser.new_context(viewport={"width": 1280, "height": 800})
    reader_desktop.add_cookies(page.context.cookies())
    desktop_reader = reader_desktop.new_page()
    for path, step in (("/s/journal/", "19-store-desktop"), (f"/s/journal/join/{sub.tier_id}/", "20-join-desktop"),
                       ("/memberships/", "21-manage-desktop")):
        desktop_reader.goto(f"{live_server.url}{path}")
        expect(desktop_reader.get_by_role("button", name="Sign out")).to_be_visible()
        shot(desktop_reader, step)
    reader_desktop.close()
    creator_mobile = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    creator_mobile.add_cookies(dash.context.cookies())
    creator_phone = creator_mobile.new_page()
    for path, step in (("memberships/", "15-creator-memberships-phone"), ("memberships/members/", "16-creator-members-phone"),
                       (f"memberships/members/{sub.pk}/", "17-creator-member-phone"),
                       (f"memberships/tiers/{sub.tier_id}/", "18-creator-tier-phone")):
        creator_phone.goto(f"{live_server.url}/dashboard/journal/{path}")
        expect(creator_phone.locator("h1")).to_be_visible()
        shot(creator_phone, step)
    creator_mobile.close()


def test_a_reader_becomes_a_member_by_cap_to_subscribe_from_the_wallet(live_server, phone, shot):
    store = StoreFactory(owner=UserFactory(), name="Night Notes", slug="night")
    capped = tier_create(store=store, name="Night owl", prices=[{"interval": "month", "amount": 100}], cap_to_subscribe=True)
    titles = ["Moths", "Lamps", "Stars", "Foxes", "Bats"]
    posts = [post_create(store=store, title=title, amount=25, status="published",
                         body=f"Free opening.\n\nStill free.\n\nThe secret of {title.lower()}.") for title in titles]
    tier_gates_set(tier=capped, product_ids=[p.product_id for p in posts])
    reader = buyer_for_email(email="owl@example.com")

    page = phone.new_page()
    page.goto(f"{live_server.url}/s/night/posts/moths/")
    expect(page.get_by_role("link", name="Join Night owl")).to_be_visible()
    page.locator("#unlock").get_by_label("Your email").fill(reader.email)
    page.locator("#unlock").get_by_role("button", name="Email me a sign-in link").click()
    follow_sign_in_link(page, live_server, reader.email)
    page.goto(f"{live_server.url}/wallet/")
    page.get_by_label(re.compile("4242")).first.check()
    page.get_by_role("button", name="Add $5.00").click()
    expect(page.get_by_text("Added $5.00 to your wallet.")).to_be_visible()

    for index, post in enumerate(posts[:4]):
        page.goto(f"{live_server.url}/s/night/posts/{post.slug}/")
        expect(page.get_by_text(f"${index * 25 / 100:.2f} of $1.00 paid this month")).to_be_visible()
        if index == 3:
            shot(page, "1-paywall-cap-progress")
        page.get_by_role("button", name="Unlock with one click").click()
        expect(page.get_by_text(f"The secret of {post.title.lower()}.")).to_be_visible()

    # The fourth unlock reached the $1 cap: the fifth post reads as a member, for nothing.
    page.goto(f"{live_server.url}/s/night/posts/bats/")
    expect(page.get_by_text("The secret of bats.")).to_be_visible()
    expect(page.locator(".badge", has_text="Members")).to_be_visible()
    shot(page, "2-member-by-cap")

    page.goto(f"{live_server.url}/memberships/")
    expect(page.get_by_text("(reached by paying per post)")).to_be_visible()
    expect(page.get_by_test_id("renewal")).to_contain_text("unless you choose how to pay")
    shot(page, "3-manage-capped")

    sub = Subscription.objects.get(email=reader.email)
    assert (sub.origin, sub.tier_id, sub.pay_with) == ("cap", capped.pk, "none")
    wallet = wallet_for(buyer=reader, currency="USD")
    wallet.account.refresh_from_db()
    assert wallet.account.balance == 500 - 4 * 25
    assert Order.objects.filter(store=store).count() == 4
    assert_ledger_balanced()
