"""The Lightning rail: invoices from the store's own LNbits wallet, through LNbits' HTTP API.

A Lightning payment waits for the buyer: ``payment_start`` asks LNbits for an invoice stating the
fiat amount (LNbits turns it into sats at its exchange rate) and leaves the payment in
``requires_action`` while the buyer's wallet pays it. Whatever brings the news — the buyer's page
polling, the buyer's "I've paid" button, LNbits' webhook, the reconciliation task — ends in
``payment_retrieve``, which asks LNbits with the store's key; nothing a caller says about a
payment is believed. A Lightning payment settles in seconds and costs the receiver nothing, so
the rail reports no fee.

No httpx exception leaves this module: a server that cannot be reached, or answers with a server
error, is PaymentProcessorUnavailable (503), and what was under way stays for the next ask.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from stall.core.lazy import LazyModule
from stall.core.money import currency_exponent
from stall.payments.errors import LightningNotConfigured, PaymentProcessorUnavailable
from stall.payments.models import LightningInvoice, Payment
from stall.payments.selectors import LightningConfig, lightning_config_for_store

from .base import RailResult, SetupResult

logger = logging.getLogger(__name__)
# Imported by the first call to an LNbits: most processes never make one (see core.lazy).
httpx = LazyModule("httpx")

UNAVAILABLE = "The store's Lightning server (LNbits) could not be reached. Try again in a few minutes."


def lnbits_request(url: str, key: str, method: str, path: str, *, json: dict | None = None) -> httpx.Response:
    """One call to an LNbits server with a wallet key. Unreachable or a server error: 503."""
    try:
        response = httpx.request(
            method, f"{url.rstrip('/')}{path}", headers={"X-Api-Key": key}, json=json,
            timeout=settings.STALL_LNBITS_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        logger.warning("lnbits %s %s unreachable: %s: %s", method, url, type(exc).__name__, exc)
        raise PaymentProcessorUnavailable(UNAVAILABLE) from None
    if response.status_code >= 500 and "exchange rate" not in lnbits_detail(response):
        logger.warning("lnbits %s %s%s answered %s: %s", method, url, path, response.status_code, response.text[:200])
        raise PaymentProcessorUnavailable(UNAVAILABLE)
    return response


def lnbits_detail(response: httpx.Response) -> str:
    """LNbits' reason for a refusal (FastAPI's ``detail``), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:200]


def minor_to_major(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-currency_exponent(currency))


def lightning_uri(bolt11: str) -> str:
    return f"lightning:{bolt11}"


def _expiry_seconds(payment: Payment) -> int:
    """The invoice's life: STALL_LIGHTNING_INVOICE_EXPIRY_SECONDS, never past its checkout's expiry."""
    seconds = settings.STALL_LIGHTNING_INVOICE_EXPIRY_SECONDS
    if payment.checkout_id is not None:
        left = (payment.checkout.expires_at - timezone.now()).total_seconds()
        seconds = min(seconds, int(left))
    return seconds


def _memo(payment: Payment) -> str:
    store = payment.store.name if payment.store_id else "Stall"
    what = "wallet top-up" if payment.purpose == "top_up" else f"checkout {payment.checkout_id or payment.pk}"
    return f"{store}: {what}"[:200]


class LightningRail:
    """Lightning invoices paid into the store's LNbits wallet."""

    name = "lightning"
    in_ledger = False

    @staticmethod
    def _payment(payment_id: str) -> Payment:
        return Payment.objects.select_related("store", "checkout").get(pk=payment_id)

    @staticmethod
    def _config(store) -> LightningConfig:
        config = lightning_config_for_store(store)
        if config is None:
            raise LightningNotConfigured()
        return config

    def payment_methods(self) -> list[tuple[str, str]]:
        return [("lightning", "Lightning")]

    def minimum_charge(self, currency: str) -> int:
        return 1  # a cent is a few sats: Lightning has no card network's minimum

    def _invoice_create(self, config: LightningConfig, payment: Payment, *, webhook: bool) -> httpx.Response:
        body = {
            "out": False,
            "amount": float(minor_to_major(payment.amount, payment.currency)),
            "unit": payment.currency,
            "memo": _memo(payment),
            "expiry": _expiry_seconds(payment),
            "extra": {"stall_payment": payment.pk},
        }
        if webhook:
            body["webhook"] = settings.BASE_URL + reverse("payments:lightning_webhook", args=[payment.pk])
        return lnbits_request(config.url, config.invoice_key, "POST", "/api/v1/payments", json=body)

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        """Ask the store's LNbits for an invoice of ``amount`` in ``currency``; the buyer pays it.

        An LNbits that refuses to call Stall's webhook address (its callback rules refuse a private
        address, as on a developer's machine) is asked again without one: polling still finds the
        payment."""
        payment = self._payment(payment_id)
        if _expiry_seconds(payment) < 1:
            return RailResult("failed", failure_code="checkout_expired", failure_message="This checkout has expired.")
        config = self._config(payment.store)
        response = self._invoice_create(config, payment, webhook=True)
        if response.status_code == 400 and "callback url" in lnbits_detail(response).lower():
            logger.warning("lnbits at %s refuses Stall's webhook address; relying on polling", config.url)
            response = self._invoice_create(config, payment, webhook=False)
        if response.status_code in (401, 403, 404):
            logger.error("lnbits refused the store's key: %s", lnbits_detail(response))
            return RailResult("failed", failure_code="payment_processor_misconfigured",
                              failure_message="This store's Lightning payments are not set up correctly.")
        if response.status_code >= 300:
            detail = lnbits_detail(response)
            logger.warning("lnbits refused an invoice for %s: %s", payment_id, detail)
            return RailResult("failed", failure_code="lightning_invoice_refused",
                              failure_message=f"The store's Lightning server refused to make an invoice: {detail}")
        return self._invoice_record(payment, config, response.json())

    def _invoice_record(self, payment: Payment, config: LightningConfig, invoice: dict) -> RailResult:
        bolt11 = invoice.get("bolt11") or invoice.get("payment_request") or ""
        sats = int(invoice["amount"]) // 1000  # LNbits counts millisatoshis
        major = minor_to_major(payment.amount, payment.currency)
        LightningInvoice.objects.create(
            payment=payment, payment_hash=invoice["payment_hash"], bolt11=bolt11, sats=sats,
            rate=(Decimal(sats) / major).quantize(Decimal("0.00000001")),
            expires_at=timezone.now() + timedelta(seconds=_expiry_seconds(payment)),
            lnbits_url=config.url, invoice_key=config.invoice_key,
        )
        return RailResult("requires_action", reference=invoice["payment_hash"], client_secret=bolt11)

    def payment_retrieve(self, *, payment_id: str) -> RailResult:
        """Ask LNbits whether the invoice was paid, with the server and key it was made with. With no
        invoice on record (a crash before it was), one is made now: the lost one was never shown,
        so nobody can have paid it."""
        payment = self._payment(payment_id)
        invoice = LightningInvoice.objects.filter(payment_id=payment.pk).first()
        if invoice is None:
            return self.payment_start(
                payment_id=payment.pk, amount=payment.amount, currency=payment.currency, payment_method="lightning"
            )
        response = lnbits_request(invoice.lnbits_url, invoice.invoice_key, "GET", f"/api/v1/payments/{invoice.payment_hash}")
        if response.status_code != 200:
            # The key no longer reads this wallet (deleted in LNbits?): nothing can be said yet.
            logger.error("lnbits cannot tell about %s: %s %s", payment_id, response.status_code, lnbits_detail(response))
            raise PaymentProcessorUnavailable(UNAVAILABLE)
        status = response.json()
        details = status.get("details") if isinstance(status.get("details"), dict) else {}
        if status.get("paid") is True and details.get("payment_hash") == invoice.payment_hash:
            return RailResult("succeeded", reference=invoice.payment_hash, fee=0)
        if status.get("status") == "failed":
            expired = timezone.now() >= invoice.expires_at
            return RailResult(
                "failed", reference=invoice.payment_hash,
                failure_code="expired" if expired else "lightning_failed",
                failure_message="The Lightning invoice expired unpaid." if expired else "The Lightning payment failed.",
            )
        return RailResult("requires_action", reference=invoice.payment_hash, client_secret=invoice.bolt11)

    def payment_cancel(self, *, payment_id: str) -> RailResult:
        """Give up an invoice the buyer has not paid (they chose another way). LNbits cannot
        withdraw an invoice, so it is asked first: one already paid stands and is reported."""
        result = self.payment_retrieve(payment_id=payment_id)
        if result.status in ("succeeded", "failed"):
            return result
        return RailResult("failed", reference=result.reference, failure_code="canceled", failure_message="The payment was canceled.")

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        """The buyer says they paid (``approve``): ask LNbits. Otherwise give the invoice up."""
        if approve:
            return self.payment_retrieve(payment_id=payment_id)
        return self.payment_cancel(payment_id=payment_id)

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str, refund_id: str = "") -> RailResult:
        # Paying a buyer back over Lightning needs an invoice from their wallet, which Stall has not.
        return RailResult(
            "failed", failure_code="refund_unsupported",
            failure_message="Lightning payments cannot be refunded from Stall: pay the buyer back from your LNbits wallet.",
        )

    def payment_method_setup(self, *, email: str, payment_method: str, store=None, customer_ref: str = "") -> SetupResult:
        return SetupResult("failed", failure_code="card_required", failure_message="Lightning cannot be saved for later charges.")

    def payment_start_off_session(self, *, payment_id: str, amount: int, currency: str, saved) -> RailResult:
        return RailResult("failed", failure_code="card_required", failure_message="Lightning needs the buyer to pay.")

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        return []  # LNbits' webhook names our payment in its address: see lightning_services
