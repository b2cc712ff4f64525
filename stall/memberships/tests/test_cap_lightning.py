"""Cap-to-subscribe paid over Lightning: an invoice made under the cap is paid after wallet unlocks
reached it. Lightning cannot pay a buyer back (LNbits would need an invoice from the reader's own
wallet), so what it took past the cap goes into the reader's Stall wallet: still no reader pays
more than the cap in a month. Through a real LNbits."""

import pytest
import time_machine
from django.core import mail

from stall.content.services import post_unlock
from stall.memberships.cap_refunds import CAP_REFUND_REASON
from stall.memberships.models import CapExcess
from stall.orders.models import Order
from stall.payments.lightning_services import (
    lightning_checkout_start,
    lightning_open_payment,
    lightning_payments_reconcile,
)
from stall.payments.models import Refund
from stall.payments.tests.conftest import lightning_store, lnbits  # noqa: F401 - fixtures
from stall.wallets.tests.conftest import assert_ledger_balanced

from .test_cap_races import MARCH, _cap_total, _capped, _net, _wallet

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_lightning_invoice_paid_past_the_cap_gives_the_excess_into_the_readers_wallet(lightning_store, lnbits, reader):  # noqa: F811
    tier, posts = _capped(lightning_store, price=120, count=3)
    with time_machine.travel(MARCH, tick=False):
        post_unlock(post=posts[0], method="wallet", buyer=reader)
        checkout = post_unlock(post=posts[2], method="card", buyer=reader).checkout  # $1.20, under the $3 cap
        lightning_checkout_start(checkout_id=checkout.pk)
        payment = lightning_open_payment(checkout_id=checkout.pk)
        post_unlock(post=posts[1], method="wallet", buyer=reader)  # 60¢ left under the cap now
        before = _wallet(reader)
        assert lnbits.pay(payment.lightning_invoice.bolt11).status_code == 201
        assert lightning_payments_reconcile(older_than_seconds=0) == 1
    order = Order.objects.get(checkout_id=checkout.pk)
    assert (order.amount_total, order.amount_refunded, order.status) == (120, 60, "partially_refunded")
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.status, refund.to_wallet, refund.reason) == (60, "succeeded", True, CAP_REFUND_REASON)
    assert _wallet(reader) == before + 60
    assert CapExcess.objects.get(order=order).settled_at is not None
    assert (_net(reader.email), _cap_total(tier, reader.email)) == (300, 300)
    assert order.entitlements.get().revoked_at is None  # partly refunded: the post stays theirs
    notice = next(m for m in mail.outbox if m.subject.startswith("Refund from"))
    assert "60" in notice.body and "It went into your Stall wallet" in notice.body
    assert_ledger_balanced()
