"""The buyer's "Your usage billing" page: their subscriptions in every store, invoices with their
lines (an adjustment for late usage, an amount carried), and the card and wallet-first choice
saved from a form that shows what to fix; another buyer's subscription is not found."""

from urllib.parse import urlsplit

import pytest

from stall.accounts.services import buyer_magic_link
from stall.metering.billing import periods_close
from stall.metering.models import UsageSubscription
from stall.metering.services import plan_create, usage_subscription_create

from .conftest import send
from .test_invoicing import DAY, period_set

pytestmark = pytest.mark.django_db


def sign_in(client, email):
    assert client.get(urlsplit(buyer_magic_link(email=email)).path).status_code == 302


@pytest.fixture
def arrears(store, customer, calls):
    plan = plan_create(store=store, name="Kalimba API", prices=[{"meter": "api_calls", "unit_price": "2"}])
    return usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears",
                                     payment_method="sandbox_declined")


def test_the_buyer_sees_invoices_and_fixes_a_declined_card(client, store, customer, arrears):
    assert client.get("/usage/").status_code == 302  # signed out: to the sign-in page
    sub = period_set(arrears, days_ago=20, until_days_ago=10)
    send(store, customer, n=5, minutes_ago=15 * DAY)  # 10¢: under the card minimum, carried
    assert periods_close() == 1
    send(store, customer, n=3, prefix="late", minutes_ago=15 * DAY)  # late for the closed period
    sub = period_set(sub, days_ago=10)
    send(store, customer, n=30, prefix="b", minutes_ago=DAY)
    assert periods_close() == 0  # 60¢ + 6¢ late + 10¢ carried = 76¢, declined
    sign_in(client, customer.email)
    page = client.get("/usage/").content.decode()
    assert "Kalimba API" in page and "Past due" in page and "Your card was declined." in page
    assert "API calls: adjustment for" in page and "Carried from the invoice of" in page
    assert "Added to the next invoice" in page and "$0.76" in page

    bad = client.post(f"/usage/{sub.pk}/card/", {"payment_method": "sandbox_nope"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()
    assert UsageSubscription.objects.get(pk=sub.pk).saved_method_id == sub.saved_method_id

    done = client.post(f"/usage/{sub.pk}/card/", {"payment_method": "sandbox_visa", "wallet_first": ""})
    assert done.status_code == 302
    sub.refresh_from_db()
    assert (sub.status, sub.saved_method.method_ref, sub.wallet_first) == ("active", "sandbox_visa", False)
    page = client.get(done["Location"]).content.decode()
    assert "Saved: your usage invoices are paid this way." in page


def test_another_buyers_subscription_is_not_found(client, arrears):
    sign_in(client, "someone@example.com")
    assert "You are not billed for usage anywhere." in client.get("/usage/").content.decode()
    assert client.post(f"/usage/{arrears.pk}/card/", {"payment_method": "sandbox_visa"}).status_code == 404
    assert UsageSubscription.objects.get(pk=arrears.pk).saved_method.method_ref == "sandbox_declined"


def test_the_creators_customer_page_names_late_usage_carried_amounts_and_the_card(client, creator, store, customer, arrears):
    sub = period_set(arrears, days_ago=20, until_days_ago=10)
    send(store, customer, n=5, minutes_ago=15 * DAY)  # carried
    assert periods_close() == 1
    send(store, customer, n=3, prefix="late", minutes_ago=15 * DAY)
    period_set(sub, days_ago=10)
    send(store, customer, n=30, prefix="b", minutes_ago=DAY)
    assert periods_close() == 0  # declined
    client.force_login(creator)
    page = client.get(f"/dashboard/{store.slug}/usage/customers/{customer.pk}/").content.decode()
    assert "Late usage of " in page and "Carried from " in page
    assert "Visa •••• 0002" in page and "Card tried again " in page
