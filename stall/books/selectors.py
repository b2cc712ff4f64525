"""Reads of the books. Income is what the ledger moved through the store's balance: nothing is
typed in and nothing is stored twice.

Each posted transfer into or out of the store's (real money) balance is one of: a sale (gross), a
refund, a processing fee (the card's, a wallet or tab sale's share, and what refunds gave back of
them), the platform's fee (and what refunds gave back), a move to or from the tax reserve or an
envelope (not income: the money is still the creator's), or anything else ("other", signed as it
moved the balance). Net = gross − refunds − processing fees − platform fees + other.

A transfer is dated by its ``created_at`` in UTC. An order with lines of several kinds shares each
of its transfers among the kinds in proportion to the lines' amounts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q

from stall.core.money import prorate
from stall.ledger.models import Account, AccountKind, Transfer, TransferState
from stall.orders.models import OrderLine
from stall.orders.selectors import FEE_CODES, PLATFORM_FEE_CODES

from .categories import categories_for_store
from .models import Envelope, Expense
from .set_aside import BACK_CODES

SET_ASIDE_CODES = frozenset(BACK_CODES) | frozenset(BACK_CODES.values())
FIGURES = ("gross", "refunds", "processing_fees", "platform_fees", "other", "net")
GRANULARITIES = ("month", "quarter", "year")


@dataclass
class Income:
    gross: int = 0
    refunds: int = 0
    processing_fees: int = 0
    platform_fees: int = 0
    other: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunds - self.processing_fees - self.platform_fees + self.other

    def add(self, code: str, signed: int) -> None:
        """``signed``: what the transfer did to the store's balance (+ in, − out)."""
        if code == "sale":
            self.gross += signed
        elif code == "refund":
            self.refunds -= signed
        elif code in FEE_CODES:
            self.processing_fees -= signed
        elif code in PLATFORM_FEE_CODES:
            self.platform_fees -= signed
        else:
            self.other += signed


def period_of(day: date, granularity: str) -> str:
    if granularity == "year":
        return f"{day.year}"
    if granularity == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def _bounds(start: date | None, end: date | None) -> Q:
    q = Q()
    if start is not None:
        q &= Q(created_at__gte=datetime.combine(start, time.min, tzinfo=UTC))
    if end is not None:
        q &= Q(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))
    return q


def store_balance_transfers(*, store, start: date | None = None, end: date | None = None):
    """(code, reference, signed amount, currency, day) of every posted transfer that moved the
    store's real balance, oldest first, set-asides left out."""
    accounts = set(Account.objects.filter(kind=AccountKind.STORE_BALANCE, owner=store.pk).values_list("pk", flat=True))
    if not accounts:
        return []
    rows = (
        Transfer.objects.filter(Q(debit_account_id__in=accounts) | Q(credit_account_id__in=accounts), _bounds(start, end),
                                state=TransferState.POSTED)
        .exclude(code__in=SET_ASIDE_CODES)
        .order_by("created_at", "pk")
        .values_list("code", "reference", "amount", "currency", "created_at", "credit_account_id")
    )
    return [
        (code, ref, amount if credit in accounts else -amount, currency, created.astimezone(UTC).date())
        for code, ref, amount, currency, created, credit in rows.iterator(chunk_size=2000)
    ]


def _kinds_of(references: set[str]) -> dict[str, list[tuple[str, int]]]:
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    refs = sorted(r for r in references if r.startswith("ord_"))
    for i in range(0, len(refs), 500):
        lines = OrderLine.objects.filter(order_id__in=refs[i:i + 500]).values_list(
            "order_id", "product__kind", "unit_amount", "quantity")
        for order_id, kind, unit, quantity in lines:
            kinds[order_id][kind] += unit * quantity
    return {k: sorted(v.items()) for k, v in kinds.items()}


def _share(amount: int, weights: list[tuple[str, int]]) -> list[tuple[str, int]]:
    whole = sum(w for _, w in weights)
    if len(weights) == 1 or not whole:
        return [(weights[0][0], amount)]
    parts, done, running = [], 0, 0
    for kind, weight in weights:
        running += weight
        upto = prorate(amount, running, whole) if amount >= 0 else -prorate(-amount, running, whole)
        parts.append((kind, upto - done))
        done = upto
    return parts


def income_by(*, store, granularity: str = "month", start: date | None = None, end: date | None = None,
              by_kind: bool = True) -> dict[tuple[str, str, str], Income]:
    """(period, kind, currency) → Income; kind is "" with ``by_kind`` False, "other" for money
    that belongs to no order."""
    transfers = store_balance_transfers(store=store, start=start, end=end)
    kinds = _kinds_of({t[1] for t in transfers}) if by_kind else {}
    out: dict[tuple[str, str, str], Income] = defaultdict(Income)
    for code, ref, signed, currency, day in transfers:
        period = period_of(day, granularity)
        if not by_kind:
            out[(period, "", currency)].add(code, signed)
            continue
        for kind, part in _share(signed, kinds.get(ref) or [("other", 1)]):
            if part:
                out[(period, kind, currency)].add(code, part)
    return dict(sorted(out.items()))


def expenses_by(*, store, granularity: str = "month", start: date | None = None, end: date | None = None
                ) -> dict[tuple[str, str, str], int]:
    """(period, category, currency) → total of the expenses."""
    qs = Expense.objects.filter(store=store)
    if start is not None:
        qs = qs.filter(date__gte=start)
    if end is not None:
        qs = qs.filter(date__lte=end)
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    for day, category, currency, amount in qs.values_list("date", "category", "currency", "amount").iterator():
        out[(period_of(day, granularity), category, currency)] += amount
    return dict(sorted(out.items()))


@dataclass
class PnlRow:
    period: str
    currency: str
    income: Income = field(default_factory=Income)
    expenses: dict[str, int] = field(default_factory=dict)  # category code → total

    @property
    def fees(self) -> int:
        return self.income.processing_fees + self.income.platform_fees

    @property
    def expenses_total(self) -> int:
        return sum(self.expenses.values())

    @property
    def profit(self) -> int:
        return self.income.net - self.expenses_total


def profit_and_loss(*, store, granularity: str = "month", start: date | None = None, end: date | None = None
                    ) -> list[PnlRow]:
    """Income net of fees less expenses, per period and currency, oldest first."""
    if granularity not in GRANULARITIES:
        granularity = "month"
    rows: dict[tuple[str, str], PnlRow] = {}
    for (period, _, currency), income in income_by(store=store, granularity=granularity, start=start, end=end,
                                                    by_kind=False).items():
        rows[(period, currency)] = PnlRow(period, currency, income)
    for (period, category, currency), amount in expenses_by(store=store, granularity=granularity, start=start,
                                                             end=end).items():
        row = rows.setdefault((period, currency), PnlRow(period, currency))
        row.expenses[category] = row.expenses.get(category, 0) + amount
    return [rows[k] for k in sorted(rows)]


def pnl_csv_rows(*, store, granularity: str = "month", start: date | None = None, end: date | None = None) -> list[list]:
    """The P&L as CSV rows (amounts in minor units, as the API gives them), a header first."""
    names = categories_for_store(store=store)
    header = ["period", "currency", "gross", "refunds", "processing_fees", "platform_fees", "other_income",
              "net_income", "expenses", "profit", "expenses_by_category"]
    out = [header]
    for row in profit_and_loss(store=store, granularity=granularity, start=start, end=end):
        i = row.income
        detail = "; ".join(f"{names.get(c, c)}: {a}" for c, a in sorted(row.expenses.items()))
        out.append([row.period, row.currency, i.gross, i.refunds, i.processing_fees, i.platform_fees, i.other, i.net,
                    row.expenses_total, row.profit, detail])
    return out


@dataclass(frozen=True)
class SetAsideBalance:
    label: str  # "Tax reserve" or the envelope's name
    currency: str
    balance: int


def set_aside_balances(*, store) -> list[SetAsideBalance]:
    """What is set aside now, in the tax reserve and each envelope (real money)."""
    names = {f"{store.pk}:e{e.pk}": e.name for e in Envelope.objects.filter(store=store)}
    accounts = Account.objects.filter(
        Q(kind=AccountKind.TAX_RESERVE, owner=store.pk) | Q(kind=AccountKind.ENVELOPE, owner__in=list(names))
    ).order_by("kind", "pk")
    out = [SetAsideBalance("Tax reserve" if a.kind == AccountKind.TAX_RESERVE else names[a.owner], a.currency, a.balance)
           for a in accounts]
    return sorted(out, key=lambda s: (s.label != "Tax reserve", s.label, s.currency))
