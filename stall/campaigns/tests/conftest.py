from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from stall.accounts.services import buyer_for_email
from stall.campaigns.services import campaign_create, campaign_publish
from stall.ledger.models import Account, AccountKind
from stall.wallets.services import wallet_top_up

START = datetime(2027, 3, 1, 12, tzinfo=UTC)
DEADLINE = START + timedelta(days=14)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def backer(email: str, *, top_up: int = 2000):
    buyer = buyer_for_email(email=email)
    if top_up:
        wallet_top_up(buyer=buyer, amount=top_up, currency="USD", payment_method="sandbox_visa")
    return buyer


def live_campaign(store, *, goal=1500, mode="all_or_nothing", deadline=DEADLINE):
    campaign = campaign_create(store=store, title="A field guide to moss", goal=goal, deadline=deadline, mode=mode,
                               story="We walk, we **look**.")
    return campaign_publish(campaign=campaign)


def account(kind: str, owner: str) -> Account:
    return Account.objects.get(kind=kind, owner=owner, currency="USD")


def wallet_account(buyer) -> Account:
    return account(AccountKind.BUYER_WALLET, buyer.pk)
