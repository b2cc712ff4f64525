"""What a buyer's allowance has used this period is summed from that buyer's charges, found through
an index, not from every charge the store has taken that period."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.testing import StoreFactory, query_plan
from stall.wallets.allowances import allowance_grant, allowance_used, charge_create
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def test_the_used_amount_is_read_through_the_allowances_charges_index():
    # An API store with thousands of customers charges each many times a day: every charge asks
    # what its buyer used, and a plan that starts from the store's charges reads them all.
    store = StoreFactory()
    buyer = buyer_for_email(email="caller@example.com")
    allowance = allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    plan = query_plan(lambda: allowance_used(allowance=allowance))
    assert "wallets_charge_by_allowance" in plan, plan


def test_the_used_amount_counts_the_buyers_charges_under_a_replaced_allowance_and_nobody_elses():
    store = StoreFactory()
    buyer, other = buyer_for_email(email="caller@example.com"), buyer_for_email(email="other@example.com")
    for who in (buyer, other):
        wallet_top_up(buyer=who, amount=1000, currency="USD", payment_method="sandbox_visa")
    first = allowance_grant(buyer=buyer, store=store, amount=500, period="day")
    allowance_grant(buyer=other, store=store, amount=500, period="day")
    customer, other_customer = (store.customers.get(email=who.email).pk for who in (buyer, other))
    charge_create(store=store, customer_id=customer, amount=30, currency="USD", description="a call")
    charge_create(store=store, customer_id=other_customer, amount=70, currency="USD", description="a call")
    replaced = allowance_grant(buyer=buyer, store=store, amount=400, period="day")  # a new amount, the same day
    charge_create(store=store, customer_id=customer, amount=5, currency="USD", description="a call")
    assert allowance_used(allowance=replaced) == allowance_used(allowance=first) == 35
