from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.metering.ingest import events_ingest
from stall.metering.services import meter_create
from stall.orders.services import customer_for_email
from stall.wallets.allowances import allowance_grant
from stall.wallets.services import wallet_top_up


@pytest.fixture
def buyer(db):
    """A buyer with $20.00 in the wallet."""
    buyer = buyer_for_email(email="dev@example.com")
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def customer(store, buyer):
    return customer_for_email(store_id=store.pk, email=buyer.email)


@pytest.fixture
def allowance(store, buyer):
    return allowance_grant(buyer=buyer, store=store, amount=1000, period="month")


@pytest.fixture
def calls(store):
    return meter_create(store=store, key="api_calls", name="API calls", event_name="api.call")


def stamp(minutes_ago: float = 1) -> str:
    return (timezone.now() - timedelta(minutes=minutes_ago)).isoformat()


def send(store, customer, name="api.call", n=1, prefix="e", properties=None, start=0, minutes_ago=0):
    """Ingest ``n`` events ``prefix-start`` … with the given properties (a dict, or a function of i)."""
    events = [
        {"id": f"{prefix}-{i}", "customer": customer.pk, "name": name, "timestamp": stamp(minutes_ago),
         "properties": properties(i) if callable(properties) else (properties or {})}
        for i in range(start, start + n)
    ]
    # The live charge runs after the commit, as it does outside a test's transaction.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return events_ingest(store=store, events=events)
