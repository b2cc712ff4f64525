"""Simultaneous redemptions of one gift card, on real connections (one per thread): exactly one
moves the balance, the others are told it was redeemed, and the ledger adds up."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.ledger.tests.test_concurrency import in_threads
from stall.payments.rails.wallet import wallet_for
from stall.wallets import gift_cards as gc
from stall.wallets.models import GiftCard

from .conftest import assert_ledger_balanced

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 4


def test_racing_redemptions_of_one_card_move_its_balance_once(store):
    card, code = gc.gift_card_issue(store=store, amount=900)
    buyers = [buyer_for_email(email=f"racer{n}@example.com") for n in range(RACERS)]
    results, errors = in_threads(RACERS, lambda i: gc.gift_card_redeem(store=store, buyer=buyers[i], code=code))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1, errors
    assert all(isinstance(errors[i], gc.GiftCardUsedUp) for i in range(RACERS) if i not in winners), errors
    balances = [wallet_for(buyer=b, currency="USD").account.balance for b in buyers]
    assert sorted(balances) == [0] * (RACERS - 1) + [900]
    card.refresh_from_db()
    assert (card.status, card.balance, card.redeemed_by_id) == ("redeemed", 0, buyers[winners[0]].pk)
    assert GiftCard.objects.get(pk=card.pk).events.filter(kind="redeemed").count() == 1
    assert_ledger_balanced()
