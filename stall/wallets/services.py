"""Opening wallets and tabs, and what a succeeded top-up or tab settlement does to the ledger."""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from stall.core.money import currency_exponent, currency_normalize
from stall.ledger.models import AccountKind
from stall.ledger.services import account_limit_set, account_open, transfer_create

from .models import Tab, TabStatus, Wallet
from .rails import fee_pool_for, share


def major_to_minor(major: str, currency: str) -> int:
    """A setting written in major units ("5", "0.50") as minor units of ``currency``."""
    return int(Decimal(major).scaleb(currency_exponent(currency)))


def wallet_open(*, buyer, currency: str) -> Wallet:
    currency = currency_normalize(currency)
    account = account_open(kind=AccountKind.BUYER_WALLET, owner=buyer.pk, currency=currency)
    try:
        with transaction.atomic():
            return Wallet.objects.create(
                buyer=buyer, currency=currency, account=account,
                confirm_above=major_to_minor(settings.STALL_WALLET_CONFIRM_ABOVE, currency),
            )
    except IntegrityError:  # opened by a concurrent request
        return Wallet.objects.select_related("account").get(buyer=buyer, currency=currency)


def tab_limit_for(*, buyer, currency: str) -> int:
    """A buyer's first tab is capped low; once one has been settled, later tabs may run higher."""
    settled_before = Tab.objects.filter(buyer=buyer, currency=currency, status=TabStatus.SETTLED).exists()
    major = settings.STALL_TAB_LIMIT if settled_before else settings.STALL_TAB_FIRST_LIMIT
    return major_to_minor(major, currency)


def tab_open(*, buyer, currency: str) -> Tab:
    """The buyer's open tab in ``currency``, opened if there is none. Call inside a transaction."""
    from .errors import TabOverdue

    tab = Tab.objects.select_related("account").filter(buyer=buyer, currency=currency, status=TabStatus.OPEN).first()
    if tab is not None:
        age = timezone.now() - tab.opened_at
        if settings.STALL_TAB_BLOCK_WHEN_OVERDUE and age.days >= settings.STALL_TAB_SETTLE_AFTER_DAYS:
            raise TabOverdue()
        return tab
    account = account_open(kind=AccountKind.BUYER_TAB, owner=buyer.pk, currency=currency)
    limit = tab_limit_for(buyer=buyer, currency=currency)
    account_limit_set(account=account, debit_limit=limit)
    return Tab.objects.create(buyer=buyer, currency=currency, account=account, limit=limit)


def top_up_succeed(*, payment) -> None:
    """A card top-up went through: the whole amount goes into the wallet, the card fee into its pool."""
    from stall.payments.services import rail_fee_account

    wallet = Wallet.objects.select_related("account").filter(buyer_id=payment.buyer_id, currency=payment.currency).first()
    if wallet is None:
        wallet = wallet_open(buyer=payment.buyer, currency=payment.currency)
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


def wallet_top_up(*, buyer, amount: int, currency: str, payment_method: str, store=None):
    """Charge a card ``amount`` and put all of it in the buyer's wallet (the card fee goes to its pool).

    Amounts outside the operator's limits (STALL_TOP_UP_MIN, STALL_TOP_UP_MAX) are refused. Returns
    the Payment: succeeded, or requires_action when the card asks for 3-D Secure.
    """
    from stall.core.money import amount_validate, format_money
    from stall.payments.models import PaymentPurpose
    from stall.payments.services import payment_create_for_purpose

    from .errors import TopUpInvalid

    currency = currency_normalize(currency)
    amount_validate(amount, allow_zero=False)
    low, high = major_to_minor(settings.STALL_TOP_UP_MIN, currency), major_to_minor(settings.STALL_TOP_UP_MAX, currency)
    if not low <= amount <= high:
        raise TopUpInvalid(
            f"Top up between {format_money(low, currency)} and {format_money(high, currency)}.", param="amount"
        )
    wallet_for_buyer = Wallet.objects.filter(buyer=buyer, currency=currency).first() or wallet_open(buyer=buyer, currency=currency)
    del wallet_for_buyer  # opened now so the wallet page shows it even while the card asks for 3-D Secure
    return payment_create_for_purpose(
        purpose=PaymentPurpose.TOP_UP, buyer=buyer, amount=amount, currency=currency, payment_method=payment_method, store=store
    )


def tab_settle(*, buyer, currency: str, payment_method: str, store=None):
    """Charge a card what the open tab owes, in one charge. Returns the Payment (see wallet_top_up)."""
    from stall.payments.models import PaymentPurpose
    from stall.payments.services import payment_create_for_purpose

    from .errors import TopUpInvalid
    from .selectors import tab_owed

    with transaction.atomic():
        tab = Tab.objects.select_for_update().select_related("account").filter(
            buyer=buyer, currency=currency, status=TabStatus.OPEN
        ).first()
        if tab is None or tab.settlement_id is not None and tab.settlement.status in ("processing", "requires_action"):
            raise TopUpInvalid("There is no open tab to settle.", param="tab", code="no_open_tab")
        owed = tab_owed(tab=tab)
        if owed <= 0:
            raise TopUpInvalid("The tab owes nothing.", param="tab", code="no_open_tab")
    payment = payment_create_for_purpose(
        purpose=PaymentPurpose.TAB_SETTLEMENT, buyer=buyer, amount=owed, currency=currency,
        payment_method=payment_method, store=store, before_start=lambda p: Tab.objects.filter(pk=tab.pk).update(settlement=p),
    )
    return payment


def tab_settlement_succeed(*, payment) -> None:
    """A card charge settled a tab: the tab is paid off and the card fee is shared among its sales."""
    from stall.orders.models import Order
    from stall.payments.models import Payment, PaymentStatus
    from stall.payments.services import rail_fee_account

    tab = Tab.objects.select_for_update().select_related("account").get(settlement=payment)
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=payment.currency)
    transfer_create(
        idempotency_key=f"{payment.pk}:tab_settlement", debit_account=clearing, credit_account=tab.account,
        amount=payment.amount, code="tab_settlement", reference=tab.pk,
    )
    if payment.fee:
        sales = list(
            Order.objects.select_for_update()
            .filter(payment__in=Payment.objects.filter(rail="tab", rail_reference=tab.pk, status=PaymentStatus.SUCCEEDED))
            .order_by("pk")
        )
        total = sum(o.amount_total for o in sales)
        fees = rail_fee_account(payment=payment)
        allocated = 0
        for index, order in enumerate(sales):
            # Shares by running total: they add up to exactly the fee.
            upto = share(payment.fee, sum(o.amount_total for o in sales[: index + 1]), total)
            part = upto - allocated
            allocated = upto
            if part:
                store_balance = account_open(kind=AccountKind.STORE_BALANCE, owner=order.store_id, currency=order.currency)
                transfer_create(
                    idempotency_key=f"{payment.pk}:fee:{order.pk}", debit_account=store_balance, credit_account=fees,
                    amount=part, code="tab_settlement_fee", reference=order.pk,
                )
                Order.objects.filter(pk=order.pk).update(fee=order.fee + part)
    tab.status = TabStatus.SETTLED
    tab.settled_at = timezone.now()
    tab.save(update_fields=["status", "settled_at"])
    account_limit_set(account=tab.account, debit_limit=0)  # nothing more on it until the next tab opens
