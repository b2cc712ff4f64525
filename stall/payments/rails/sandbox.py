"""The sandbox card rail: a card processor's test mode, built in."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from stall.payments.models import OffSessionCharge, Payment, PaymentPurpose, SavedPaymentMethod

from .base import RailResult, SetupResult, UnknownPaymentMethod, card_fee, card_minimum_charge


class SandboxRail:
    """A card processor's test mode, built in: no network, deterministic test cards.

    ``sandbox_visa`` succeeds, ``sandbox_declined`` and ``sandbox_insufficient_funds`` fail,
    ``sandbox_3ds`` needs the buyer to approve on the hosted page. Fees are simulated at
    2.9% + 30¢ so the books show what a real card would have cost.
    """

    name = "sandbox"
    in_ledger = False
    METHODS = {
        "sandbox_visa": _("Visa •••• 4242 (succeeds)"),
        "sandbox_3ds": _("Visa •••• 3155 (asks for 3-D Secure)"),
        "sandbox_declined": _("Visa •••• 0002 (declined)"),
        "sandbox_insufficient_funds": _("Visa •••• 9995 (insufficient funds)"),
    }

    def payment_methods(self) -> list[tuple[str, str]]:
        return list(self.METHODS.items())

    def minimum_charge(self, currency: str) -> int:
        return card_minimum_charge(currency)

    def payment_start(self, *, payment_id: str, amount: int, currency: str, payment_method: str) -> RailResult:
        if settings.STALL_SANDBOX_DELAY_MS:
            time.sleep(settings.STALL_SANDBOX_DELAY_MS / 1000)  # test only: see the setting
        return self._answer(
            payment_id=payment_id, amount=amount, currency=currency, payment_method=payment_method
        )

    def _answer(
        self, *, payment_id: str, amount: int, currency: str, payment_method: str
    ) -> RailResult:
        reference = f"sbx_{payment_id.partition('_')[2]}"
        if payment_method == "sandbox_visa":
            return RailResult("succeeded", reference=reference, fee=card_fee(amount, currency))
        if payment_method == "sandbox_3ds":
            return RailResult("requires_action", reference=reference)
        if payment_method == "sandbox_declined":
            return RailResult("failed", reference, failure_code="card_declined", failure_message=gettext_noop("Your card was declined."))
        if payment_method == "sandbox_insufficient_funds":
            return RailResult(
                "failed", reference, failure_code="insufficient_funds", failure_message=gettext_noop("Your card has insufficient funds.")
            )
        raise UnknownPaymentMethod(
            f"Unknown payment method “{payment_method}”. Use one of: {', '.join(self.METHODS)}.",
            param="payment_method",
        )

    def payment_retrieve(self, *, payment_id: str) -> RailResult:
        """What the sandbox answered when the payment was started, or would have: it keeps no
        state of its own, and its answer follows from the test card (and, for ``sandbox_3ds``,
        from whether the buyer was there to confirm). Asking twice gives the same answer."""
        payment = Payment.objects.select_related("buyer").get(pk=payment_id)
        answer = self._answer(
            payment_id=payment.pk, amount=payment.amount, currency=payment.currency,
            payment_method=payment.payment_method,
        )
        if answer.status == "requires_action" and _charged_off_session(payment):
            return self._authentication_required(payment.pk)
        return answer

    def payment_confirm(self, *, payment_id: str, reference: str, approve: bool) -> RailResult:
        if approve:
            payment = Payment.objects.only("amount", "currency").get(pk=payment_id)
            return RailResult("succeeded", reference=reference, fee=card_fee(payment.amount, payment.currency))
        return RailResult(
            "failed", reference, failure_code="authentication_failed",
            failure_message=gettext_noop("The card's 3-D Secure check was not completed."),
        )

    def refund(self, *, payment_id: str, reference: str, amount: int, currency: str, refund_id: str = "") -> RailResult:
        return RailResult("succeeded", reference=f"sbxre_{payment_id.partition('_')[2]}")

    def payment_cancel(self, *, payment_id: str) -> RailResult:
        """Give up a payment the buyer has not finished (they chose the wallet instead). One the
        sandbox already took (a ``sandbox_visa`` payment a crash left processing) stands, as a
        processor's would: it is reported as succeeded and completes the checkout."""
        answer = self.payment_retrieve(payment_id=payment_id)
        if answer.status == "succeeded":
            return answer
        return RailResult("failed", failure_code="canceled", failure_message=gettext_noop("The payment was canceled."))

    def payment_method_setup(self, *, email: str, payment_method: str, store=None, customer_ref: str = "") -> SetupResult:
        """A sandbox test card is saved as its code; any of them can be saved."""
        if payment_method not in self.METHODS:
            raise UnknownPaymentMethod(
                f"Unknown payment method “{payment_method}”. Use one of: {', '.join(self.METHODS)}.",
                param="payment_method",
            )
        label = self.METHODS[payment_method].partition(" (")[0]
        return SetupResult("succeeded", method_ref=payment_method, label=label)

    def payment_start_off_session(self, *, payment_id: str, amount: int, currency: str, saved) -> RailResult:
        if saved.method_ref == "sandbox_3ds":
            return self._authentication_required(payment_id)
        return self.payment_start(payment_id=payment_id, amount=amount, currency=currency, payment_method=saved.method_ref)

    @staticmethod
    def _authentication_required(payment_id: str) -> RailResult:
        return RailResult(
            "failed", f"sbx_{payment_id.partition('_')[2]}", failure_code="authentication_required",
            failure_message=gettext_noop("The card's bank asks the cardholder to confirm this payment."),
        )

    def notification_handle(self, *, headers: dict[str, str], body: bytes) -> list[tuple[str, RailResult]]:
        return []  # the sandbox answers synchronously; it sends no notifications


def _charged_off_session(payment: Payment) -> bool:
    """Whether a payment charged a saved test card with the buyer away, as Stripe's rail tells:
    a store's charge of a saved card is recorded as such; a wallet's automatic top-up or an
    overdue tab's settlement charges a card the buyer saved, whose code is the payment method.
    (A buyer who saved ``sandbox_3ds`` and also tops up with it by hand is taken to be away: the
    payment fails and they try again, which is the safe side for a payment nobody is watching.)"""
    if OffSessionCharge.objects.filter(payment_id=payment.pk).exists():
        return True
    if payment.purpose == PaymentPurpose.CHECKOUT or payment.buyer_id is None:
        return False
    return SavedPaymentMethod.objects.filter(
        rail="sandbox", method_ref=payment.payment_method, email__iexact=payment.buyer.email
    ).exists()
