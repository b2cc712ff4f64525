import pytest

from stall.accounts.services import buyer_for_email
from stall.content.services import post_create
from stall.memberships.tiers import tier_create
from stall.wallets.services import wallet_top_up

BODY = "The free opening.\n\nA second free paragraph.\n\nThe members-only ending."
SECRET = "The members-only ending."


@pytest.fixture
def reader(db):
    """A reader with $20.00 in the wallet."""
    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def tier(store):
    return tier_create(store=store, name="Supporter", benefits=["Every post"], prices=[{"interval": "month", "amount": 300}])


def make_post(store, *, title="Field notes", amount=25, body=BODY):
    return post_create(store=store, title=title, amount=amount, body=body, status="published")
