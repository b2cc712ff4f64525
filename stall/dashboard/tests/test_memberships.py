"""The creator's membership pages: tiers with members and MRR, creating and editing a tier (bad
prices refused, nothing made), archiving, gating a post from its editor, members with filters,
a member's payment history, complimentary memberships and cancelling; another store's tier or
member is a 404; no element id is used twice."""

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.content.services import post_create
from stall.memberships.models import Subscription, Tier, TierGate
from stall.memberships.services import subscription_cancel, subscription_join
from stall.memberships.tiers import tier_create
from stall.payments.models import Refund
from stall.testing import StoreFactory
from stall.wallets.services import wallet_top_up
from stall.wallets.tests.test_page_ids import duplicate_ids

pytestmark = pytest.mark.django_db


def words(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def url(name, store, *args) -> str:
    return reverse(f"dashboard:{name}", args=[store.slug, *args])


TIER_FORM = {"name": "Supporter", "description": "Thank you.", "benefits": "Every post\n\n  Monthly Q&A  \n", "monthly": "3",
             "yearly": "30", "weekly": "", "trial_days": "0", "member_limit": "", "position": "", "cap_to_subscribe": ""}


@pytest.fixture
def tier(store):
    return tier_create(store=store, name="Supporter", prices=[{"interval": "month", "amount": 300}])


@pytest.fixture
def reader(db):
    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def member(tier, reader):
    return subscription_join(tier=tier, method="wallet", buyer=reader).subscription


def test_the_memberships_page_shows_the_figures_and_each_tiers_members_and_mrr(dash, store, tier, member):
    tier_create(store=store, name="Yearly", prices=[{"interval": "year", "amount": 3600}])
    subscription_join(tier=Tier.objects.get(name="Yearly"), method="card", email="y@example.com", payment_method="sandbox_visa")
    response = dash.get(url("memberships", store))
    assert 'aria-current="page">Memberships<' in response.content.decode()
    page = words(response)
    # MRR: $3 a month, and $36 a year as $3 a month.
    assert "Members 2 MRR $6.00 monthly recurring revenue New 2 last 30 days Cancelled 0" in page
    assert "Supporter Active $3.00 a month 1 member $3.00 MRR" in page
    assert "Yearly Active $36.00 a year 1 member $3.00 MRR" in page


def test_create_a_tier_with_two_prices_and_benefits_one_per_line(dash, store):
    response = dash.post(url("tier_new", store), TIER_FORM)
    assert response.status_code == 302
    tier = Tier.objects.get(store=store)
    assert tier.benefits == ["Every post", "Monthly Q&A"]
    assert sorted((p.interval, p.amount) for p in tier.prices.all()) == [("month", 300), ("year", 3000)]
    assert "$3.00 a month or $30.00 a year" in words(dash.get(url("memberships", store)))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("monthly", "0", "A price must be more than 0. For a free tier, give it no prices."),
    ("yearly", "-5", "Amount cannot be negative."),
    ("weekly", "abc", "“abc” is not an amount."),
    ("trial_days", "400", "Ensure this value is less than or equal to 365."),
    ("name", "", "This field is required."),
])
def test_bad_tier_input_is_refused_next_to_its_field_and_makes_nothing(dash, store, field, value, message):
    response = dash.post(url("tier_new", store), {**TIER_FORM, field: value})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Check the field" in page
    field_html = page[page.index(f'id="id_{field}"'):]
    assert html.escape(message, quote=False) in field_html[:600] or message in html.unescape(field_html[:600])
    assert not Tier.objects.exists()


def test_cap_to_subscribe_needs_a_monthly_price(dash, store):
    response = dash.post(url("tier_new", store), {**TIER_FORM, "monthly": "", "cap_to_subscribe": "on"})
    assert response.status_code == 400 and "Cap-to-subscribe needs a monthly price: it is the cap." in words(response)
    assert not Tier.objects.exists()


def test_edit_a_tier_and_a_bad_price_changes_nothing(dash, store, tier):
    page = dash.get(url("tier", store, tier.pk))
    assert 'value="3.00"' in page.content.decode()
    bad = dash.post(url("tier", store, tier.pk), {**TIER_FORM, "name": "Renamed", "monthly": "0"})
    assert bad.status_code == 400
    tier.refresh_from_db()
    assert tier.name == "Supporter" and tier.prices.get().amount == 300
    ok = dash.post(url("tier", store, tier.pk), {**TIER_FORM, "name": "Renamed", "monthly": "4", "yearly": "", "member_limit": "10"})
    assert ok.status_code == 302
    tier.refresh_from_db()
    assert (tier.name, tier.member_limit, tier.prices.get(interval="month").amount) == ("Renamed", 10, 400)


def test_archive_a_tier(dash, store, tier):
    response = dash.post(url("tier_archive", store, tier.pk))
    assert response.status_code == 302
    tier.refresh_from_db()
    assert tier.status == "archived"
    assert "Archive tier" not in words(dash.get(url("tier", store, tier.pk)))


def test_another_stores_tier_and_member_are_not_found(dash, store, other_creator):
    other = StoreFactory(owner=other_creator)
    theirs = tier_create(store=other, name="Theirs", prices=[{"interval": "month", "amount": 300}])
    sub = subscription_join(tier=theirs, method="card", email="x@example.com", payment_method="sandbox_visa").subscription
    assert dash.get(url("tier", store, theirs.pk)).status_code == 404
    assert dash.post(url("tier", store, theirs.pk), TIER_FORM).status_code == 404
    assert dash.post(url("tier_archive", store, theirs.pk)).status_code == 404
    assert dash.get(url("member", store, sub.pk)).status_code == 404
    assert dash.post(url("member_cancel", store, sub.pk), {"when": "now"}).status_code == 404
    assert dash.get(url("memberships", other)).status_code == 404
    theirs.refresh_from_db()
    sub.refresh_from_db()
    assert (theirs.name, theirs.status, sub.status) == ("Theirs", "active", "active")


def test_gate_a_post_from_its_editor(dash, store, tier):
    other = tier_create(store=store, name="Gold", prices=[{"interval": "month", "amount": 500}])
    post = post_create(store=store, title="Notes", amount=25, status="published")
    editor = dash.get(url("post", store, post.pk)).content.decode()
    assert "Members of these tiers read it in full" in editor and 'id="gate_tiers_0"' in editor
    response = dash.post(url("post_tiers", store, post.pk), {"tiers": [tier.pk, other.pk]})
    assert response.status_code == 302 and response["Location"].endswith("#tiers")
    assert set(TierGate.objects.values_list("tier_id", flat=True)) == {tier.pk, other.pk}
    dash.post(url("post_tiers", store, post.pk), {"tiers": [other.pk]})
    assert list(TierGate.objects.values_list("tier_id", flat=True)) == [other.pk]
    foreign = tier_create(store=StoreFactory(), name="Foreign", prices=[{"interval": "month", "amount": 100}])
    refused = dash.post(url("post_tiers", store, post.pk), {"tiers": [foreign.pk]}, follow=True)
    assert "is not one of the available choices" in words(refused)
    assert list(TierGate.objects.values_list("tier_id", flat=True)) == [other.pk]
    dash.post(url("post_tiers", store, post.pk), {})
    assert not TierGate.objects.exists()


def test_members_are_listed_and_filtered_by_tier_and_status(dash, store, tier, member):
    gold = tier_create(store=store, name="Gold", prices=[{"interval": "month", "amount": 500}])
    other = subscription_join(tier=gold, method="card", email="gold@example.com", payment_method="sandbox_visa").subscription
    subscription_cancel(subscription=other, at_period_end=False)
    page = words(dash.get(url("members", store)))
    assert "reader@example.com Supporter Active" in page and "gold@example.com Gold Ended" in page
    assert "Wallet" in page and "Visa" in page
    by_tier = words(dash.get(url("members", store) + f"?tier={gold.pk}"))
    assert "gold@example.com" in by_tier and "reader@example.com" not in by_tier
    by_status = words(dash.get(url("members", store) + "?status=active"))
    assert "reader@example.com" in by_status and "gold@example.com" not in by_status
    bad = dash.get(url("members", store) + "?status=weird")
    assert "Select a valid choice" in words(bad)


def test_a_members_page_shows_the_payment_history(dash, store, member):
    page = words(dash.get(url("member", store, member.pk)))
    assert "reader@example.com Active" in page and "Supporter · $3.00 monthly" in page
    assert re.search(r"Payment history Date For Paid with Amount \w+ \d+, \d{4} Supporter \(monthly\) Wallet \$3\.00 Periods", page)
    assert re.search(r"Periods .* Paid Wallet \$3\.00", page)


def test_give_a_complimentary_membership(dash, store, tier):
    ends = (timezone.now() + timedelta(days=30)).date()
    response = dash.post(url("member_new", store), {"tier": tier.pk, "email": "Friend@Example.com", "ends_on": ends.isoformat()})
    assert response.status_code == 302
    sub = Subscription.objects.get()
    assert (sub.email, sub.origin, sub.pay_with, sub.current_period_end.date()) == ("friend@example.com", "complimentary", "none", ends)
    again = dash.post(url("member_new", store), {"tier": tier.pk, "email": "friend@example.com", "ends_on": ends.isoformat()})
    assert again.status_code == 400 and "You are already a member of this store." in words(again)
    past = dash.post(url("member_new", store), {"tier": tier.pk, "email": "new@example.com", "ends_on": "2020-01-01"})
    assert past.status_code == 400 and "The end date must be in the future." in words(past)
    assert Subscription.objects.count() == 1


def test_a_complimentary_members_emails_are_in_their_best_known_language(dash, client, store, tier, django_capture_on_commit_callbacks):
    """Given from the (English) dashboard to someone who bought here from a Portuguese page: the
    membership keeps Portuguese, and its end is announced in Portuguese by the worker. Someone
    Stall never saw gets the default, English."""
    from django.core import mail
    from django.utils import translation

    from stall.checkout.models import Checkout
    from stall.memberships.notices import subscription_ended_notice
    from stall.testing import ProductFactory

    zine = ProductFactory(store=store, name="Zine", amount=300)
    client.post(f"/buy/{zine.pk}/", {"email": "ana@example.com"}, headers={"accept-language": "pt-br"})
    assert Checkout.objects.get(email="ana@example.com").language == "pt-br"
    ends = (timezone.now() + timedelta(days=30)).date().isoformat()
    for email in ("Ana@Example.com", "joe@example.com"):
        assert dash.post(url("member_new", store), {"tier": tier.pk, "email": email, "ends_on": ends}).status_code == 302
    ana, joe = Subscription.objects.get(email="ana@example.com"), Subscription.objects.get(email="joe@example.com")
    assert (ana.language, joe.language) == ("pt-br", "")
    mail.outbox.clear()
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        subscription_ended_notice.call_local(ana.pk)
        subscription_ended_notice.call_local(joe.pk)
    assert [m.subject for m in mail.outbox] == ["Sua assinatura Supporter foi encerrada", "Your Supporter membership has ended"]


def test_a_full_tier_takes_no_complimentary_member(dash, store):
    small = tier_create(store=store, name="Small", prices=[{"interval": "month", "amount": 300}], member_limit=1)
    subscription_join(tier=small, method="card", email="one@example.com", payment_method="sandbox_visa")
    ends = (timezone.now() + timedelta(days=3)).date().isoformat()
    response = dash.post(url("member_new", store), {"tier": small.pk, "email": "two@example.com", "ends_on": ends})
    assert response.status_code == 400 and "This tier is full: it has reached its member limit." in words(response)
    assert Subscription.objects.count() == 1


def test_cancel_a_member_at_period_end(dash, store, member):
    response = dash.post(url("member_cancel", store, member.pk), {"when": "period_end"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.cancel_at_period_end and member.status == "active"
    assert "Set to end on" in words(dash.get(url("member", store, member.pk)))


def test_cancel_a_member_now_with_a_refund_and_twice_is_refused(dash, store, member, reader):
    response = dash.post(url("member_cancel", store, member.pk), {"when": "now", "refund": "on"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.status == "ended"
    refund = Refund.objects.get()
    assert 280 <= refund.amount <= 300  # nearly the whole month was left
    again = dash.post(url("member_cancel", store, member.pk), {"when": "now", "refund": "on"})
    assert again.status_code == 400 and "This membership has ended." in words(again)
    assert Refund.objects.count() == 1


def test_no_membership_dashboard_page_repeats_an_element_id(dash, store, tier, member):
    post = post_create(store=store, title="Notes", amount=25, status="published")
    pages = {
        "memberships": dash.get(url("memberships", store)),
        "new tier with errors": dash.post(url("tier_new", store), {**TIER_FORM, "monthly": "0"}),
        "tier": dash.get(url("tier", store, tier.pk)),
        "members": dash.get(url("members", store)),
        "member": dash.get(url("member", store, member.pk)),
        "give a membership": dash.get(url("member_new", store)),
        "post editor with tiers": dash.get(url("post", store, post.pk)),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 400), (name, response.status_code)
        assert duplicate_ids(response.content.decode()) == {}, name
