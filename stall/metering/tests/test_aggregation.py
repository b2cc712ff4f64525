"""Each aggregation over known events gives the exact quantity, computed in the database."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from stall.metering.selectors import meter_quantity, meter_quantity_per_day
from stall.metering.services import meter_create

from .conftest import send

pytestmark = pytest.mark.django_db


def _window():
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(minutes=10)


def _quantity(meter, customer):
    start, end = _window()
    return meter_quantity(meter=meter, customer_id=customer.pk, start=start, end=end)


TOKENS = [120, 7, 33, 2.5, 40]
REGIONS = ["eu", "us", "eu", "uk", "eu"]
USERS = ["ann", "bob", "ann", "cy", "bob"]


@pytest.fixture
def sent(store, customer):
    meter_create(store=store, key="any_tokens", name="Tokens", event_name="llm.tokens", aggregation="sum",
                 property="tokens")
    send(store, customer, name="llm.tokens", n=1, prefix="first", properties={"tokens": 1000, "region": "eu", "user": "zed"},
         minutes_ago=4 * 24 * 60)  # outside the windows: never counted
    send(store, customer, name="llm.tokens", n=5,
         properties=lambda i: {"tokens": TOKENS[i], "region": REGIONS[i], "user": USERS[i], "seats": i + 1})
    return customer


def test_count(store, sent):
    meter = meter_create(store=store, key="requests", name="Requests", event_name="llm.tokens")
    assert _quantity(meter, sent) == 5


def test_sum_of_a_property(store, sent):
    meter = meter_create(store=store, key="tokens", name="Tokens", event_name="llm.tokens", aggregation="sum",
                         property="tokens")
    assert _quantity(meter, sent) == Decimal("202.5")


def test_max_of_a_property(store, sent):
    meter = meter_create(store=store, key="peak", name="Peak", event_name="llm.tokens", aggregation="max",
                         property="tokens")
    assert _quantity(meter, sent) == 120


def test_unique_count_of_a_property(store, sent):
    meter = meter_create(store=store, key="users", name="Users", event_name="llm.tokens",
                         aggregation="unique_count", property="user")
    assert _quantity(meter, sent) == 3


def test_latest_value_of_a_property(store, sent, customer):
    meter = meter_create(store=store, key="seats", name="Seats", event_name="llm.tokens", aggregation="latest",
                         property="seats")
    assert _quantity(meter, sent) == 5
    send(store, customer, name="llm.tokens", prefix="older", properties={"seats": 99}, minutes_ago=30)
    assert _quantity(meter, sent) == 5  # an older event sent late is not the latest


def test_filter_on_a_property(store, sent):
    """Only events whose properties match every filter count; a list matches any of its values."""
    eu = meter_create(store=store, key="eu_tokens", name="EU tokens", event_name="llm.tokens", aggregation="sum",
                      property="tokens", filters={"region": "eu"})
    assert _quantity(eu, sent) == 193
    europe = meter_create(store=store, key="europe", name="Europe", event_name="llm.tokens",
                          filters={"region": ["eu", "uk"], "user": "ann"})
    assert _quantity(europe, sent) == 2


def test_other_names_and_customers_do_not_count(store, sent):
    from stall.orders.services import customer_for_email

    other = customer_for_email(store_id=store.pk, email="other@example.com")
    meter = meter_create(store=store, key="requests", name="Requests", event_name="llm.tokens")
    meter_create(store=store, key="images", name="Images", event_name="image.made")
    send(store, other, name="llm.tokens", n=3, prefix="o")
    send(store, sent, name="image.made", n=2, prefix="img")
    assert _quantity(meter, sent) == 5


def test_quantity_per_day(store, sent, customer):
    meter = meter_create(store=store, key="requests", name="Requests", event_name="llm.tokens")
    send(store, customer, name="llm.tokens", n=2, prefix="y", minutes_ago=24 * 60 + 30)
    start = timezone.now() - timedelta(days=3)
    days = meter_quantity_per_day(meter=meter, customer_id=customer.pk, start=start, end=timezone.now())
    assert [q for _, q in days][-1] == 5 and sum(q for _, q in days) == 7  # the day before has 2
