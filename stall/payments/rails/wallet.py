"""The wallet rail: a buyer's prepaid balance, spent inside the ledger.

The wallet sits behind the same interface as the card rails, so checkout, tips and unlocks pick a
rail instead of special-casing. It is in-ledger: ``ledger_charge`` moves the money inside the
caller's own transaction, so a refused spend leaves nothing behind.

Fees. A card charged $10.00 to top up a wallet costs about 59¢. That fee goes into the wallet's
fee pool (a debit-normal account: fees still owed), and every spend from the wallet pays its
share back: ``fee = pool × spend ÷ wallet balance``, rounded half up. The share is computed from
what is left, so the spend that empties the wallet pays exactly what remains in the pool and
the fees of a wallet always add up to what the card network took.

What follows a spend in the apps above (the wallets app's automatic top-up) is registered here
with ``wallet_spent_register``, in that app's ``AppConfig.ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone as dt_timezone
from typing import ClassVar

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from stall.accounts.services import buyer_for_email
from stall.core.languages import language_to_record
from stall.core.money import currency_normalize, money_setting, prorate
from stall.core.sql import in_list
from stall.ledger.errors import InsufficientFunds
from stall.ledger.models import Account, AccountKind, ledger_owner
from stall.ledger.services import (
    Posting,
    account_debit_guarded,
    account_id_for,
    account_open,
    accounts_lock,
    transfer_create,
)
from stall.payments.errors import WalletEmpty
from stall.payments.models import Wallet

from .base import RailResult

# handler(wallet=, balance=, credits_posted=) after a spend, inside the spend's transaction:
# ``balance`` is what the wallet holds after it, ``credits_posted`` all that ever came in. A spend
# read as ``Funds`` (``funds_spent_notify``) tells them only of a wallet with automatic top-up set
# up (a threshold and a card, not paused by a decline): that top-up is what follows a spend.
_SPENT_HANDLERS: list[Callable[..., None]] = []


def wallet_spent_register(handler: Callable[..., None]) -> None:
    if handler not in _SPENT_HANDLERS:
        _SPENT_HANDLERS.append(handler)


def wallet_spent_notify(*, wallet: Wallet, balance: int, credits_posted: int) -> None:
    for handler in _SPENT_HANDLERS:
        handler(wallet=wallet, balance=balance, credits_posted=credits_posted)


def funds_spent_notify(*, funds: Funds, balance: int, credits_posted: int) -> None:
    """``wallet_spent_notify`` for a spend read as ``Funds``. The wallet row is built only for a
    wallet with automatic top-up set up: for any other nothing follows a spend, and building one
    per spend was a tenth of a renewal group's Python."""
    if funds.auto_top_up_below is None or funds.auto_top_up_method_id is None or funds.auto_top_up_failed:
        return
    wallet_spent_notify(wallet=funds.wallet(), balance=balance, credits_posted=credits_posted)


def wallet_get(*, buyer, currency: str) -> Wallet | None:
    return Wallet.objects.select_related("account").filter(buyer=buyer, currency=currency).first()


def wallet_open(*, buyer, currency: str) -> Wallet:
    """The buyer's wallet in ``currency``, opened (empty) if there is none."""
    currency = currency_normalize(currency)
    account = account_open(kind=AccountKind.BUYER_WALLET, owner=buyer.pk, currency=currency)
    try:
        with transaction.atomic():
            return Wallet.objects.create(
                buyer=buyer, currency=currency, account=account,
                confirm_above=money_setting("STALL_WALLET_CONFIRM_ABOVE", currency),
                language=language_to_record(),  # the page's: the emails about the wallet speak it
            )
    except IntegrityError:  # opened by a concurrent request
        return Wallet.objects.select_related("account").get(buyer=buyer, currency=currency)


def wallet_for(*, buyer, currency: str) -> Wallet:
    """The buyer's wallet in ``currency``, opened (empty) on first use."""
    return wallet_get(buyer=buyer, currency=currency) or wallet_open(buyer=buyer, currency=currency)


def fee_pool_for(wallet: Wallet) -> Account:
    return account_open(kind=AccountKind.FEE_POOL, owner=wallet.pk, currency=wallet.currency)


# A buyer's accounts, locked first. A spend locks the buyer's wallet and its fee pool (or the
# open tab) with its guarded debit, and the accounts it shares with every other spend (the rail's
# clearing, the store's balance) only at its end. A transaction that moves the buyer's money back
# must lock in the same order, the buyer's first: a refund into the wallet that locked the store's
# balance first and then waited for the wallet, while a spend of the same buyer held the wallet and
# waited for the balance, was killed by PostgreSQL as a deadlock (stall/wallets/tests/test_lock_order.py).
_BUYER_ACCOUNTS_LOCK_SQL = (
    "SELECT id FROM ledger_account WHERE id IN ("
    "SELECT w.account_id FROM wallets_wallet w WHERE w.buyer_id = %s AND w.currency = %s "
    "UNION ALL SELECT p.id FROM ledger_account p JOIN wallets_wallet w "
    "ON p.kind = 'fee_pool' AND p.owner = w.id AND p.currency = w.currency WHERE w.buyer_id = %s AND w.currency = %s "
    "UNION ALL SELECT t.account_id FROM wallets_tab t WHERE t.buyer_id = %s AND t.currency = %s AND t.status = 'open'"
    ") ORDER BY id FOR UPDATE"
)


def buyer_accounts_lock(*, buyer_id: str, currency: str) -> None:
    """Lock the buyer's wallet, its fee pool and their open tab in ``currency`` (those that exist),
    in key order, as a spend's debit does; call inside a transaction before it locks any shared
    account. On SQLite the write transaction holds the whole database already."""
    if not connection.features.has_select_for_update:
        return
    with connection.cursor() as cursor:
        cursor.execute(_BUYER_ACCOUNTS_LOCK_SQL, [buyer_id, currency] * 3)


# --- Real money and test money -----------------------------------------------------------------
#
# A wallet topped up with a test card where the Stall takes real money holds test money
# (``Wallet.livemode`` False): its spends are test orders, and stores that take no test cards
# refuse it (``rails.test_money_check``). A wallet holds one kind of money at a time, so real money
# is never spent as test money, nor test money as real.


def _sandbox_account(kind: str, currency: str) -> Account:
    return account_open(kind=kind, owner="sandbox", currency=currency)


def wallet_mode_for_credit(*, wallet: Wallet, livemode: bool, reference: str) -> bool:
    """Make ``wallet`` ready to take money of this kind (``livemode``), inside the caller's
    transaction. Returns whether to credit the wallet with it.

    Real money for a wallet of test money clears the test money first (back to the sandbox, with
    what its fee pool still holds) and the wallet holds real money from then on. Test money for an
    empty wallet makes it a wallet of test money. Test money for a wallet holding real money is not
    taken (False): the caller gives it back to the sandbox. Top-ups are refused before that, while
    the card can still be spared (``wallets.services.top_up_mode_check``); a refund of a test order
    to a wallet that has real money since then ends here.
    """
    locked = Wallet.objects.select_for_update().values_list("livemode", flat=True)
    current = locked.get(pk=wallet.pk)
    if current == livemode:
        wallet.livemode = livemode
        return True
    pool = fee_pool_for(wallet)
    locked = accounts_lock(wallet.account_id, pool.pk)
    account, pool = locked[wallet.account_id], locked[pool.pk]
    if not livemode and (account.available > 0 or account.debits_pending):
        return False
    if livemode:
        # Back to the sandbox, the only rail whose money is test money.
        currency = wallet.currency
        if account.available > 0:
            transfer_create(
                idempotency_key=f"{reference}:test_money_cleared", debit_account=account,
                credit_account=_sandbox_account(AccountKind.PROCESSOR_CLEARING, currency),
                amount=account.available, code="test_money_cleared", reference=reference,
            )
        owed = pool.debits_posted - pool.credits_posted
        if owed > 0:
            transfer_create(
                idempotency_key=f"{reference}:test_fee_cleared",
                debit_account=_sandbox_account(AccountKind.PROCESSOR_FEES, currency),
                credit_account=pool, amount=owed, code="test_fee_cleared", reference=reference,
            )
    Wallet.objects.filter(pk=wallet.pk).update(livemode=livemode)
    wallet.livemode = livemode
    return True


def fee_share_return(*, wallet: Wallet, refund, order, back: int | None = None) -> int:
    """Move a refund's part of the order's card fee share from the store's balance to the fee pool
    of the wallet the refund went into, and return it. The money is the buyer's to spend again, so
    the card fee it cost goes with it and is paid by the sale it pays for next: the store is not
    left paying a fee for a sale it gave back.

    By default the part is taken on running totals of the order (a wallet sale's share was taken
    on its whole amount), so the parts add up to exactly the order's fee once it is refunded in
    full. A caller whose share was set otherwise passes ``back`` itself."""
    if back is None:
        back = prorate(order.fee, order.amount_refunded + refund.amount, order.amount_total) - prorate(
            order.fee, order.amount_refunded, order.amount_total
        )
    if back:
        store_owner = ledger_owner(order.store_id, livemode=order.livemode)
        store_balance = account_open(kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=order.currency)
        transfer_create(
            idempotency_key=f"{refund.pk}:fee_back", debit_account=fee_pool_for(wallet),
            credit_account=store_balance, amount=back, code="fee_refund", reference=order.pk,
        )
    return back


def refund_into_wallet(*, refund, order, clearing: Account) -> Wallet | None:
    """Give a refund's money from ``clearing`` — the clearing account of the rail that took the
    payment, where ``order_refunded`` moved it from the store's balance — into the buyer's wallet
    (opened if need be), as a top-up by that rail would: the wallet rail's refunds, and a refund
    made ``to_wallet`` by a rail that cannot pay back. Returns the wallet credited. A test order's
    money goes back to the sandbox instead if the wallet holds real money by now (None)."""
    payment = refund.payment
    buyer = payment.buyer or buyer_for_email(email=order.email)
    wallet = wallet_for(buyer=buyer, currency=payment.currency)
    if not wallet_mode_for_credit(wallet=wallet, livemode=order.livemode, reference=refund.pk):
        transfer_create(
            idempotency_key=f"{refund.pk}:wallet_refund", debit_account=clearing,
            credit_account=_sandbox_account(AccountKind.PROCESSOR_CLEARING, payment.currency),
            amount=refund.amount, code="test_refund_to_sandbox", reference=order.pk,
        )
        return None
    transfer_create(
        idempotency_key=f"{refund.pk}:wallet_refund", debit_account=clearing, credit_account=wallet.account,
        amount=refund.amount, code="wallet_refund", reference=order.pk,
    )
    return wallet


class InLedgerRail:
    """What the wallet and the tab share: no card network, no minimum, no notifications."""

    name: ClassVar[str]
    in_ledger: ClassVar[bool] = True

    def minimum_charge(self, currency: str) -> int:
        return 1

    # The card-only calls are a caller's mistake for an in-ledger rail, not unfinished work.
    def payment_start(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail pays inside the ledger: use ledger_charge")

    def payment_confirm(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail never asks the buyer to confirm at a bank")

    def payment_retrieve(self, **kwargs) -> RailResult:
        # The payment row and its debit are written in one transaction: a crash leaves both or
        # neither, never a payment processing that someone would have to ask about.
        raise RuntimeError(
            f"the {self.name} rail never leaves a payment processing: nothing to retrieve"
        )

    def refund(self, **kwargs) -> RailResult:
        raise RuntimeError(f"the {self.name} rail refunds inside the ledger: use ledger_refund")

    def notification_handle(self, *, headers, body):
        return []

    def clearing(self, currency: str) -> Account:
        return account_open(kind=AccountKind.PROCESSOR_CLEARING, owner=self.name, currency=currency)


class WalletRail(InLedgerRail):
    name = "wallet"

    def payment_methods(self) -> list[tuple[str, str]]:
        return [("wallet", "Wallet")]

    def ledger_charge(self, *, payment) -> RailResult:
        wallet = wallet_get(buyer=payment.buyer, currency=payment.currency)
        if wallet is None:
            raise WalletEmpty()
        pool = fee_pool_for(wallet)
        locked = accounts_lock(wallet.account_id, pool.pk)
        account, pool = locked[wallet.account_id], locked[pool.pk]
        balance = account.credits_posted - account.debits_posted - account.debits_pending
        if payment.amount > balance:
            raise WalletEmpty()
        fee = prorate(pool.debits_posted - pool.credits_posted, payment.amount, balance)
        try:
            transfer_create(
                idempotency_key=f"{payment.pk}:wallet_spend", debit_account=account,
                credit_account=self.clearing(payment.currency), amount=payment.amount, code="wallet_spend",
                reference=payment.pk,
            )
        except InsufficientFunds:
            raise WalletEmpty() from None
        wallet_spent_notify(wallet=wallet, balance=balance - payment.amount, credits_posted=account.credits_posted)
        return RailResult("succeeded", reference=wallet.pk, fee=fee)

    def fee_account(self, *, payment) -> Account:
        return fee_pool_for(wallet_get(buyer=payment.buyer, currency=payment.currency))

    def ledger_refund(self, *, refund, order) -> int:
        """Give the money back to the wallet, and the sale's share of the top-up fee back to its
        pool. Returns that share (the order's ``fee_refunded`` grows by it).

        A test order's money goes back as test money (``wallet_mode_for_credit``); if the wallet
        holds real money by now, it goes back to the sandbox instead, with no fee share (0)."""
        wallet = refund_into_wallet(refund=refund, order=order, clearing=self.clearing(refund.payment.currency))
        return 0 if wallet is None else fee_share_return(wallet=wallet, refund=refund, order=order)


# --- The hot path -----------------------------------------------------------------------------------
#
# A one-click spend reads everything it needs about the buyer's wallet and tab in the one SELECT
# that starts it (``FUNDS_SELECT``, which the caller joins to what it reads itself), then debits
# in one guarded statement (``ledger_debit``). See stall.orders.spend.


@dataclass(frozen=True)
class Funds:
    """A buyer's wallet and open tab in one currency, as the spend's first SELECT found them."""

    buyer_id: str
    currency: str
    wallet_id: str | None = None
    wallet_account_id: str | None = None
    confirm_above: int | None = None
    auto_top_up_below: int | None = None
    auto_top_up_method_id: str | None = None
    auto_top_up_failed: bool = False
    fee_pool_id: str | None = None
    tab_id: str | None = None
    tab_account_id: str | None = None
    tab_opened_at: object = None
    wallet_livemode: bool = True  # False: the wallet holds test money

    def wallet(self) -> Wallet:
        """The wallet row as far as the spend needs it (for what follows a spend), without a query."""
        return Wallet(
            id=self.wallet_id, buyer_id=self.buyer_id, currency=self.currency, account_id=self.wallet_account_id,
            confirm_above=self.confirm_above, auto_top_up_below=self.auto_top_up_below,
            auto_top_up_method_id=self.auto_top_up_method_id,
            auto_top_up_failed_at=timezone.now() if self.auto_top_up_failed else None,
            livemode=self.wallet_livemode,
        )


# Columns and joins of the spend's first SELECT: the caller puts FUNDS_COLUMNS first in its
# select list and ``funds_joins()`` after what it reads FROM, with ``funds_params``'s values.
FUNDS_COLUMNS = (
    "w.id, w.account_id, w.confirm_above, w.auto_top_up_below, w.auto_top_up_method_id, "
    "w.auto_top_up_failed_at IS NOT NULL, "
    "(SELECT p.id FROM ledger_account p WHERE p.kind = 'fee_pool' AND p.owner = w.id AND p.currency = w.currency), "
    "t.id, t.account_id, t.opened_at, w.livemode"
)
FUNDS_JOINS = (
    "LEFT JOIN wallets_wallet w ON w.buyer_id = {buyer} AND w.currency = %s "
    "LEFT JOIN wallets_tab t ON t.buyer_id = {buyer} AND t.currency = %s AND t.status = 'open'"
)
FUNDS_WIDTH = 11


def funds_joins(*, buyer_column: str | None = None) -> str:
    """FUNDS_JOINS for a buyer whose id is a parameter, or a column of the tables the SELECT reads
    (``b.id``) when the same statement finds the buyer."""
    return FUNDS_JOINS.format(buyer=buyer_column or "%s")


def funds_params(*, buyer_id: str | None, currency: str) -> list:
    """The values of ``funds_joins``: without the buyer's id when a column names the buyer."""
    return [currency, currency] if buyer_id is None else [buyer_id, currency, buyer_id, currency]


def funds_from_row(row, *, buyer_id: str, currency: str) -> Funds:
    opened_at = row[9]
    if isinstance(opened_at, str):  # SQLite gives back the text Django stored, in UTC
        opened_at = parse_datetime(opened_at)
    if opened_at is not None and timezone.is_naive(opened_at):
        opened_at = timezone.make_aware(opened_at, dt_timezone.utc)
    return Funds(
        buyer_id=buyer_id, currency=currency, wallet_id=row[0], wallet_account_id=row[1], confirm_above=row[2],
        auto_top_up_below=row[3], auto_top_up_method_id=row[4], auto_top_up_failed=bool(row[5]),
        fee_pool_id=row[6], tab_id=row[7], tab_account_id=row[8], tab_opened_at=opened_at,
        wallet_livemode=row[10] is None or bool(row[10]),
    )


@dataclass(frozen=True)
class Debit:
    """What an in-ledger rail did to the buyer's money: the debit is made (and its row locked), and
    these are the transfers and fee for the caller to post with the sale in ``transfers_post``."""

    reference: str  # the wallet's or the tab's id: the payment's rail_reference
    fee: int  # the sale's share of the card fee (wallet); 0 for the tab until it is settled
    fee_account_id: str | None
    clearing_id: str
    postings: list[Posting]
    debited: dict[str, int]


def wallet_debit(*, funds: Funds, amount: int, payment_id: str) -> Debit:
    """Take ``amount`` from the wallet in one guarded statement, and work out the sale's fee share
    from the wallet's and its fee pool's totals read by that same statement. Call inside a
    transaction. Raises WalletEmpty (nothing changed) when the wallet holds less."""
    if funds.wallet_id is None:
        raise WalletEmpty()
    pool_id = funds.fee_pool_id or account_id_for(kind=AccountKind.FEE_POOL, owner=funds.wallet_id, currency=funds.currency)
    rows = account_debit_guarded(account_id=funds.wallet_account_id, amount=amount, lock_ids=(pool_id,))
    if rows is None:
        raise WalletEmpty()
    wallet, pool = rows[funds.wallet_account_id], rows[pool_id]
    balance_before = wallet.credits_posted - wallet.debits_posted - wallet.debits_pending + amount
    fee = prorate(pool.debits_posted - pool.credits_posted, amount, balance_before)
    clearing_id = account_id_for(kind=AccountKind.PROCESSOR_CLEARING, owner="wallet", currency=funds.currency)
    posting = Posting(
        idempotency_key=f"{payment_id}:wallet_spend", debit_id=funds.wallet_account_id, credit_id=clearing_id,
        amount=amount, currency=funds.currency, code="wallet_spend", reference=payment_id,
    )
    funds_spent_notify(funds=funds, balance=balance_before - amount, credits_posted=wallet.credits_posted)
    return Debit(
        reference=funds.wallet_id, fee=fee, fee_account_id=pool_id, clearing_id=clearing_id, postings=[posting],
        debited={funds.wallet_account_id: amount},
    )


# --- Held money collected: the fee shares of many pending wallet debits at once -------------------


@dataclass(frozen=True)
class HeldShare:
    """A collected hold's share of its wallet's top-up fee, owed to ``pool_id``."""

    fee: int
    pool_id: str


def held_fee_shares(*, holds: list[tuple[str, int]]) -> list[HeldShare | None]:
    """The fee shares of held wallet debits being collected: ``holds`` are (wallet account id,
    amount) pairs, in the order they are collected; the answer is in the same order (None: that
    wallet has no fee pool, nothing is owed).

    The same rule as a spend (``pool × spend ÷ wallet balance``, half up, on what is left): the
    balance is the wallet's posted balance, which still holds the money of its holds, less what
    this batch collected before it; so the hold that empties the wallet pays what is left in the
    pool. One SELECT for the whole batch; on PostgreSQL it locks the wallets and their pools (in
    id order: a spend locks a wallet, then its pool), on SQLite the caller's IMMEDIATE transaction
    already admits no other writer. Call inside the transaction that collects them, before the
    wallets' totals move."""
    if not holds:
        return []
    which, params = in_list("a.id", sorted({account_id for account_id, _ in holds}))
    lock = " FOR UPDATE OF a, p" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        # CROSS JOIN: SQLite then joins in the order written, from the wallets asked for. Left to
        # choose, it started from every fee pool of the Stall (by kind) once there were many: a
        # tenth of a second per chunk at 60,000 wallets, growing with them.
        cursor.execute(
            "SELECT a.id, a.credits_posted - a.debits_posted, p.id, p.debits_posted - p.credits_posted "
            f"FROM ledger_account a CROSS JOIN {Wallet._meta.db_table} w CROSS JOIN ledger_account p "
            f"WHERE {which} AND w.account_id = a.id AND p.kind = %s AND p.owner = w.id AND p.currency = w.currency "
            f"ORDER BY a.id{lock}",
            [*params, AccountKind.FEE_POOL],
        )
        state = {row[0]: [row[1], row[2], row[3]] for row in cursor.fetchall()}
    shares: list[HeldShare | None] = []
    for account_id, amount in holds:
        wallet = state.get(account_id)
        if wallet is None:
            shares.append(None)
            continue
        balance, pool_id, owed = wallet
        owed = max(owed, 0)
        fee = owed if balance <= amount else prorate(owed, amount, balance)
        wallet[0], wallet[2] = balance - amount, owed - fee
        shares.append(HeldShare(fee, pool_id))
    return shares
