"""Top-ups (limits, 3-D Secure, declines, the wallet.topped_up event), automatic top-ups, tab
settlement with card minimums, settle-and-buy, and the periodic settlement of overdue tabs."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.integrations.models import Event
from stall.ledger.models import Transfer
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.errors import PaymentDeclined, PaymentNotAwaitingAction
from stall.payments.models import Payment
from stall.payments.rails import UnknownPaymentMethod
from stall.payments.rails.wallet import fee_pool_for, wallet_for
from stall.payments.saved_methods import payment_method_save
from stall.payments.services import payment_authenticate
from stall.testing import ProductFactory, StoreFactory, query_plan
from stall.wallets.errors import TabLimitReached, TabOverdue, TopUpInvalid
from stall.wallets.models import AutoTopUp, Tab, TabStatus, Wallet
from stall.wallets.selectors import tab_open_get, tab_owed, tab_purchases
from stall.wallets.services import (
    tab_settle,
    tab_settle_and_buy,
    tabs_settle_overdue,
    wallet_auto_top_up,
    wallet_auto_top_up_off,
    wallet_auto_top_up_set,
    wallet_top_up,
    wallets_auto_top_up_sweep,
)

from .conftest import assert_ledger_balanced, open_checkout, spend, store_balance


def balance(buyer, currency="USD") -> int:
    return wallet_for(buyer=buyer, currency=currency).account.balance


def exactly(message: str) -> str:
    import re

    return f"^{re.escape(message)}$"


# --- top-ups ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [499, 20001])
def test_a_top_up_outside_the_limits_is_refused_and_charges_nothing(buyer, amount):
    """$4.99 and $200.01 are outside STALL_TOP_UP_MIN/MAX: refused on the amount, no payment made."""
    with pytest.raises(TopUpInvalid, match=exactly("Top up between $5.00 and $200.00.")) as caught:
        wallet_top_up(buyer=buyer, amount=amount, currency="USD", payment_method="sandbox_visa")
    assert (caught.value.code, caught.value.param) == ("invalid_top_up", "amount")
    assert Payment.objects.count() == 0 and Transfer.objects.count() == 0


def test_a_top_up_with_an_unknown_card_is_refused_on_the_card(buyer):
    """A card code no rail knows is refused on payment_method before any payment exists."""
    with pytest.raises(UnknownPaymentMethod, match="Unknown payment method “sandbox_bogus”.") as caught:
        wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_bogus")
    assert caught.value.param == "payment_method"
    assert Payment.objects.count() == 0


def test_a_declined_top_up_moves_nothing(buyer):
    """sandbox_declined fails the payment with the bank's message; the wallet stays empty."""
    with pytest.raises(PaymentDeclined, match=exactly("Your card was declined.")):
        wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_declined")
    assert Payment.objects.get().status == "failed"
    assert balance(buyer) == 0 and Transfer.objects.count() == 0


def test_a_3ds_top_up_waits_for_the_bank_then_fills_the_wallet_once(buyer):
    """sandbox_3ds leaves the top-up awaiting the buyer; approving puts $10.00 in and the 59¢ fee in the
    pool; a second approval changes nothing."""
    payment = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_3ds")
    assert payment.status == "requires_action" and balance(buyer) == 0
    payment = payment_authenticate(payment_id=payment.pk, approve=True)
    assert (payment.status, payment.fee) == ("succeeded", 59)
    assert payment_authenticate(payment_id=payment.pk, approve=True).status == "succeeded"
    assert balance(buyer) == 1000
    assert fee_pool_for(wallet_for(buyer=buyer, currency="USD")).balance == 59
    assert Transfer.objects.filter(code="top_up").count() == 1
    assert_ledger_balanced()


def test_a_3ds_top_up_the_buyer_cancels_fails_and_moves_nothing(buyer):
    """Cancelling the bank's check fails the top-up with authentication_failed; nothing reaches the wallet."""
    payment = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_3ds")
    with pytest.raises(PaymentDeclined, match=exactly("The card's 3-D Secure check was not completed.")) as caught:
        payment_authenticate(payment_id=payment.pk, approve=False)
    assert caught.value.code == "authentication_failed"
    with pytest.raises(PaymentNotAwaitingAction):
        payment_authenticate(payment_id=payment.pk, approve=True)
    assert balance(buyer) == 0 and Transfer.objects.count() == 0


def test_a_top_up_from_a_store_page_tells_that_store(store, buyer, settings, django_capture_on_commit_callbacks):
    """A top-up started on a store's page emits wallet.topped_up to that store; one with no store emits nothing."""
    from standardwebhooks.webhooks import Webhook

    from stall.integrations import webhooks
    from stall.integrations.tests.test_webhooks import Receiver

    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    receiver = Receiver()
    try:
        endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["wallet.topped_up"])
        with django_capture_on_commit_callbacks(execute=True):
            payment = wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa", store=store)
            wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
        assert len(receiver.requests) == 1
        headers, body = receiver.requests[0]
        event = Webhook(endpoint.secret).verify(body, headers)
    finally:
        receiver.close()
    assert event["type"] == "wallet.topped_up"
    obj = event["data"]["object"]
    assert (obj["id"], obj["object"], obj["amount"], obj["currency"], obj["fee"], obj["customer_email"], obj["automatic"]) == (
        payment.pk, "top_up", 2000, "USD", 88, "reader@example.com", False,
    )
    assert list(Event.objects.values_list("type", "store_id")) == [("wallet.topped_up", store.pk)]


# --- automatic top-up ------------------------------------------------------------------------------


def test_auto_top_up_settings_refuse_bad_amounts_and_unknown_cards(buyer):
    """The top-up amount must be within the limits, the threshold at most the maximum, the card known."""
    wallet = wallet_for(buyer=buyer, currency="USD")
    with pytest.raises(TopUpInvalid, match=exactly("Top up between $5.00 and $200.00.")) as caught:
        wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=100, amount=100)
    assert caught.value.param == "auto_amount"
    with pytest.raises(TopUpInvalid, match=exactly("Choose a threshold of at most $200.00.")):
        wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=20001, amount=500)
    with pytest.raises(UnknownPaymentMethod, match="Unknown payment method") as caught:
        wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_nope", below=100, amount=500)
    assert caught.value.param == "payment_method"
    wallet.refresh_from_db()
    assert (wallet.auto_top_up_below, wallet.auto_top_up_method_id) == (None, None)


def test_a_burst_of_spends_below_the_threshold_tops_up_once(store, buyer, post, django_capture_on_commit_callbacks):
    """Three spends in a row leave the wallet below $50: three tasks are queued, one $5 top-up is charged
    (even though the wallet is still below the threshold); the next spend, after that top-up, tops up again."""
    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    wallet_auto_top_up_set(wallet=wallet_for(buyer=buyer, currency="USD"), payment_method="sandbox_visa", below=5000, amount=500)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            spend(store=store, product=post, buyer=buyer)
    auto = AutoTopUp.objects.get()
    assert (auto.payment.status, auto.payment.amount, auto.payment.purpose) == ("succeeded", 500, "top_up")
    assert balance(buyer) == 2000 - 75 + 500
    with django_capture_on_commit_callbacks(execute=True):
        spend(store=store, product=post, buyer=buyer)
    assert AutoTopUp.objects.count() == 2
    assert balance(buyer) == 2000 - 100 + 1000
    assert_ledger_balanced()


def test_no_top_up_while_the_balance_stays_at_or_above_the_threshold(store, buyer, post, django_capture_on_commit_callbacks):
    """A spend that leaves exactly the threshold queues nothing; turning auto top-up off stops it."""
    wallet_top_up(buyer=buyer, amount=525, currency="USD", payment_method="sandbox_visa")
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=500, amount=500)
    with django_capture_on_commit_callbacks(execute=True):
        spend(store=store, product=post, buyer=buyer)
    assert AutoTopUp.objects.count() == 0
    wallet_auto_top_up_off(wallet=wallet)
    with django_capture_on_commit_callbacks(execute=True):
        spend(store=store, product=post, buyer=buyer)
    assert AutoTopUp.objects.count() == 0 and balance(buyer) == 475


def test_a_declined_auto_top_up_is_recorded_pauses_and_emails_once(store, buyer, post, django_capture_on_commit_callbacks):
    """The saved card is declined: the attempt is recorded, auto top-up pauses, the buyer gets one email,
    and later spends and the sweep charge nothing more until the buyer saves a card again."""
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_declined", below=450, amount=1000)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            spend(store=store, product=post, buyer=buyer)
    auto = AutoTopUp.objects.get()
    assert (auto.payment.status, auto.payment.failure_code, auto.failure_message) == ("failed", "card_declined", "Your card was declined.")
    wallet.refresh_from_db()
    assert wallet.auto_top_up_failed_at is not None and wallet.auto_top_up_failure == "Your card was declined."
    notices = [m for m in mail.outbox if m.subject == "Your wallet was not topped up"]
    assert len(notices) == 1 and notices[0].to == ["reader@example.com"]
    assert "Your card was declined." in notices[0].body and "/library/enter/" in notices[0].body
    with django_capture_on_commit_callbacks(execute=True):
        spend(store=store, product=post, buyer=buyer)
        assert wallets_auto_top_up_sweep() == 0
    assert Payment.objects.filter(purpose="top_up").count() == 2  # the manual one and the declined one
    # Saving a card again turns it back on; the sweep then tops up.
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=450, amount=1000)
    assert wallets_auto_top_up_sweep() == 1
    assert balance(buyer) == 500 - 100 + 1000
    assert_ledger_balanced()


def test_an_off_session_card_that_wants_3ds_fails_instead_of_waiting(buyer):
    """A saved sandbox_3ds card cannot be confirmed with the buyer away: the auto top-up fails with
    authentication_required and pauses."""
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_3ds", below=100, amount=500)
    auto = wallet_auto_top_up(wallet_id=wallet.pk)
    assert (auto.payment.status, auto.payment.failure_code) == ("failed", "authentication_required")
    wallet.refresh_from_db()
    assert wallet.auto_top_up_failed_at is not None
    assert wallet_auto_top_up(wallet_id=wallet.pk) is None


def test_the_sweep_tops_up_wallets_left_below_their_threshold_once(buyer):
    """A wallet below its threshold whose task never ran is topped up by the sweep, once per trigger."""
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=5000, amount=500)
    other = wallet_for(buyer=buyer_for_email(email="other@example.com"), currency="USD")
    assert wallets_auto_top_up_sweep() == 1
    assert wallets_auto_top_up_sweep() == 1  # the first top-up came in: a new trigger, still below $50
    assert balance(buyer) == 1000 and other.account.balance == 0
    method = Wallet.objects.get(pk=wallet.pk).auto_top_up_method_id
    assert list(AutoTopUp.objects.values_list("trigger", flat=True).order_by("created_at")) == [f"in:0:{method}", f"in:500:{method}"]
    assert_ledger_balanced()


# --- tabs ------------------------------------------------------------------------------------------


def test_a_tab_owing_less_than_the_card_minimum_charges_the_minimum_and_the_rest_goes_to_the_wallet(store, post, buyer):
    """A 25¢ tab is settled with a 50¢ charge (31¢ fee): 25¢ pays the tab, 25¢ lands in the wallet; the sale
    pays 16¢ of the fee and the wallet's pool holds the other 15¢, paid by the next wallet spend."""
    order = spend(store=store, product=post, buyer=buyer, method="tab")
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
    assert (payment.amount, payment.fee, payment.status) == (50, 31, "succeeded")
    tab = Tab.objects.get()
    assert (tab.status, tab_owed(tab=tab)) == (TabStatus.SETTLED, 0)
    assert Order.objects.get(pk=order.pk).fee == 16
    wallet = wallet_for(buyer=buyer, currency="USD")
    assert (wallet.account.balance, fee_pool_for(wallet).balance) == (25, 15)
    assert store_balance(store) == 25 - 16
    second = spend(store=store, product=post, buyer=buyer)  # the leftover pays for the next post
    assert second.fee == 15 and balance(buyer) == 0 and fee_pool_for(wallet).balance == 0
    assert store_balance(store) == 50 - 31
    assert_ledger_balanced()


def test_a_declined_settlement_reopens_the_tab_for_purchases(store, post, buyer):
    """While the card is charged the tab is held; a decline gives it back its limit."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    with pytest.raises(PaymentDeclined):
        tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_declined")
    tab = Tab.objects.get()
    assert tab.status == TabStatus.OPEN and tab.account.debit_limit == 100
    spend(store=store, product=post, buyer=buyer, method="tab")
    assert tab_owed(tab=tab) == 50
    assert_ledger_balanced()


def test_a_tab_waiting_for_3ds_takes_no_purchase_and_settles_what_it_owed(store, post, buyer):
    """While a settlement waits for the bank the tab refuses purchases; approving settles it; cancelling
    reopens it."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    spend(store=store, product=post, buyer=buyer, method="tab")
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_3ds")
    assert payment.status == "requires_action"
    with pytest.raises(TabLimitReached):
        spend(store=store, product=post, buyer=buyer, method="tab")
    with pytest.raises(TopUpInvalid, match=exactly("There is no open tab to settle.")):
        tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
    with pytest.raises(PaymentDeclined):
        payment_authenticate(payment_id=payment.pk, approve=False)
    spend(store=store, product=post, buyer=buyer, method="tab")
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_3ds")
    payment_authenticate(payment_id=payment.pk, approve=True)
    tab = Tab.objects.get()
    assert (tab.status, tab.settlement_id, tab_owed(tab=tab)) == (TabStatus.SETTLED, payment.pk, 0)
    assert payment.amount == 75 and balance(buyer) == 0
    assert_ledger_balanced()


def test_a_refund_while_settling_sends_the_overpayment_to_the_wallet(store, post, buyer):
    """A tab sale refunded while the card waits for 3-D Secure: the settlement pays what is still owed and
    the rest of the charge goes into the wallet."""
    orders = [spend(store=store, product=post, buyer=buyer, method="tab") for _ in range(3)]
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_3ds")
    refund_create(store=store, order_id=orders[0].pk)
    payment_authenticate(payment_id=payment.pk, approve=True)
    assert (payment.amount, Tab.objects.get().status) == (75, TabStatus.SETTLED)
    assert balance(buyer) == 25
    assert_ledger_balanced()


def test_settle_and_buy_charges_the_tab_and_the_purchase_once_and_completes_it(store, post, buyer):
    """A full $1 tab refuses a 25¢ purchase; settle-and-buy charges $1.25 once, pays off the tab, and the
    purchase is paid from the wallet it topped up, which ends empty; all fees add up to the card's 34¢."""
    orders = [spend(store=store, product=post, buyer=buyer, method="tab") for _ in range(4)]
    checkout = open_checkout(store, post)
    with pytest.raises(TabLimitReached):
        checkout_confirm(checkout_id=checkout.pk, payment_method="tab", buyer=buyer)
    payment, checkout = tab_settle_and_buy(buyer=buyer, checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert (payment.amount, payment.fee, payment.status, checkout.status) == (125, 34, "succeeded", "complete")
    assert Payment.objects.filter(purpose="tab_settlement").count() == 1
    assert Tab.objects.get().status == TabStatus.SETTLED
    bought = checkout.order
    assert (bought.payment.rail, bought.amount_total) == ("wallet", 25)
    assert balance(buyer) == 0
    fees = [Order.objects.get(pk=o.pk).fee for o in orders] + [bought.fee]
    assert sum(fees) == 34
    assert store_balance(store) == 125 - 34
    assert_ledger_balanced()


def test_settle_and_buy_with_a_3ds_card_completes_after_the_bank(store, post, buyer):
    """With sandbox_3ds the charge waits and the checkout stays open; once approved, the purchase is paid."""
    from stall.wallets.services import checkout_pay_after_settlement

    for _ in range(4):
        spend(store=store, product=post, buyer=buyer, method="tab")
    checkout = open_checkout(store, post)
    payment, still_open = tab_settle_and_buy(buyer=buyer, checkout_id=checkout.pk, payment_method="sandbox_3ds")
    assert (payment.status, still_open.status) == ("requires_action", "open")
    payment_authenticate(payment_id=payment.pk, approve=True)
    assert checkout_pay_after_settlement(buyer=buyer, checkout_id=checkout.pk).status == "complete"
    assert balance(buyer) == 0 and Tab.objects.get().status == TabStatus.SETTLED
    assert_ledger_balanced()


def test_settle_and_buy_refuses_an_expired_or_paid_checkout_and_charges_nothing(store, post, buyer):
    """An expired checkout and a paid one are refused before any card charge."""
    from stall.checkout.errors import CheckoutExpired, CheckoutInvalid
    from stall.checkout.models import Checkout

    spend(store=store, product=post, buyer=buyer, method="tab")
    expired = open_checkout(store, post)
    Checkout.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(CheckoutExpired):
        tab_settle_and_buy(buyer=buyer, checkout_id=expired.pk, payment_method="sandbox_visa")
    paid = open_checkout(store, post)
    checkout_confirm(checkout_id=paid.pk, payment_method="tab", buyer=buyer)
    with pytest.raises(CheckoutInvalid, match=exactly("This checkout was already paid.")):
        tab_settle_and_buy(buyer=buyer, checkout_id=paid.pk, payment_method="sandbox_visa")
    assert Payment.objects.filter(purpose="tab_settlement").count() == 0
    assert Tab.objects.get().account.debit_limit == 100


# --- overdue tabs ----------------------------------------------------------------------------------


def age_tabs(days: int) -> None:
    Tab.objects.update(opened_at=timezone.now() - timedelta(days=days))


def test_an_overdue_tab_is_settled_with_the_saved_card(store, post, buyer, django_capture_on_commit_callbacks):
    """A tab open 30 days is settled by the periodic task with the buyer's saved card; no email is sent."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    spend(store=store, product=post, buyer=buyer, method="tab")
    payment_method_save(email=buyer.email, rail="sandbox", payment_method="sandbox_visa")
    age_tabs(30)
    with django_capture_on_commit_callbacks(execute=True):
        assert tabs_settle_overdue() == {"settled": 1, "failed": 0, "notified": 0, "closed": 0}
    tab = Tab.objects.get()
    assert (tab.status, tab.settlement.amount, tab.settlement.payment_method) == (TabStatus.SETTLED, 50, "sandbox_visa")
    assert mail.outbox == []
    assert_ledger_balanced()


def test_an_overdue_tab_without_a_card_is_blocked_and_the_buyer_emailed_once(store, post, buyer, django_capture_on_commit_callbacks):
    """With no saved card the overdue tab stays open and refuses purchases with TabOverdue; the buyer is
    emailed once however often the task runs; settling by hand unblocks it."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    age_tabs(29)
    assert tabs_settle_overdue()["notified"] == 0
    age_tabs(30)
    with django_capture_on_commit_callbacks(execute=True):
        assert tabs_settle_overdue() == {"settled": 0, "failed": 0, "notified": 1, "closed": 0}
        assert tabs_settle_overdue()["notified"] == 0
    notices = [m for m in mail.outbox if m.subject == "Please settle your tab"]
    assert len(notices) == 1 and "Your tab of $0.25" in notices[0].body and "takes no new purchases" in notices[0].body
    with pytest.raises(TabOverdue, match=exactly("Your tab has been open too long. Settle it to keep buying on it.")):
        spend(store=store, product=post, buyer=buyer, method="tab")
    tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
    spend(store=store, product=post, buyer=buyer, method="tab")
    assert tab_open_get(buyer=buyer, currency="USD").limit == 500
    assert_ledger_balanced()


def test_an_overdue_tab_whose_saved_card_is_declined_is_tried_once_then_emailed(store, post, buyer, django_capture_on_commit_callbacks):
    """The saved card is declined: one attempt, one email, and the next run charges nothing."""
    spend(store=store, product=post, buyer=buyer, method="tab")
    payment_method_save(email=buyer.email, rail="sandbox", payment_method="sandbox_declined")
    age_tabs(31)
    with django_capture_on_commit_callbacks(execute=True):
        assert tabs_settle_overdue() == {"settled": 0, "failed": 1, "notified": 1, "closed": 0}
        assert tabs_settle_overdue() == {"settled": 0, "failed": 0, "notified": 0, "closed": 0}
    assert Payment.objects.filter(purpose="tab_settlement").count() == 1
    tab = Tab.objects.get()
    assert tab.status == TabStatus.OPEN and tab.account.debit_limit == 100
    assert len([m for m in mail.outbox if m.subject == "Please settle your tab"]) == 1


def test_an_overdue_tab_that_owes_nothing_is_closed(store, post, buyer):
    """A tab whose only sale was refunded is closed by the task, and does not count as a paid tab."""
    order = spend(store=store, product=post, buyer=buyer, method="tab")
    refund_create(store=store, order_id=order.pk)
    age_tabs(40)
    assert tabs_settle_overdue()["closed"] == 1
    assert Tab.objects.get().status == TabStatus.SETTLED
    spend(store=store, product=post, buyer=buyer, method="tab")
    assert tab_open_get(buyer=buyer, currency="USD").limit == 100
    assert_ledger_balanced()


def test_a_wallet_is_per_currency_and_shared_by_every_store(buyer):
    """A top-up in USD is spent in any USD store; a EUR store's checkout sees an empty EUR wallet."""
    usd_a, usd_b = StoreFactory(currency="USD"), StoreFactory(currency="USD")
    eur = StoreFactory(currency="EUR")
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    spend(store=usd_a, product=ProductFactory(store=usd_a, amount=100), buyer=buyer)
    spend(store=usd_b, product=ProductFactory(store=usd_b, amount=100), buyer=buyer)
    from stall.wallets.errors import WalletEmpty

    with pytest.raises(WalletEmpty):
        spend(store=eur, product=ProductFactory(store=eur, amount=100), buyer=buyer)
    assert balance(buyer) == 300 and balance(buyer, "EUR") == 0
    assert_ledger_balanced()


@pytest.mark.django_db(transaction=True)
def test_auto_top_up_tasks_racing_for_one_trigger_charge_once():
    """Four workers run the same burst's auto top-up at once: one card charge, one AutoTopUp."""
    import threading

    from django.db import connection

    buyer = buyer_for_email(email="racer@example.com")
    wallet = wallet_for(buyer=buyer, currency="USD")
    wallet_auto_top_up_set(wallet=wallet, payment_method="sandbox_visa", below=5000, amount=500)
    trigger = f"in:0:{Wallet.objects.get(pk=wallet.pk).auto_top_up_method_id}"
    barrier, results = threading.Barrier(4), []

    def run():
        barrier.wait()
        try:
            results.append(wallet_auto_top_up(wallet_id=wallet.pk, trigger=trigger) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert Payment.objects.filter(purpose="top_up").count() == 1
    assert balance(buyer) == 500
    assert_ledger_balanced()


def test_the_periodic_tasks_run_the_sweep_and_the_overdue_settlement(store, post, buyer):
    """The Huey periodic tasks call the sweep and the overdue-tab settlement and return their results."""
    from stall.wallets.tasks import tabs_settle_overdue_task, wallets_auto_top_up_sweep_task

    spend(store=store, product=post, buyer=buyer, method="tab")
    payment_method_save(email=buyer.email, rail="sandbox", payment_method="sandbox_visa")
    age_tabs(30)
    assert tabs_settle_overdue_task.call_local() == {"settled": 1, "failed": 0, "notified": 0, "closed": 0}
    wallet_auto_top_up_set(wallet=wallet_for(buyer=buyer, currency="USD"), payment_method="sandbox_visa", below=100, amount=500)
    # The settlement's 25¢ change is in the wallet, below the $1 threshold: the sweep tops it up.
    assert wallets_auto_top_up_sweep_task.call_local() == 1
    assert balance(buyer) == 25 + 500


def test_a_tab_sale_refunded_after_settlement_sends_its_fee_share_to_the_wallet_pool(store, buyer):
    """Found by the wallet-flow machine: the store paid the sale's share of the settlement's card
    fee and kept paying it after giving the sale back (−16¢). Now the share goes with the refund to
    the wallet's fee pool, as a wallet sale's does, and the store is back at zero."""
    product = ProductFactory(store=store, amount=25)
    order = spend(store=store, product=product, buyer=buyer, method="tab")
    payment = tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
    order.refresh_from_db()
    assert (payment.amount, payment.fee, order.fee) == (50, 31, 16)
    refund_create(store=store, order_id=order.pk)
    order.refresh_from_db()
    wallet = wallet_for(buyer=buyer, currency="USD")
    pool = fee_pool_for(wallet)
    assert store_balance(store) == 0 and (order.fee, order.fee_refunded, order.net) == (16, 16, 0)
    assert (wallet.account.balance, pool.debits_posted - pool.credits_posted) == (50, 31)
    assert_ledger_balanced()


@pytest.mark.django_db
def test_a_tabs_purchases_are_read_through_the_tab_reference_index():
    # The tab's page and its settlement read its purchases; with a million orders behind them,
    # the join used to scan every order and look up its payment.
    plan = query_plan(lambda: list(tab_purchases(tab=Tab(pk="tab_unknown"))))
    assert "payments_tab_by_reference" in plan, plan
