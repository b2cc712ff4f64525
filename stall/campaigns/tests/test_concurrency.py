"""Twenty backers pledging at once for a tier with five slots left: exactly five get one, on real
connections (one per thread). The slot is taken by a guarded UPDATE (remaining > 0) in the
pledge's transaction; the other fifteen are refused with nothing held."""

import pytest

from stall.campaigns.errors import TierSoldOut
from stall.campaigns.models import Pledge, PledgeStatus
from stall.campaigns.services import pledge_create, tier_create
from stall.ledger.models import Account, AccountKind
from stall.ledger.tests.test_concurrency import in_threads

from .conftest import backer, live_campaign

pytestmark = pytest.mark.django_db(transaction=True)

BACKERS = 20


def test_twenty_pledges_for_five_slots_five_succeed(store, clock):
    campaign = live_campaign(store)
    tier = tier_create(campaign=campaign, title="Signed copy", min_amount=500, quantity=5)
    buyers = [backer(f"b{i}@example.com", top_up=1000) for i in range(BACKERS)]

    results, errors = in_threads(
        BACKERS, lambda i: pledge_create(campaign=campaign, buyer=buyers[i], amount=500, method="wallet", tier=tier)
    )
    assert sum(r is not None for r in results) == 5
    assert sorted(type(e).__name__ for e in errors if e is not None) == ["TierSoldOut"] * 15
    assert all(isinstance(e, TierSoldOut) for e in errors if e is not None)
    tier.refresh_from_db()
    assert tier.remaining == 0
    assert Pledge.objects.filter(tier=tier, status=PledgeStatus.HELD).count() == 5
    held = Account.objects.filter(kind=AccountKind.BUYER_WALLET, debits_pending=500).count()
    assert held == 5 and Account.objects.filter(kind=AccountKind.BUYER_WALLET, debits_pending__gt=500).count() == 0
