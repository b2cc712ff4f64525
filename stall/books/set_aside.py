"""Setting money aside as it is earned: on each paid order, a share of the sale's net moves from
the store's balance into its tax reserve and its envelopes, by ledger transfers; a refund moves
its share back.

The lean spend (``orders.spend``) reads the store's split in its first SELECT (``SPLIT_SQL``) and
posts these transfers in the same INSERT and UPDATE as the sale's, so setting money aside costs a
one-click unlock no statement, and a store with nothing to set aside costs it nothing at all. The
card path reads the split with one query.

The sale's net is what it left in the store's balance: the amount less the processing fee and the
platform's fee known when it was paid (a tab sale's share of its settlement fee comes later and is
not counted). Each share is ``prorate(net, share, 100%)``, rounded half up.
"""

from __future__ import annotations

from stall.core.money import prorate
from stall.ledger.models import AccountKind, Transfer, ledger_owner
from stall.ledger.services import Posting, account_id_for, transfer_create

from .models import FULL, BooksSettings

# One column, the store's id as its one parameter: '' when the store sets nothing aside.
SPLIT_SQL = "COALESCE((SELECT bs.split FROM books_settings bs WHERE bs.store_id = %s), '')"
SET_ASIDE_CODES = {"tax": "tax_reserve", "envelope": "envelope"}
BACK_CODES = {"tax_reserve": "tax_reserve_back", "envelope": "envelope_back"}


def split_parse(split: str) -> list[tuple[str, int]]:
    """``"tax:2500;e7:1000"`` → ``[("tax", 2500), ("e7", 1000)]``."""
    parts = []
    for item in filter(None, (split or "").split(";")):
        label, _, share = item.partition(":")
        parts.append((label, int(share)))
    return parts


def set_aside_account_id(*, store_id: str, label: str, currency: str, livemode: bool = True) -> str:
    """The ledger account of the tax reserve (``label`` "tax") or of envelope ``e<id>``."""
    owner = ledger_owner(store_id, livemode=livemode)
    if label == "tax":
        return account_id_for(kind=AccountKind.TAX_RESERVE, owner=owner, currency=currency)
    return account_id_for(kind=AccountKind.ENVELOPE, owner=f"{owner}:{label}", currency=currency)


def set_aside_observe(*, order, paid, context, read) -> list:
    """The order-paid observer itself has no rows to write: the money moves in ``postings``."""
    return []


def set_aside_postings(*, order, read: str | None) -> list[Posting]:
    """The transfers that set ``order``'s shares aside. ``read`` is the split the lean spend read,
    or None on the card path (then read here, one query)."""
    if read is None:
        read = BooksSettings.objects.filter(store_id=order.store_id).values_list("split", flat=True).first() or ""
    if not read:
        return []
    net = order.amount_total - order.fee - order.platform_fee
    if net <= 0:
        return []
    balance = account_id_for(
        kind=AccountKind.STORE_BALANCE, owner=ledger_owner(order.store_id, livemode=order.livemode),
        currency=order.currency,
    )
    postings = []
    for label, share in split_parse(read):
        amount = prorate(net, share, FULL)
        if amount <= 0:
            continue
        account = set_aside_account_id(store_id=order.store_id, label=label, currency=order.currency, livemode=order.livemode)
        code = SET_ASIDE_CODES["tax" if label == "tax" else "envelope"]
        postings.append(Posting(f"{order.pk}:set_aside:{label}", balance, account, amount, order.currency, code, order.pk))
    return postings


def set_aside_reverse(*, order, refund, refunded_before: int) -> None:
    """Take a refund's share of what ``order`` set aside back into the store's balance: each
    envelope gives back ``prorate(set aside, refunded, total)`` on running totals, so partial
    refunds add up to exactly what was set aside once the order is refunded in full."""
    after = refunded_before + refund.amount
    transfers = Transfer.objects.filter(reference=order.pk, code__in=list(BACK_CODES)).select_related(
        "debit_account", "credit_account"
    )
    for moved in transfers:
        back = prorate(moved.amount, after, order.amount_total) - prorate(moved.amount, refunded_before, order.amount_total)
        if back > 0:
            transfer_create(
                idempotency_key=f"{refund.pk}:set_aside_back:{moved.pk}", debit_account=moved.credit_account,
                credit_account=moved.debit_account, amount=back, code=BACK_CODES[moved.code], reference=order.pk,
            )
