"""Lightning-specific services: a store's LNbits wallet, starting and checking a Lightning payment,
LNbits' webhook, the reconciliation of invoices nobody asked about, and what the invoice page shows.

A Lightning payment waits in ``requires_action`` until its invoice is paid or expires. Every path
that may bring the news asks LNbits (``lightning_payment_refresh``) and records its answer with the
same idempotent services as every rail, so the news arriving by the page's poll, the webhook and
the task at once makes one order.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone

from stall.checkout.models import Checkout
from stall.core.errors import StallError
from stall.core.lazy import LazyModule
from stall.stores.models import Store

from .errors import LightningAccountInvalid, PaymentNotFound, PaymentProcessorUnavailable
from .models import LightningAccount, LightningInvoice, Payment, PaymentStatus
from .rails import rail_get
from .rails.lightning import lightning_uri, lnbits_detail, lnbits_request
from .services import checkout_card_payments_abandon, checkout_payment_start, payment_apply_result

logger = logging.getLogger(__name__)
# Drawn only on an invoice's page; every web worker and the task worker import this module.
segno = LazyModule("segno")
_OPEN = (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION)


# --- a store's LNbits wallet --------------------------------------------------------------------
def _private_host(host: str) -> bool:
    """Whether ``host`` is, or resolves to, an address on this machine or a private network."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # unresolvable: the check with LNbits says so
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            return True
    return False


def _url_check(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise LightningAccountInvalid("Enter your LNbits address as a URL, such as https://lnbits.example.com.", param="url") from None
    host = urlsplit(url).hostname or ""
    if not settings.STALL_LNBITS_ALLOW_PRIVATE and _private_host(host):
        # Otherwise any creator could make this server send requests into its own network.
        raise LightningAccountInvalid("An LNbits on a private address is not allowed on this Stall.", param="url")
    return url


def lightning_account_set(*, store: Store, url: str, invoice_key: str) -> LightningAccount:
    """Give ``store`` an LNbits wallet for Lightning payments. The key is tried against LNbits
    first: an address that does not answer, a key it refuses, or a key that can spend (the admin
    key) is refused here, with nothing saved."""
    url, invoice_key = _url_check(url), (invoice_key or "").strip()
    if not invoice_key:
        raise LightningAccountInvalid("Paste the wallet's invoice/read key from LNbits.", param="invoice_key")
    try:
        response = lnbits_request(url, invoice_key, "GET", "/api/v1/wallet")
    except PaymentProcessorUnavailable:
        raise LightningAccountInvalid(f"Stall could not reach LNbits at {url}. Check the address.", param="url") from None
    detail = lnbits_detail(response).lower()
    # LNbits answers an unknown key with 404 "Wallet not found." (401/403 for a malformed one).
    if response.status_code in (401, 403) or (response.status_code == 404 and "wallet" in detail):
        raise LightningAccountInvalid("LNbits did not accept this key.", param="invoice_key")
    try:
        wallet = response.json() if response.status_code == 200 else None
    except ValueError:
        wallet = None
    if not isinstance(wallet, dict) or "balance" not in wallet:
        raise LightningAccountInvalid(f"{url} did not answer like an LNbits server.", param="url")
    if "id" in wallet:
        # LNbits shows the wallet id only to its admin key, which can spend the wallet's money.
        raise LightningAccountInvalid(
            "This is the wallet's admin key, which can spend its money. Give Stall the invoice/read key.",
            param="invoice_key",
        )
    account, _ = LightningAccount.objects.update_or_create(
        store=store, defaults={"url": url, "invoice_key": invoice_key, "wallet_name": str(wallet.get("name", ""))[:255]},
    )
    return account


def lightning_account_remove(*, store: Store) -> None:
    """Stop offering Lightning at ``store``. Invoices already out keep the key they were made with,
    so their payments are still recorded."""
    LightningAccount.objects.filter(store=store).delete()


# --- paying -------------------------------------------------------------------------------------
def lightning_open_payment(*, checkout_id: str) -> Payment | None:
    """The checkout's Lightning payment still waiting for the buyer, if any."""
    return Payment.objects.filter(checkout_id=checkout_id, rail="lightning", status__in=_OPEN).first()


def lightning_checkout_start(*, checkout_id: str) -> Checkout:
    """The buyer chose Lightning: give up a card payment they have not confirmed (the Stripe page
    opens one as it loads) and have the store's LNbits make an invoice. A Lightning payment
    already under way is kept, so a reload shows the same invoice."""
    if lightning_open_payment(checkout_id=checkout_id) is None:
        checkout_card_payments_abandon(checkout_id=checkout_id)
    return checkout_payment_start(checkout_id=checkout_id, payment_method="lightning")


def lightning_payment_refresh(*, payment_id: str) -> Payment:
    """Ask LNbits where a Lightning payment stands and record the answer: paid, expired, or still
    waiting. A payment already decided is returned as it is, with no call."""
    payment = Payment.objects.filter(pk=payment_id, rail="lightning").first()
    if payment is None:
        raise PaymentNotFound()
    if payment.status not in _OPEN:
        return payment
    result = rail_get("lightning").payment_retrieve(payment_id=payment.pk)
    return payment_apply_result(payment_id=payment.pk, result=result)


def lightning_payment_cancel(*, payment_id: str) -> Payment:
    """The buyer gave up the invoice to pay another way. One LNbits says was paid is recorded."""
    payment = Payment.objects.filter(pk=payment_id, rail="lightning").first()
    if payment is None:
        raise PaymentNotFound()
    if payment.status not in _OPEN:
        return payment
    result = rail_get("lightning").payment_cancel(payment_id=payment.pk)
    if result.status == "succeeded":
        return payment_apply_result(payment_id=payment.pk, result=result)
    Payment.objects.filter(pk=payment.pk, status__in=_OPEN).update(
        status=PaymentStatus.CANCELED if result.failure_code == "canceled" else PaymentStatus.FAILED,
        failure_code=result.failure_code, failure_message=result.failure_message, updated_at=timezone.now(),
    )
    return Payment.objects.get(pk=payment.pk)


def lightning_webhook_receive(*, payment_id: str) -> Payment:
    """LNbits says a payment's invoice was paid. Its body is not believed, not even read: LNbits is
    asked with the invoice's key, so a forged call changes nothing but the time of the next ask."""
    return lightning_payment_refresh(payment_id=payment_id)


# Lightning cannot withdraw an invoice: one the buyer gave up ("pay another way") can still be paid
# until it expires. Reconciliation keeps asking about those until a little after their expiry (a
# payment may be in flight), so money paid anyway is never kept without an order.
GIVEN_UP_GRACE = timedelta(minutes=10)
PAID_AFTER_CANCEL = "paid_after_cancel"


def lightning_payments_reconcile(*, older_than_seconds: int = 60, now=None) -> int:
    """Ask LNbits about Lightning payments waiting longer than ``older_than_seconds``: an invoice
    paid while nobody had the page open and whose webhook was lost, or one that expired unpaid;
    and about invoices the buyer gave up that can still be paid (see ``GIVEN_UP_GRACE``).
    Returns how many were decided."""
    now = now or timezone.now()
    decided = _given_up_invoices_reconcile(older_than_seconds=older_than_seconds, now=now)
    due = Payment.objects.filter(
        rail="lightning", status__in=_OPEN, updated_at__lte=now - timedelta(seconds=older_than_seconds)
    ).order_by("updated_at").values_list("pk", flat=True)[:200]
    for payment_id in list(due):
        try:
            payment = lightning_payment_refresh(payment_id=payment_id)
        except StallError as exc:
            logger.warning("lightning reconcile of %s: %s", payment_id, exc.message)
            continue
        if payment.status in _OPEN:
            Payment.objects.filter(pk=payment_id, status__in=_OPEN).update(updated_at=now)
        else:
            decided += 1
    return decided


def _given_up_invoices_reconcile(*, older_than_seconds: int, now) -> int:
    """An invoice given up but paid anyway: the payment succeeds, and its checkout gets its order
    (or the top-up its money) as if it had never been given up. If the checkout was paid another
    way meanwhile, the buyer paid twice and Stall cannot refund over Lightning: the payment is
    marked ``paid_after_cancel``, with what the creator must do, and logged as an error."""
    given_up = Payment.objects.filter(
        rail="lightning", status=PaymentStatus.CANCELED, failure_code="canceled",
        lightning_invoice__expires_at__gte=now - GIVEN_UP_GRACE,
        updated_at__lte=now - timedelta(seconds=older_than_seconds),
    ).order_by("updated_at").values_list("pk", flat=True)[:200]
    decided = 0
    for payment_id in list(given_up):
        try:
            result = rail_get("lightning").payment_retrieve(payment_id=payment_id)
        except StallError as exc:
            logger.warning("lightning reconcile of given-up %s: %s", payment_id, exc.message)
            continue
        if result.status != "succeeded":
            Payment.objects.filter(pk=payment_id, status=PaymentStatus.CANCELED).update(updated_at=now)
            continue
        decided += 1
        try:
            payment_apply_result(payment_id=payment_id, result=result)
        except StallError as exc:
            logger.error("lightning payment %s was paid after the buyer gave it up: %s", payment_id, exc.message)
            Payment.objects.filter(pk=payment_id, status=PaymentStatus.CANCELED).update(
                failure_code=PAID_AFTER_CANCEL, rail_reference=result.reference, updated_at=now,
                failure_message="Paid after the buyer chose another way, and the checkout was already paid: "
                "pay the buyer back from your LNbits wallet.",
            )
    return decided


# --- the invoice page ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InvoicePage:
    """What a page shows of a Lightning invoice."""

    payment: Payment
    bolt11: str
    uri: str
    qr_svg: str
    sats: int
    expires_at: object


def lightning_invoice_page(*, payment: Payment) -> InvoicePage | None:
    """The invoice of a Lightning payment as a page shows it: its QR code as inline SVG (the
    ``lightning:`` URI in capitals, which QR codes store more compactly), the text and the link."""
    invoice = LightningInvoice.objects.filter(payment_id=payment.pk).first()
    if invoice is None:
        return None
    qr = segno.make(lightning_uri(invoice.bolt11).upper(), error="m")
    svg = qr.svg_inline(scale=4, border=2, title="Lightning invoice", dark="#111", light="#fff")
    return InvoicePage(
        payment=payment, bolt11=invoice.bolt11, uri=lightning_uri(invoice.bolt11), qr_svg=svg,
        sats=invoice.sats, expires_at=invoice.expires_at,
    )
