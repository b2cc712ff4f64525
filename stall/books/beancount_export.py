"""The store's books as a beancount journal (https://beancount.github.io): every posted transfer
of the store's balance, tax reserve and envelopes, with income by product kind, fees, and each
expense category, then balance assertions equal to the ledger's balances, so ``bean-check``
proves the journal adds up to what Stall holds.

Accounts:
  Assets:Stall:Balance, Assets:Stall:TaxReserve, Assets:Stall:Envelope:<Name>
  Income:Sales:<Kind>, Income:Refunds:<Kind> (refunds, a debit), Income:Other
  Expenses:Fees:Processing, Expenses:Fees:Platform, Expenses:<Category>
  Equity:Owner (expenses the creator paid outside Stall)
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from stall.core.money import currency_exponent
from stall.ledger.models import Account, AccountKind, Transfer, TransferState
from stall.orders.selectors import FEE_CODES, PLATFORM_FEE_CODES

from .categories import categories_for_store
from .models import Envelope, Expense
from .selectors import _kinds_of, _share

BALANCE = "Assets:Stall:Balance"
TAX_RESERVE = "Assets:Stall:TaxReserve"


def component(text: str) -> str:
    """A beancount account component: a capital letter first, then letters, digits or dashes."""
    words = re.findall(r"[A-Za-z0-9]+", text or "")
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Unnamed"
    return name if name[0].isupper() else f"X{name}"


def amount_text(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    value = Decimal(minor).scaleb(-exponent)
    return f"{value:.{exponent}f} {currency}"


def _quote(text: str) -> str:
    return '"' + (text or "").replace("\\", "/").replace('"', "'").replace("\n", " ") + '"'


def _counter(code: str, kind: str, signed_for_store: int) -> str:
    if code == "sale":
        return f"Income:Sales:{component(kind)}"
    if code == "refund":
        return f"Income:Refunds:{component(kind)}"
    if code in FEE_CODES:
        return "Expenses:Fees:Processing"
    if code in PLATFORM_FEE_CODES:
        return "Expenses:Fees:Platform"
    return "Income:Other"


def beancount_journal(*, store, today: date | None = None) -> str:
    """The whole history of the store's real money as a beancount journal."""
    today = today or timezone.now().date()
    envelopes: dict[str, str] = {}
    for e in Envelope.objects.filter(store=store).order_by("pk"):
        name = f"Assets:Stall:Envelope:{component(e.name)}"
        envelopes[f"{store.pk}:e{e.pk}"] = name if name not in envelopes.values() else f"{name}-{e.pk}"
    accounts: dict[str, tuple[str, Account]] = {}
    for account in Account.objects.filter(owner__in=[store.pk, *envelopes]):
        if account.kind == AccountKind.STORE_BALANCE and account.owner == store.pk:
            accounts[account.pk] = (BALANCE, account)
        elif account.kind == AccountKind.TAX_RESERVE and account.owner == store.pk:
            accounts[account.pk] = (TAX_RESERVE, account)
        elif account.kind == AccountKind.ENVELOPE:
            accounts[account.pk] = (envelopes[account.owner], account)
    ids = list(accounts)
    transfers = list(
        Transfer.objects.filter(Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids), state=TransferState.POSTED)
        .order_by("created_at", "id")
    ) if ids else []
    kinds = _kinds_of({t.reference for t in transfers})
    entries: list[tuple[date, str, list[str]]] = []
    used: dict[str, set[str]] = defaultdict(set)
    for t in transfers:
        day = t.created_at.astimezone(UTC).date()
        postings: list[tuple[str, int]] = []
        for account_id, sign in ((t.credit_account_id, 1), (t.debit_account_id, -1)):
            if account_id in accounts:
                postings.append((accounts[account_id][0], sign * t.amount))
        if len(postings) == 1:
            own_signed = postings[0][1]
            for kind, part in _share(-own_signed, kinds.get(t.reference) or [("other", 1)]):
                if part:
                    postings.append((_counter(t.code, kind, own_signed), part))
        for name, _ in postings:
            used[name].add(t.currency)
        lines = [f"  {name}  {amount_text(amount, t.currency)}" for name, amount in postings]
        entries.append((day, f'* {_quote(t.code.replace("_", " "))} {_quote(t.reference or t.idempotency_key)}', lines))
    names = categories_for_store(store=store)
    for e in Expense.objects.filter(store=store).order_by("date", "pk"):
        account = f"Expenses:{component(names.get(e.category, e.category))}"
        used[account].add(e.currency)
        used["Equity:Owner"].add(e.currency)
        entries.append((e.date, f"* {_quote(e.vendor or 'Expense')} {_quote(e.note or e.category)}", [
            f"  {account}  {amount_text(e.amount, e.currency)}", f"  Equity:Owner  {amount_text(-e.amount, e.currency)}",
        ]))
    entries.sort(key=lambda entry: entry[0])
    opened = min([entry[0] for entry in entries], default=today)
    out = [f"; {store.name}: books exported from Stall on {today.isoformat()}", f"option \"title\" {_quote(store.name)}",
           f'option "operating_currency" "{store.currency}"', ""]
    for _, account in accounts.values():  # every account the ledger holds, even with no transfers yet
        used[accounts[account.pk][0]].add(account.currency)
    for name in sorted(used):
        out.append(f"{opened.isoformat()} open {name} {','.join(sorted(used[name]))}")
    out.append("")
    for day, header, lines in entries:
        out.append(f"{day.isoformat()} {header}")
        out += lines
        out.append("")
    check_day = max(today, max((entry[0] for entry in entries), default=today)) + timedelta(days=1)
    for name, account in sorted(accounts.values(), key=lambda v: (v[0], v[1].currency)):
        out.append(f"{check_day.isoformat()} balance {name}  {amount_text(account.balance, account.currency)}")
    return "\n".join(out) + "\n"
