"""Commissions: the brief, the held payment, delivery, acceptance (by hand and by the task),
declining with a refund, the slots, and bad input."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from stall.commissions.errors import (
    CommissionInvalid,
    CommissionNotFound,
    CommissionSlotsFull,
    CommissionStateConflict,
    NotACommission,
)
from stall.commissions.models import Commission, CommissionStatus, FileRole, ServiceOffer
from stall.commissions.services import (
    commission_accept,
    commission_decline,
    commission_deliver,
    commission_for_store,
    commission_message_add,
    commissions_auto_accept,
    service_offer_set,
)
from stall.ledger.models import Account, AccountKind, Transfer, TransferState
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.models import OrderStatus
from stall.testing import StoreFactory, buy, product_with_file

from .conftest import after_commit, order_commission, reserve, upload

pytestmark = pytest.mark.django_db


def accounts(store):
    balance = Account.objects.get(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency="USD")
    escrow = Account.objects.get(kind=AccountKind.STORE_PENDING, owner=store.pk, currency="USD")
    return balance, escrow


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


def test_a_paid_commission_awaits_delivery_with_its_money_held(store, service):
    """The order's net leaves the spendable balance for escrow and comes back as a pending credit."""
    commission = order_commission(store=store, product=service, files=[upload()])
    order = commission.order
    held = order.amount_total - order.fee - order.platform_fee
    assert (commission.status, commission.amount_held, order.status) == (CommissionStatus.AWAITING_DELIVERY, held, OrderStatus.PAID)
    balance, escrow = accounts(store)
    assert balance.balance == 0  # the sale, less fees, is all in escrow
    assert balance.credits_pending == held
    assert (escrow.credits_posted, escrow.debits_pending) == (held, held)
    hold = Transfer.objects.get(pk=commission.hold_transfer_id)
    assert (hold.state, hold.amount, hold.two_phase) == (TransferState.PENDING, held, True)
    assert [f.role for f in commission.files.all()] == [FileRole.BRIEF]
    assert ServiceOffer.objects.get(pk=service.pk).taken == 1
    assert_ledger_balanced()
    # The buyer gets the link to their page; the creator the brief.
    assert {m.to[0] for m in mail.outbox if "commission" in m.subject.lower()} == {"fan@example.com", store.owner.email}


def test_delivered_then_accepted_releases_the_money_once(store, service):
    commission = order_commission(store=store, product=service)
    mail.outbox.clear()
    with after_commit():
        commission = commission_deliver(store=store, commission_id=commission.pk, note="Here it is!", files=[upload("fox.png", b"png")])
    assert commission.status == CommissionStatus.DELIVERED
    assert commission.auto_accept_at - commission.delivered_at == timedelta(days=7)
    assert [m.to for m in mail.outbox] == [["fan@example.com"]]

    commission = commission_accept(commission_id=commission.pk)
    balance, escrow = accounts(store)
    assert (commission.status, balance.balance, balance.credits_pending) == (CommissionStatus.ACCEPTED, commission.amount_held, 0)
    assert escrow.balance == 0
    assert Transfer.objects.get(pk=commission.hold_transfer_id).state == TransferState.POSTED
    assert ServiceOffer.objects.get(pk=service.pk).taken == 0

    with pytest.raises(CommissionStateConflict, match="This commission is accepted: it cannot be accepted."):
        commission_accept(commission_id=commission.pk)
    balance.refresh_from_db()
    assert balance.balance == commission.amount_held  # nothing moved twice
    assert_ledger_balanced()


def test_declining_voids_the_hold_and_refunds_in_full(store, service):
    commission = order_commission(store=store, product=service)
    with after_commit():
        commission = commission_decline(store=store, commission_id=commission.pk, reason="Booked out this month.")
    order = commission.order
    order.refresh_from_db()
    assert (commission.status, order.status, order.amount_refunded) == (CommissionStatus.DECLINED, OrderStatus.REFUNDED, 5000)
    assert Transfer.objects.get(pk=commission.hold_transfer_id).state == TransferState.VOIDED
    balance, escrow = accounts(store)
    assert (escrow.balance, escrow.debits_pending, balance.credits_pending) == (0, 0, 0)
    assert balance.balance == -order.fee_net  # as any card refund: the processor keeps its fee
    assert ServiceOffer.objects.get(pk=service.pk).taken == 0
    assert any("declined" in m.subject and m.to == ["fan@example.com"] for m in mail.outbox)
    with pytest.raises(CommissionStateConflict, match="This commission is declined: it cannot be delivered."):
        commission_deliver(store=store, commission_id=commission.pk, note="late")
    assert_ledger_balanced()


def test_a_delivery_is_accepted_for_the_buyer_after_the_offers_days(store, service):
    commission = order_commission(store=store, product=service)
    commission_deliver(store=store, commission_id=commission.pk, note="Done")
    assert commissions_auto_accept(now=timezone.now() + timedelta(days=6)) == 0
    with pytest.raises(CommissionStateConflict, match="not due"):
        commission_accept(commission_id=commission.pk, auto=True)
    assert commissions_auto_accept(now=timezone.now() + timedelta(days=7, minutes=1)) == 1
    commission.refresh_from_db()
    assert (commission.status, commission.auto_accepted) == (CommissionStatus.ACCEPTED, True)
    assert commissions_auto_accept(now=timezone.now() + timedelta(days=30)) == 0


def test_the_slots_are_never_exceeded_and_come_back(store, service):
    service_offer_set(product=service, slots=1)
    first = order_commission(store=store, product=service)
    with pytest.raises(CommissionSlotsFull, match="All commission slots are taken for now."):
        reserve(store=store, product=service, email="second@example.com")
    assert Commission.objects.filter(email="second@example.com").count() == 0
    commission_decline(store=store, commission_id=first.pk)
    _, second = reserve(store=store, product=service, email="second@example.com")
    assert second.holds_slot

    # An unpaid reservation gives its slot back when its checkout has run out.
    Commission.objects.filter(pk=second.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    _, third = reserve(store=store, product=service, email="third@example.com")
    second.refresh_from_db()
    assert (second.status, third.status) == (CommissionStatus.EXPIRED, CommissionStatus.RESERVED)
    assert ServiceOffer.objects.get(pk=service.pk).taken == 1


def test_bad_input_is_refused_clearly(store, service):
    download = product_with_file(store=store, name="Zine")
    order = buy(store=store, product=download)
    with pytest.raises(NotACommission, match="This order is not a commission"):
        commission_deliver(store=store, commission_id=order.pk, note="x")
    with pytest.raises(CommissionNotFound):
        commission_deliver(store=store, commission_id="com_nope", note="x")

    commission = order_commission(store=store, product=service)
    other = StoreFactory()
    with pytest.raises(CommissionNotFound):
        commission_deliver(store=other, commission_id=commission.pk, note="x")
    with pytest.raises(CommissionNotFound):
        commission_for_store(store=other, commission_id=commission.order_id)
    with pytest.raises(CommissionNotFound):
        commission_decline(store=other, commission_id=commission.pk)
    with pytest.raises(CommissionInvalid, match="Add a note or files to deliver."):
        commission_deliver(store=store, commission_id=commission.pk, note="  ")
    with pytest.raises(CommissionInvalid, match="Describe what you would like made."):
        reserve(store=store, product=service, brief="   ")
    with pytest.raises(CommissionInvalid, match="Write a message first."):
        commission_message_add(commission=commission, author="buyer", body="")
    with pytest.raises(CommissionStateConflict, match="awaiting delivery: it cannot be accepted"):
        commission_accept(commission_id=commission.pk)
    with pytest.raises(CommissionInvalid, match="Only a service product takes commissions."):
        service_offer_set(product=download, slots=2)
    with pytest.raises(CommissionInvalid, match="Slots must be a whole number"):
        service_offer_set(product=service, slots=0)
    commission.refresh_from_db()
    assert commission.status == CommissionStatus.AWAITING_DELIVERY


def test_messages_reach_the_other_side(store, service):
    commission = order_commission(store=store, product=service)
    mail.outbox.clear()
    with after_commit():
        commission_message_add(commission=commission, author="creator", body="Which colour for the fox?")
        commission_message_add(commission=commission, author="buyer", body="Red, please.")
    assert [(m.author, m.body) for m in commission.messages.all()] == [("creator", "Which colour for the fox?"), ("buyer", "Red, please.")]
    assert [m.to for m in mail.outbox] == [["fan@example.com"], [store.owner.email]]


def test_an_order_refunded_from_its_page_is_not_paid_out_on_acceptance(store, service):
    """Refunded in part through the orders page while held: acceptance is refused, and declining
    refunds the rest and returns the hold, without refunding twice."""
    from stall.orders.refunds import refund_create

    commission = order_commission(store=store, product=service)
    commission_deliver(store=store, commission_id=commission.pk, note="Done")
    refund_create(store=store, order_id=commission.order_id, amount=1000)
    with pytest.raises(CommissionStateConflict, match="This order was refunded: decline the commission instead."):
        commission_accept(commission_id=commission.pk)
    assert commissions_auto_accept(now=timezone.now() + timedelta(days=8)) == 0
    commission_decline(store=store, commission_id=commission.pk)
    commission.order.refresh_from_db()
    assert (commission.order.amount_refunded, commission.order.status) == (5000, OrderStatus.REFUNDED)
    assert_ledger_balanced()


def test_a_payment_that_lands_after_its_reservation_expired_still_opens(store, service):
    """A slow bank: the reservation ran out and its slot went to another buyer, then the payment
    lands. The commission opens (the buyer paid) without failing the payment for want of a slot."""
    from stall.orders.checkout_pay import checkout_confirm

    service_offer_set(product=service, slots=1)
    checkout, late = reserve(store=store, product=service, email="slow@example.com")
    Commission.objects.filter(pk=late.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    reserve(store=store, product=service, email="quick@example.com")  # takes the freed slot
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    late.refresh_from_db()
    assert (late.status, late.holds_slot) == (CommissionStatus.AWAITING_DELIVERY, False)
    assert ServiceOffer.objects.get(pk=service.pk).taken == 1


def test_an_order_refunded_in_full_from_its_page_closes_the_commission_and_releases_the_hold(store, service):
    """Nothing is left held for money the buyer already has back: the commission closes as
    declined, the hold is voided and the escrow emptied, as a decline would."""
    from stall.orders.refunds import refund_create

    commission = order_commission(store=store, product=service)
    refund_create(store=store, order_id=commission.order_id)
    commission.refresh_from_db()
    assert (commission.status, commission.decline_reason) == (CommissionStatus.DECLINED, "Refunded from the order's page")
    assert Transfer.objects.get(pk=commission.hold_transfer_id).state == TransferState.VOIDED
    balance, escrow = accounts(store)
    assert (escrow.balance, escrow.debits_pending, balance.credits_pending) == (0, 0, 0)
    assert ServiceOffer.objects.get(pk=service.pk).taken == 0
    with pytest.raises(CommissionStateConflict):
        commission_accept(commission_id=commission.pk)
    assert_ledger_balanced()
