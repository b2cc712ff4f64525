"""The creator's usage pages: meters and plans made and edited with forms that show what to fix,
a customer's usage with a chart per day and a table, and the CSV export."""

import csv
import io

import pytest

from stall.metering.models import Meter, Plan, UsageSubscription
from stall.metering.services import meter_create, plan_create, usage_subscription_create

from .conftest import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def dash(client, creator):
    client.force_login(creator)
    return client


def test_a_meter_and_a_plan_are_created_from_the_forms(dash, store):
    base = f"/dashboard/{store.slug}/usage"
    response = dash.post(f"{base}/meters/new/", {"key": "api_calls", "name": "API calls", "event_name": "api.call",
                                                 "aggregation": "count"})
    assert response.status_code == 302
    meter = Meter.objects.get(store=store, key="api_calls")
    response = dash.post(f"{base}/plans/new/", {"name": "Pay as you go", "fixed_fee": "",
                                                f"m_{meter.pk}_model": "per_unit", f"m_{meter.pk}_unit_price": "0.2"})
    assert response.status_code == 302
    plan = Plan.objects.get(store=store)
    assert str(plan.prices.get().unit_price.normalize()) == "0.2"
    page = dash.get(f"{base}/").content.decode()
    assert "API calls" in page and "Pay as you go" in page
    # Edited: tiered.
    response = dash.post(f"{base}/plans/{plan.pk}/", {"name": "Tiered", f"m_{meter.pk}_model": "tiered",
                                                      f"m_{meter.pk}_tiers": "1000:0, *:0.1"})
    assert response.status_code == 302
    assert plan.prices.get().tiers == [{"up_to": "1000", "unit_price": "0"}, {"up_to": None, "unit_price": "0.1"}]


def test_forms_show_what_to_fix(dash, store, calls):
    base = f"/dashboard/{store.slug}/usage"
    response = dash.post(f"{base}/meters/new/", {"key": "api_calls", "name": "Again", "event_name": "x",
                                                 "aggregation": "count"})
    assert response.status_code == 400 and "already has a meter with this key" in response.content.decode()
    response = dash.post(f"{base}/meters/new/", {"key": "t", "name": "T", "event_name": "x", "aggregation": "sum"})
    assert response.status_code == 400 and "needs the property it reads" in response.content.decode()
    response = dash.post(f"{base}/plans/new/", {"name": "P", f"m_{calls.pk}_model": "per_unit",
                                                f"m_{calls.pk}_unit_price": "0.0000001"})
    assert response.status_code == 400 and "at most 6 decimals" in response.content.decode()
    response = dash.post(f"{base}/subscriptions/new/", {"email": "nobody@example.com", "plan": "x", "billing": "live",
                                                        "threshold": 10})
    assert response.status_code == 400


def test_a_customers_usage_page_has_a_chart_a_table_and_the_charges(dash, store, customer, allowance, calls):
    plan = plan_create(store=store, name="API", prices=[{"meter": "api_calls", "unit_price": "0.2"}])
    response = dash.post(f"/dashboard/{store.slug}/usage/subscriptions/new/", {
        "email": customer.email, "plan": plan.pk, "billing": "live", "threshold": 10})
    assert response.status_code == 302
    assert UsageSubscription.objects.get(customer=customer).threshold == 10
    send(store, customer, n=60)
    page = dash.get(f"/dashboard/{store.slug}/usage/customers/{customer.pk}/").content.decode()
    assert "<svg" in page and "<rect" in page
    assert '<strong data-testid="quantity">60</strong>' in page
    assert "$0.10" in page  # the live charge of 10¢
    assert "12 minor units" in page  # the exact cost: 60 × 0.2


def test_another_stores_customer_is_a_404(dash, store, calls):
    from stall.orders.services import customer_for_email
    from stall.testing import StoreFactory

    other = customer_for_email(store_id=StoreFactory().pk, email="x@example.com")
    assert dash.get(f"/dashboard/{store.slug}/usage/customers/{other.pk}/").status_code == 404


def test_events_export_as_csv(dash, store, customer, calls):
    send(store, customer, n=3, properties={"path": "/v1/x"})
    response = dash.get(f"/dashboard/{store.slug}/usage/events.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["id", "customer", "name", "timestamp", "properties", "received_at"]
    assert [r[0] for r in rows[1:]] == ["e-0", "e-1", "e-2"]
    assert rows[1][4] == '{"path": "/v1/x"}'


def test_usage_subscription_create_by_service_shows_in_the_list(dash, store, customer, calls):
    plan = plan_create(store=store, name="Metered", prices=[{"meter": "api_calls", "unit_price": "1"}])
    usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk)
    meter_create(store=store, key="other", name="Other", event_name="o")
    page = dash.get(f"/dashboard/{store.slug}/usage/").content.decode()
    assert customer.email in page and "Metered" in page


def test_a_plan_is_attached_to_a_membership_tier_from_its_form(dash, store):
    """The plan form lists the store's tiers; the chosen one carries the plan, shown on the usage
    page; another store's tier is refused next to the field."""
    from stall.memberships.tiers import tier_create
    from stall.testing import StoreFactory

    tier = tier_create(store=store, name="Builder", prices=[{"interval": "month", "amount": 500}])
    foreign = tier_create(store=StoreFactory(), name="Elsewhere", prices=[{"interval": "month", "amount": 100}])
    base = f"/dashboard/{store.slug}/usage"
    form = dash.get(f"{base}/plans/new/").content.decode()
    assert f'value="{tier.pk}"' in form and foreign.pk not in form
    refused = dash.post(f"{base}/plans/new/", {"name": "Usage", "tier": foreign.pk})
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    assert not Plan.objects.filter(store=store).exists()
    assert dash.post(f"{base}/plans/new/", {"name": "Usage", "tier": tier.pk}).status_code == 302
    plan = Plan.objects.get(store=store)
    assert plan.tier_id == tier.pk
    assert '<span data-testid="plan-tier">Builder</span>' in dash.get(f"{base}/").content.decode()
    assert dash.post(f"{base}/plans/{plan.pk}/", {"name": "Usage", "tier": ""}).status_code == 302
    plan.refresh_from_db()
    assert plan.tier_id == ""
