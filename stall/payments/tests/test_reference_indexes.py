"""Payments found by their rail's reference are found through an index, not by reading them all."""

import pytest

from stall.payments.stripe_services import stripe_payment_for_intent
from stall.testing import query_plan

pytestmark = pytest.mark.django_db


def test_a_stripe_payment_is_found_by_its_intent_through_the_partial_index():
    # A dispute names the PaymentIntent; with a million spends behind it, a scan would read them all.
    plan = query_plan(lambda: stripe_payment_for_intent("pi_unknown"))
    assert "payments_stripe_by_reference" in plan, plan
