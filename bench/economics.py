#!/usr/bin/env python
"""What it costs to process a 25¢, $1 and $5 sale on each way of paying, measured on the real services.

    .venv/bin/python bench/economics.py

Runs Stall's own services on a scratch SQLite database (a temporary STALL_DATA_DIR, migrated
first) with the sandbox card rail, which charges what a card network does: 2.9% + 30¢ a charge,
and refuses charges under 50¢. For each sale size:

  wallet, $10 top-up   a buyer tops up $10 and spends all of it on sales of that size
  wallet, $20 top-up   the same with $20
  tab settled at $5    a buyer with one settled $1 tab behind them (a first tab is capped at $1)
                       buys $5 of sales of that size on their tab, and the tab is settled
  card, one charge     each sale is its own card charge
  lightning            each sale is its own Lightning invoice, and a wallet topped up $10 by one
                       invoice: paid from a second wallet of a real LNbits (FakeWallet funding,
                       started here from .lnbits-venv; `make lnbits` installs it). Without it the
                       Lightning rows say so.

The fee of each sale is read back from the ledger: the transfers that took the processing cost
out of the store's balance for that order (``processor_fee``, ``tab_settlement_fee``). A wallet
or tab sale pays its share of one card fee, so the cost per sale is an average; the per-sale
shares differ by a cent through rounding, and they add up exactly to what the card network took.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (25, 100, 500)


def setup_django(data_dir: Path) -> None:
    os.environ["STALL_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("STALL_LOG_LEVEL", "WARNING")
    os.environ["STALL_PLATFORM_FEE_BPS"] = "0"  # processing cost only
    os.environ["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fees_from_ledger(order_ids: list[str]) -> list[int]:
    """Each order's processing cost, as the ledger moved it out of the store's balance."""
    from django.db.models import Sum

    from stall.ledger.models import Transfer

    rows = dict(
        Transfer.objects.filter(reference__in=order_ids, code__in=("processor_fee", "tab_settlement_fee"))
        .values("reference").annotate(total=Sum("amount")).values_list("reference", "total")
    )
    return [rows.get(pk, 0) for pk in order_ids]


class Shop:
    def __init__(self):
        from django.core.files.base import ContentFile

        from stall.accounts.services import user_create
        from stall.catalog.models import ProductStatus
        from stall.catalog.services import product_create
        from stall.stores.services import store_create

        owner = user_create(email="bench@example.com", password="a long bench password")
        self.store = store_create(owner=owner, name="Bench", slug="bench")
        self.products = {
            size: product_create(store=self.store, name=f"Sale of {size}", amount=size, status=ProductStatus.PUBLISHED,
                                 files=[ContentFile(b"a bench download\n", name="sale.txt")])
            for size in SIZES
        }
        self.buyers = 0

    def buyer(self):
        from stall.accounts.services import buyer_for_email

        self.buyers += 1
        return buyer_for_email(email=f"reader{self.buyers}@example.com")

    def spend(self, *, size: int, buyer, method: str):
        from stall.checkout.services import CheckoutItem, checkout_create
        from stall.orders.checkout_pay import checkout_confirm

        checkout = checkout_create(store=self.store, email=buyer.email, items=[CheckoutItem(product_id=self.products[size].pk)])
        return checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer).order

    def wallet(self, *, size: int, top_up: int) -> list[str]:
        from stall.wallets.services import wallet_top_up

        buyer = self.buyer()
        wallet_top_up(buyer=buyer, amount=top_up, currency="USD", payment_method="sandbox_visa")
        return [self.spend(size=size, buyer=buyer, method="wallet").pk for _ in range(top_up // size)]

    def tab(self, *, size: int, settle_at: int) -> list[str]:
        from stall.wallets.services import tab_settle

        buyer = self.buyer()
        # A first tab is capped at $1; settle one so the next may run to $5.
        self.spend(size=25, buyer=buyer, method="tab")
        tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
        orders = [self.spend(size=size, buyer=buyer, method="tab").pk for _ in range(settle_at // size)]
        tab_settle(buyer=buyer, currency="USD", payment_method="sandbox_visa")
        return orders

    def card(self, *, size: int) -> list[str]:
        return [self.spend(size=size, buyer=self.buyer(), method="sandbox_visa").pk]

    # --- Lightning, through a real LNbits -----------------------------------------------------

    def lightning_connect(self, lnbits) -> None:
        from django.conf import settings

        from stall.payments.lightning_services import lightning_account_set

        settings.STALL_LNBITS_ALLOW_PRIVATE = True  # LNbits runs on this machine
        self.lnbits = lnbits
        wallet = lnbits.wallet("bench store")
        lightning_account_set(store=self.store, url=lnbits.url, invoice_key=wallet["inkey"])

    def _invoice_paid(self, payment) -> None:
        from stall.payments.lightning_services import lightning_payment_refresh
        from stall.payments.models import PaymentStatus

        self.lnbits.pay(payment.lightning_invoice.bolt11).raise_for_status()
        assert lightning_payment_refresh(payment_id=payment.pk).status == PaymentStatus.SUCCEEDED

    def lightning(self, *, size: int) -> list[str]:
        from stall.checkout.services import CheckoutItem, checkout_create
        from stall.orders.models import Order
        from stall.payments.lightning_services import (
            lightning_checkout_start,
            lightning_open_payment,
        )

        buyer = self.buyer()
        checkout = checkout_create(store=self.store, email=buyer.email, items=[CheckoutItem(product_id=self.products[size].pk)])
        lightning_checkout_start(checkout_id=checkout.pk)
        self._invoice_paid(lightning_open_payment(checkout_id=checkout.pk))
        return [Order.objects.get(checkout=checkout).pk]

    def lightning_wallet(self, *, size: int, top_up: int) -> list[str]:
        from stall.wallets.services import wallet_top_up

        buyer = self.buyer()
        self._invoice_paid(wallet_top_up(buyer=buyer, amount=top_up, currency="USD", payment_method="lightning", store=self.store))
        return [self.spend(size=size, buyer=buyer, method="wallet").pk for _ in range(top_up // size)]


def money(minor: Decimal | int) -> str:
    minor = Decimal(minor)
    if minor < 100:
        return f"{minor.normalize():f}¢" if minor == minor.to_integral() else f"{minor:.2f}¢"
    return f"${minor / 100:.2f}"


def lnbits_or_reason():
    """A context manager running LNbits, or the reason there is none."""
    sys.path.insert(0, str(ROOT))
    from stall.payments.tests.conftest import LNBITS_ROOT, lnbits_running

    if not (LNBITS_ROOT / "bin" / "lnbits").exists():
        return None, f"not measured: no LNbits in {LNBITS_ROOT.name} (run `make lnbits`)"
    return lnbits_running(), ""


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="stall-economics-"))
    try:
        setup_django(data_dir)
        shop = Shop()
        running, reason = lnbits_or_reason()
        if running is None:
            report(shop, None, reason)
            return
        with running as lnbits:
            shop.lightning_connect(lnbits)
            report(shop, lnbits, "")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(shop, lnbits, no_lightning: str) -> None:
    from stall.checkout.errors import AmountTooSmall
    from stall.payments.rails import card_fee, card_minimum_charge

    rows = []
    for size in SIZES:
        scenarios = [
            ("wallet, after a $10 top-up", lambda: shop.wallet(size=size, top_up=1000)),
            ("wallet, after a $20 top-up", lambda: shop.wallet(size=size, top_up=2000)),
            ("tab, settled at $5", lambda: shop.tab(size=size, settle_at=500)),
            ("card, one charge per sale", lambda: shop.card(size=size)),
            ("lightning, invoice per sale", lambda: shop.lightning(size=size)),
            ("wallet, $10 Lightning top-up", lambda: shop.lightning_wallet(size=size, top_up=1000)),
        ]
        for label, run in scenarios:
            if "lightning" in label.lower() and lnbits is None:
                rows.append((size, label, None, None, None, no_lightning))
                continue
            try:
                orders = run()
            except AmountTooSmall:
                theory = card_fee(size, "USD")
                rows.append((size, label, None, None, None,
                             f"refused (below the {money(card_minimum_charge('USD'))} minimum); "
                             f"at 2.9% + 30¢ it would cost {money(theory)} = {Decimal(theory) * 100 / size:.1f}%"))
                continue
            fees = fees_from_ledger(orders)
            average = Decimal(sum(fees)) / len(fees)
            rows.append((size, label, len(orders), average, (min(fees), max(fees)), ""))

    print("Processing cost per sale, read from the ledger (sandbox card rail: 2.9% + 30¢ a charge, 50¢ minimum;")
    print("Lightning: invoices of a real LNbits, which charges the receiver nothing)")
    print()
    header = f"{'sale':>6}  {'paid by':<28} {'sales':>5}  {'fee per sale':>12}  {'% of price':>10}  {'shares':>9}"
    print(header)
    print("-" * len(header))
    for size, label, count, average, spread, note in rows:
        if average is None:
            print(f"{money(size):>6}  {label:<28} {'—':>5}  {note}")
            continue
        lo, hi = spread
        shares = money(lo) if lo == hi else f"{lo}–{hi}¢"
        print(f"{money(size):>6}  {label:<28} {count:>5}  {money(average.quantize(Decimal('0.01'))):>12}  "
              f"{average * 100 / size:>9.2f}%  {shares:>9}")


if __name__ == "__main__":
    main()
