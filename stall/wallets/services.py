"""Wallets and tabs: opening them, topping up, settling, and what a card payment for them does.

Card money reaches a wallet or a tab through ``payment_create_for_purpose`` (the payments app's
lock, call, finalize pattern); when the rail reports success, ``top_up_succeed`` or
``tab_settlement_succeed`` moves it in the ledger, and when it fails, ``top_up_fail`` or
``tab_settlement_fail`` undoes what was reserved.

Card minimums. A card network will not charge less than about 50¢, so a tab owing 25¢ is settled
with a 50¢ charge and the 25¢ left over goes into the buyer's wallet (with its share of the card
fee in the wallet's fee pool, paid back by the spends it funds). "Settle and buy", for a purchase
that would take a tab over its limit, works the same way: one card charge of what the tab owes
plus the purchase; the tab is paid off, the rest lands in the wallet, and the purchase is paid
from the wallet in the same request.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from stall.checkout.errors import CheckoutInvalid
from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.checkout.services import checkout_lock_open
from stall.core.api import timestamp
from stall.core.errors import InvalidRequest, StallError
from stall.core.languages import language_to_record
from stall.core.money import (
    amount_validate,
    currency_normalize,
    format_money,
    money_setting,
    money_setting_list,
    prorate,
)
from stall.integrations.webhooks import event_emit
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import account_limit_set, account_open, accounts_lock, transfer_create
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.errors import PaymentDeclined
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus
from stall.payments.rails import rail_for, rail_get, rail_livemode
from stall.payments.rails.tab import tab_limit_for, tab_open  # noqa: F401  (part of this app's API)
from stall.payments.rails.wallet import fee_pool_for, wallet_mode_for_credit, wallet_open
from stall.payments.saved_methods import payment_method_save
from stall.payments.selectors import saved_payment_methods_for_email
from stall.payments.services import (
    payment_apply_result,
    payment_create_for_purpose,
    rail_fee_account,
)
from stall.payments.stripe_services import stripe_payment_refresh

from . import tasks
from .errors import TopUpInvalid
from .models import AutoTopUp, Tab, TabStatus, Wallet
from .selectors import tab_payments

logger = logging.getLogger(__name__)
IN_FLIGHT = ("processing", "requires_action")


def top_up_limits(currency: str) -> tuple[int, int]:
    """The smallest and largest top-up the operator allows (STALL_TOP_UP_MIN/MAX), in minor units."""
    return money_setting("STALL_TOP_UP_MIN", currency), money_setting("STALL_TOP_UP_MAX", currency)


def top_up_presets(currency: str) -> list[int]:
    """The preset top-up amounts (STALL_TOP_UP_PRESETS) in minor units of ``currency``."""
    return money_setting_list("STALL_TOP_UP_PRESETS", currency)


# --- wallets -------------------------------------------------------------------------------------


def wallet_confirm_above_set(*, wallet: Wallet, amount: int) -> Wallet:
    """Spends up to ``amount`` take one click; above it the buyer confirms first (0: always confirm)."""
    amount_validate(amount, param="confirm_above")
    Wallet.objects.filter(pk=wallet.pk).update(confirm_above=amount)
    wallet.confirm_above = amount
    return wallet


def top_up_mode_check(*, wallet: Wallet | None, rail: str) -> None:
    """Refuse a test card for a wallet that holds real money: a wallet holds one kind of money at a
    time, and real money must not turn into test money. (A real card for a wallet of test money is
    fine: the test money is cleared when the real money comes in.)"""
    if wallet is None or rail_livemode(rail) or not wallet.livemode:
        return
    if wallet.account.available > 0:
        raise TopUpInvalid(
            "Your wallet holds real money: top it up with a real card. Test cards top up an empty "
            "wallet, or one holding test money.", param="payment_method", code="test_card_refused",
        )


def wallet_top_up(*, buyer, amount: int, currency: str, payment_method: str, store=None):
    """Charge a card ``amount`` and put all of it in the buyer's wallet (the card fee goes to its pool).

    Amounts outside the operator's limits (STALL_TOP_UP_MIN, STALL_TOP_UP_MAX) are refused. Returns
    the Payment: succeeded, or requires_action when the card asks for 3-D Secure. ``store`` is the
    store whose page the buyer topped up from: it is told (wallet.topped_up) once the money is in.
    """
    currency = currency_normalize(currency)
    amount_validate(amount, allow_zero=False)
    low, high = top_up_limits(currency)
    if not low <= amount <= high:
        raise TopUpInvalid(
            gettext("Top up between %(low)s and %(high)s.") % {"low": format_money(low, currency), "high": format_money(high, currency)}, param="amount"
        )
    rail = rail_for(store=store, payment_method=payment_method)
    wallet = Wallet.objects.select_related("account").filter(buyer=buyer, currency=currency).first()
    top_up_mode_check(wallet=wallet, rail=rail.name)
    if wallet is None:
        # Opened now so the wallet page shows it even while the card asks for 3-D Secure.
        wallet_open(buyer=buyer, currency=currency)
    return payment_create_for_purpose(
        purpose=PaymentPurpose.TOP_UP, buyer=buyer, amount=amount, currency=currency, payment_method=payment_method, store=store
    )


def top_up_succeed(*, payment) -> None:
    """A card top-up went through: all of it goes into the wallet, the card fee into its pool.

    A test top-up is test money (``wallet_mode_for_credit``); one that raced past
    ``top_up_mode_check`` to a wallet holding real money is not put in it."""
    wallet = Wallet.objects.select_related("account").filter(buyer_id=payment.buyer_id, currency=payment.currency).first()
    if wallet is None:
        wallet = wallet_open(buyer=payment.buyer, currency=payment.currency)
    if not wallet_mode_for_credit(wallet=wallet, livemode=payment.livemode, reference=payment.pk):
        logger.warning("test top-up %s kept out of wallet %s: real money", payment.pk, wallet.pk)
        return
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=payment.currency)
    transfer_create(
        idempotency_key=f"{payment.pk}:top_up", debit_account=clearing, credit_account=wallet.account,
        amount=payment.amount, code="top_up", reference=payment.pk,
    )
    if payment.fee:
        transfer_create(
            idempotency_key=f"{payment.pk}:top_up_fee", debit_account=fee_pool_for(wallet),
            credit_account=rail_fee_account(payment=payment), amount=payment.fee, code="top_up_fee", reference=payment.pk,
        )
    if payment.store_id:
        event_emit(store_id=payment.store_id, type="wallet.topped_up", data={"object": top_up_out(payment)})


def top_up_out(payment) -> dict:
    """A top-up as the wallet.topped_up event carries it."""
    return {
        "id": payment.pk,
        "object": "top_up",
        "amount": payment.amount,
        "currency": payment.currency,
        "fee": payment.fee,
        "customer_email": payment.buyer.email,
        "automatic": AutoTopUp.objects.filter(payment=payment).exists(),
        "livemode": payment.livemode,
        "created": timestamp(payment.created_at),
    }


def top_up_fail(*, payment) -> None:
    """A top-up's card failed. An automatic one pauses auto top-up and tells the buyer, once."""
    auto = AutoTopUp.objects.filter(payment=payment).select_related("wallet").first()
    if auto is not None:
        _auto_top_up_failed(auto=auto, message=payment.failure_message or "Your card was declined.")


# --- automatic top-up ----------------------------------------------------------------------------


def _rail_for_saving(payment_method: str, store=None) -> str:
    rail = rail_for(store=store, payment_method=payment_method)
    if rail.in_ledger:
        raise InvalidRequest(gettext_noop("Save a card."), param="payment_method", code="card_required")
    return rail.name


def wallet_auto_top_up_set(*, wallet: Wallet, payment_method: str, below: int, amount: int, store=None) -> Wallet:
    """Save a card and top the wallet up by ``amount`` whenever a spend leaves it below ``below``.

    ``payment_method`` is a sandbox test card or a Stripe ``pm_…``; the card is kept on its rail
    (``payment_method_save``) and charged later with the buyer away. Saving again clears a pause
    left by a declined top-up.
    """
    currency = wallet.currency
    amount_validate(below, allow_zero=False, param="below")
    amount_validate(amount, allow_zero=False, param="auto_amount")
    low, high = top_up_limits(currency)
    if not low <= amount <= high:
        raise TopUpInvalid(
            gettext("Top up between %(low)s and %(high)s.") % {"low": format_money(low, currency), "high": format_money(high, currency)}, param="auto_amount"
        )
    if below > high:
        raise TopUpInvalid(gettext("Choose a threshold of at most %(amount)s.") % {"amount": format_money(high, currency)}, param="below")
    rail = _rail_for_saving(payment_method, store)
    top_up_mode_check(wallet=wallet, rail=rail)
    saved = payment_method_save(email=wallet.buyer.email, rail=rail, payment_method=payment_method, store=store)
    # The language of the page where it is turned on: the notice of a failed top-up is written in it.
    Wallet.objects.filter(pk=wallet.pk).update(
        auto_top_up_below=below, auto_top_up_amount=amount, auto_top_up_method=saved,
        auto_top_up_failed_at=None, auto_top_up_failure="", language=language_to_record(),
    )
    wallet.refresh_from_db()
    return wallet


def wallet_auto_top_up_off(*, wallet: Wallet) -> Wallet:
    Wallet.objects.filter(pk=wallet.pk).update(
        auto_top_up_below=None, auto_top_up_amount=None, auto_top_up_method=None,
        auto_top_up_failed_at=None, auto_top_up_failure="",
    )
    wallet.refresh_from_db()
    return wallet


def wallet_auto_top_up_due(wallet: Wallet, balance: int) -> bool:
    """Whether a wallet left at ``balance`` should be topped up automatically (no query)."""
    return (
        wallet.auto_top_up_below is not None and wallet.auto_top_up_method_id is not None
        and wallet.auto_top_up_failed_at is None and balance < wallet.auto_top_up_below
    )


def wallet_auto_top_up_enqueue(wallet: Wallet, *, trigger: str) -> None:
    """Queue an automatic top-up once the current transaction commits (a spend's)."""
    wallet_id = wallet.pk
    transaction.on_commit(lambda: tasks.wallet_auto_top_up_task(wallet_id, trigger))


def wallet_spent(*, wallet: Wallet, balance: int, credits_posted: int) -> None:
    """After a spend from the wallet (registered with the wallet rail): queue an automatic top-up
    when it left the wallet below its threshold. The trigger is what has come into the wallet so
    far (and the card): the same for every spend of a burst, so the burst tops up once."""
    if wallet_auto_top_up_due(wallet, balance):
        wallet_auto_top_up_enqueue(wallet, trigger=f"in:{credits_posted}:{wallet.auto_top_up_method_id}")


def wallet_auto_top_up(*, wallet_id: str, trigger: str | None = None) -> AutoTopUp | None:
    """Top the wallet up with its saved card if it is below its threshold. Idempotent per trigger.

    The trigger is how much had come into the wallet when the spend was made, and the saved card
    ("in:<credits>:<card>"): every spend of a burst shares it, so a burst queues several of these
    and one charges the card, even if the wallet is still below its threshold after it; the next
    spend, made after that top-up came in, carries a new trigger, and so does a newly saved card.
    With no trigger (the periodic sweep) it is taken from the wallet now. A decline pauses auto
    top-up (see ``top_up_fail``) and nothing is tried again until the buyer saves their settings
    anew. Returns the AutoTopUp made, or None when there was nothing to do.
    """
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update(of=("self",)).select_related("buyer", "auto_top_up_method").filter(pk=wallet_id).first()
        if wallet is None:
            return None
        account = accounts_lock(wallet.account_id)[wallet.account_id]
        if not wallet_auto_top_up_due(wallet, account.available):
            return None
        if AutoTopUp.objects.filter(wallet=wallet, payment__status__in=IN_FLIGHT).exists():
            return None  # one already charging; its success re-arms the wallet
        trigger = trigger or f"in:{account.credits_posted}:{wallet.auto_top_up_method_id}"
        auto, created = AutoTopUp.objects.get_or_create(wallet=wallet, trigger=trigger)
        if not created:
            return None
    saved = wallet.auto_top_up_method
    try:
        top_up_mode_check(wallet=wallet, rail=saved.rail)
        payment_create_for_purpose(
            purpose=PaymentPurpose.TOP_UP, buyer=wallet.buyer, amount=wallet.auto_top_up_amount, currency=wallet.currency,
            saved=saved, store=saved.store, before_start=lambda p: AutoTopUp.objects.filter(pk=auto.pk).update(payment=p),
        )
    except PaymentDeclined:
        pass  # recorded by top_up_fail, which the payment's failure ran
    except StallError as exc:
        auto.refresh_from_db()
        # Refused before any charge (test cards turned off, Stripe keys removed, …). A payment left
        # processing (the processor did not answer) is settled later by reconciliation instead.
        if auto.payment_id is None:
            with transaction.atomic():
                _auto_top_up_failed(auto=auto, message=exc.message)
    auto.refresh_from_db()
    return auto


def _auto_top_up_failed(*, auto: AutoTopUp, message: str) -> None:
    now = timezone.now()
    AutoTopUp.objects.filter(pk=auto.pk).update(failure_message=message[:255])
    paused = Wallet.objects.filter(pk=auto.wallet_id, auto_top_up_failed_at__isnull=True).update(
        auto_top_up_failed_at=now, auto_top_up_failure=message[:255]
    )
    if paused:
        wallet_id = auto.wallet_id
        transaction.on_commit(lambda: tasks.auto_top_up_failed_notice(wallet_id))


def wallets_auto_top_up_sweep() -> int:
    """Top up every wallet left below its threshold (a lost task, a queue restart). Returns how many
    top-ups were tried."""
    due = Wallet.objects.filter(
        auto_top_up_below__isnull=False, auto_top_up_method__isnull=False, auto_top_up_failed_at__isnull=True,
        account__credits_posted__lt=F("account__debits_posted") + F("account__debits_pending") + F("auto_top_up_below"),
    ).values_list("pk", flat=True)
    return sum(1 for wallet_id in list(due) if wallet_auto_top_up(wallet_id=wallet_id) is not None)


# --- tabs ----------------------------------------------------------------------------------------


def tab_settle_by(tab: Tab):
    """When an open tab becomes overdue."""
    return tab.opened_at + timedelta(days=settings.STALL_TAB_SETTLE_AFTER_DAYS)


def _owed(account) -> int:
    return account.debits_posted + account.debits_pending - account.credits_posted


def tab_settle(*, buyer, currency: str, payment_method: str = "", saved=None, store=None, plus: int = 0):
    """Charge a card what the open tab owes, in one charge. Returns the Payment (see wallet_top_up).

    ``payment_method`` is a card the buyer chose, or ``saved`` a card kept for charges without
    them. The charge is at least the card's minimum and includes ``plus`` (a purchase to pay
    with it, see ``tab_settle_and_buy``): whatever is charged beyond what the tab owes goes into
    the buyer's wallet. While the card is being charged the tab takes no more purchases (its
    limit is held at what it owes), so the charge pays all of it; a failed charge reopens it.
    """
    currency = currency_normalize(currency)
    amount_validate(plus, param="amount")
    # Refuse an unknown card before anything is held.
    rail = rail_get(saved.rail) if saved is not None else rail_for(store=store, payment_method=payment_method)
    if rail.in_ledger:
        raise TopUpInvalid(gettext_noop("Settle your tab with a card."), param="payment_method", code="card_required")
    if not rail_livemode(rail.name):
        # What is on the tab was delivered as real purchases: test money cannot pay for it.
        raise TopUpInvalid(
            "Settle your tab with a real card: test cards do not pay for real purchases.",
            param="payment_method", code="test_card_refused",
        )
    with transaction.atomic():
        tab = Tab.objects.select_for_update(of=("self",)).select_related("account", "settlement").filter(
            buyer=buyer, currency=currency, status=TabStatus.OPEN
        ).first()
        if tab is None or tab.settlement_id is not None and tab.settlement.status in IN_FLIGHT:
            raise TopUpInvalid(gettext_noop("There is no open tab to settle."), param="tab", code="no_open_tab")
        owed = _owed(accounts_lock(tab.account_id)[tab.account_id])
        if owed <= 0:
            raise TopUpInvalid(gettext_noop("The tab owes nothing."), param="tab", code="no_open_tab")
        account_limit_set(account=tab.account, debit_limit=owed)  # hold it while the card is charged
    amount = max(owed + plus, rail.minimum_charge(currency))
    try:
        return payment_create_for_purpose(
            purpose=PaymentPurpose.TAB_SETTLEMENT, buyer=buyer, amount=amount, currency=currency,
            payment_method=payment_method, saved=saved, store=store,
            before_start=lambda p: Tab.objects.filter(pk=tab.pk).update(settlement=p),
        )
    except Exception:
        _tab_reopen(tab_id=tab.pk)  # a decline reopened it already; anything raised earlier did not
        raise


@transaction.atomic
def _tab_reopen(*, tab_id: str) -> None:
    """Give an open tab its limit back unless a settlement is still under way for it."""
    tab = Tab.objects.select_for_update(of=("self",)).select_related("account", "settlement").get(pk=tab_id)
    if tab.status != TabStatus.OPEN or tab.settlement_id is not None and tab.settlement.status in IN_FLIGHT:
        return
    owed = _owed(accounts_lock(tab.account_id)[tab.account_id])
    account_limit_set(account=tab.account, debit_limit=max(tab.limit, owed))


def tab_settlement_fail(*, payment) -> None:
    """A settlement's card failed: the tab takes purchases again, up to its limit."""
    tab = Tab.objects.filter(settlement=payment).only("pk").first()
    if tab is not None:
        _tab_reopen(tab_id=tab.pk)


def tab_settlement_succeed(*, payment) -> None:
    """A card charge settled a tab: the tab is paid off and the card fee is shared among its sales.

    What the charge brought beyond what the tab owes (a card minimum, a purchase settled with it,
    a sale refunded meanwhile) goes into the buyer's wallet, with its share of the fee in the
    wallet's fee pool.
    """
    tab = Tab.objects.select_for_update().select_related("account").get(settlement=payment)
    owed = _owed(accounts_lock(tab.account_id)[tab.account_id])
    to_tab = max(0, min(payment.amount, owed))
    excess = payment.amount - to_tab
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=payment.currency)
    if to_tab:
        transfer_create(
            idempotency_key=f"{payment.pk}:tab_settlement", debit_account=clearing, credit_account=tab.account,
            amount=to_tab, code="tab_settlement", reference=tab.pk,
        )
    wallet = None
    if excess:
        wallet = Wallet.objects.select_related("account").filter(buyer_id=payment.buyer_id, currency=payment.currency).first()
        wallet = wallet or wallet_open(buyer=payment.buyer, currency=payment.currency)
        # Real money (tab_settle refuses test cards where they would be test money).
        wallet_mode_for_credit(wallet=wallet, livemode=payment.livemode, reference=payment.pk)
        transfer_create(
            idempotency_key=f"{payment.pk}:tab_settlement_excess", debit_account=clearing, credit_account=wallet.account,
            amount=excess, code="tab_settlement_excess", reference=payment.pk,
        )
    fee_to_tab = prorate(payment.fee, to_tab, payment.amount)
    fees = rail_fee_account(payment=payment) if payment.fee else None
    if fee_to_tab:
        sales = list(
            Order.objects.select_for_update()
            .filter(payment__in=tab_payments(tab=tab))
            .order_by("pk")
        )
        # Shared by what each sale still is after refunds, by running total: the shares add up to
        # exactly the fee.
        kept = [o.amount_total - o.amount_refunded for o in sales]
        total = sum(kept)
        if not total:
            fee_to_tab = 0  # nothing to share it among: the wallet's pool carries it
        allocated = 0
        for index, order in enumerate(sales if total else []):
            upto = prorate(fee_to_tab, sum(kept[: index + 1]), total)
            part = upto - allocated
            allocated = upto
            if part:
                store_owner = ledger_owner(order.store_id, livemode=order.livemode)
                store_balance = account_open(
                    kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=order.currency
                )
                transfer_create(
                    idempotency_key=f"{payment.pk}:fee:{order.pk}", debit_account=store_balance, credit_account=fees,
                    amount=part, code="tab_settlement_fee", reference=order.pk,
                )
                # The share is on the order in the same transaction as its transfer (see Order.net).
                Order.objects.filter(pk=order.pk).update(fee=F("fee") + part)
    fee_to_wallet = payment.fee - fee_to_tab
    if fee_to_wallet:
        if wallet is None:
            wallet = Wallet.objects.filter(buyer_id=payment.buyer_id, currency=payment.currency).first()
            wallet = wallet or wallet_open(buyer=payment.buyer, currency=payment.currency)
        transfer_create(
            idempotency_key=f"{payment.pk}:top_up_fee", debit_account=fee_pool_for(wallet), credit_account=fees,
            amount=fee_to_wallet, code="top_up_fee", reference=payment.pk,
        )
    if owed - to_tab > 0:
        # Still owing (a purchase slipped in before the tab was held): the tab stays open for the rest.
        account_limit_set(account=tab.account, debit_limit=max(tab.limit, owed - to_tab))
        return
    tab.status = TabStatus.SETTLED
    tab.settled_at = timezone.now()
    tab.save(update_fields=["status", "settled_at"])
    account_limit_set(account=tab.account, debit_limit=0)  # nothing more on it until the next tab opens


def tab_settle_and_buy(*, buyer, checkout_id: str, payment_method: str = "", saved=None):
    """Settle the open tab and pay for a checkout with one card charge.

    For a purchase the tab cannot take (over its limit, or overdue). The card is charged what
    the tab owes plus the checkout's total (at least the card minimum); the tab is paid off, the
    rest goes into the wallet, and the checkout is paid from the wallet at once. Returns
    ``(payment, checkout)``: when the card asks for 3-D Secure the payment waits and the checkout
    is still open; ``checkout_pay_after_settlement`` finishes it once the buyer confirmed.
    """
    checkout = checkout_get(checkout_id=checkout_id)
    with transaction.atomic():
        checkout_lock_open(checkout_id=checkout.pk)  # refuses an expired checkout
    if checkout.status == CheckoutStatus.COMPLETE:
        raise CheckoutInvalid(gettext_noop("This checkout was already paid."), code="checkout_complete")
    if checkout.amount_total <= 0:
        raise CheckoutInvalid(gettext_noop("There is nothing to pay for this checkout."), code="checkout_free")
    payment = tab_settle(
        buyer=buyer, currency=checkout.currency, payment_method=payment_method, saved=saved, store=checkout.store,
        plus=checkout.amount_total,
    )
    if payment.status != "succeeded":
        return payment, checkout
    return payment, checkout_pay_after_settlement(buyer=buyer, checkout_id=checkout.pk)


def checkout_pay_after_settlement(*, buyer, checkout_id: str):
    """Pay a checkout from the wallet that a settle-and-buy charge just filled. Returns the checkout."""
    return checkout_confirm(checkout_id=checkout_id, payment_method="wallet", buyer=buyer)


def card_payment_ready(*, payment_id: str):
    """Ready the Stripe page of a top-up or tab settlement the buyer pays by "Card".

    Returns ``(payment, client_secret)``. The PaymentIntent made when the buyer chose the card is
    asked for again (never a second one), so reloading the page charges once. The secret is empty
    when the payment no longer waits for the buyer: Stripe's news (paid, declined) is recorded then.
    """
    payment = Payment.objects.get(pk=payment_id)
    if payment.rail != "stripe" or payment.status != PaymentStatus.REQUIRES_ACTION:
        return payment, ""
    result = rail_get("stripe").payment_retrieve(payment_id=payment.pk)
    if result.status == "requires_action":
        return payment_apply_result(payment_id=payment.pk, result=result), result.client_secret
    return stripe_payment_refresh(payment_id=payment.pk), ""


def _saved_card_for(*, buyer, currency: str):
    """The card to settle a buyer's overdue tab with: the wallet's auto top-up card, else their newest."""
    wallet = Wallet.objects.select_related("auto_top_up_method").filter(buyer=buyer, currency=currency).first()
    if wallet is not None and wallet.auto_top_up_method is not None and wallet.auto_top_up_method.detached_at is None:
        return wallet.auto_top_up_method
    return saved_payment_methods_for_email(email=buyer.email).first()


def tabs_settle_overdue(*, now=None) -> dict[str, int]:
    """Settle tabs open longer than STALL_TAB_SETTLE_AFTER_DAYS with the buyer's saved card.

    A card is tried once per tab. A tab with no card, or whose card was declined, stays open
    and (with STALL_TAB_BLOCK_WHEN_OVERDUE) takes no more purchases; its buyer is emailed once.
    A tab that owes nothing (its sales refunded) is closed. Returns counts by outcome.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.STALL_TAB_SETTLE_AFTER_DAYS)
    counts = {"settled": 0, "failed": 0, "notified": 0, "closed": 0}
    for tab in Tab.objects.select_related("buyer", "account", "settlement").filter(status=TabStatus.OPEN, opened_at__lte=cutoff).order_by("pk"):
        if tab.settlement_id is not None and tab.settlement.status in IN_FLIGHT:
            continue
        if _owed(tab.account) <= 0:
            with transaction.atomic():
                closed = Tab.objects.filter(pk=tab.pk, status=TabStatus.OPEN).update(status=TabStatus.SETTLED, settled_at=now)
                if closed:
                    account_limit_set(account=tab.account, debit_limit=0)
            counts["closed"] += closed
            continue
        saved = _saved_card_for(buyer=tab.buyer, currency=tab.currency) if tab.auto_settle_tried_at is None else None
        if saved is not None:
            Tab.objects.filter(pk=tab.pk).update(auto_settle_tried_at=now)
            try:
                payment = tab_settle(buyer=tab.buyer, currency=tab.currency, saved=saved, store=saved.store)
            except StallError as exc:
                logger.info("tab %s: settling with the saved card failed: %s", tab.pk, exc.message)
                counts["failed"] += 1
            else:
                if payment.status == "succeeded":
                    counts["settled"] += 1
                    continue
        if Tab.objects.filter(pk=tab.pk, overdue_notified_at__isnull=True).update(overdue_notified_at=now):
            tab_id = tab.pk
            transaction.on_commit(lambda: tasks.tab_overdue_notice(tab_id))
            counts["notified"] += 1
    return counts
