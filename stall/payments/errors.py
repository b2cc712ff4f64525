from django.utils.translation import gettext_noop

from stall.core.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentError,
    PermissionDenied,
    StallError,
)
from stall.ledger.errors import InsufficientFunds, LimitExceeded


class PaymentDeclined(PaymentError):
    """The rail refused the payment; ``code`` is the rail's reason (card_declined, …)."""


class PaymentNotFound(NotFound):
    default_message = gettext_noop("No such payment.")


class PaymentNotAwaitingAction(Conflict):
    code = "payment_not_awaiting_action"
    default_message = gettext_noop("This payment is not waiting for confirmation.")


class RefundInvalid(InvalidRequest):
    code = "invalid_refund"


class RefundFailed(PaymentError):
    code = "refund_failed"
    default_message = gettext_noop("The refund did not go through.")


class PaymentProcessorUnavailable(StallError):
    """The card processor could not be reached or answered with a server error. A payment under
    way stays ``processing``; the reconciliation task asks the processor again later."""

    code = "payment_processor_unavailable"
    status = 503
    default_message = gettext_noop("The card processor could not be reached. You have not been charged twice; try again in a few minutes.")


class StripeNotConfigured(InvalidRequest):
    code = "stripe_not_configured"
    default_message = gettext_noop("This store does not take card payments through Stripe.")


class LightningNotConfigured(InvalidRequest):
    code = "lightning_not_configured"
    default_message = gettext_noop("This store does not take Lightning payments.")


class LightningAccountInvalid(InvalidRequest):
    """The LNbits address or key a creator gave cannot be used: the message says why."""

    code = "lightning_account_invalid"


class StripeKeyInvalid(InvalidRequest):
    code = "stripe_key_invalid"


class PaymentMethodNeedsAction(PaymentError):
    """Saving a card needs the buyer to authenticate with their bank first (3-D Secure).

    ``client_secret`` lets the page finish it with Stripe.js; ``reference`` (the SetupIntent) is
    then passed back to ``payment_method_save`` as the payment method. ``card_form``: the card is
    yet to be typed into Stripe's form (the setup was started with ``"stripe"`` for the card),
    rather than only the bank's check left to pass."""

    code = "authentication_required"
    default_message = gettext_noop("Your bank asks you to confirm this card before it can be saved.")

    def __init__(self, message=None, *, reference: str = "", client_secret: str = "", card_form: bool = False,
                 **kwargs):
        super().__init__(message, **kwargs)
        self.reference = reference
        self.client_secret = client_secret
        self.card_form = card_form


class WebhookSignatureInvalid(InvalidRequest):
    code = "invalid_signature"
    default_message = gettext_noop("The webhook signature is missing, wrong or too old.")


class BuyerRequired(PermissionDenied):
    code = "buyer_required"
    status = 401
    default_message = gettext_noop("Sign in to pay from your wallet or tab.")


class WalletEmpty(InsufficientFunds):
    code = "insufficient_funds"
    default_message = gettext_noop("Your wallet does not hold enough for this. Top it up, or put it on your tab.")


class TabLimitReached(LimitExceeded):
    code = "tab_limit_reached"
    default_message = gettext_noop("This would take your tab over its limit. Settle the tab to continue.")


class TabOverdue(Conflict):
    code = "tab_overdue"
    status = 402
    default_message = gettext_noop("Your tab has been open too long. Settle it to keep buying on it.")


class TestMoneyRefused(PaymentError):
    """The buyer's wallet holds test money (topped up with a test card), and this store takes no
    test cards: the money would buy real goods here."""

    __test__ = False  # a domain error, not a test class for pytest to collect
    code = "test_money_refused"
    default_message = gettext_noop(
        "Your wallet holds test money from test cards, which this store does not take. "
        "Top it up with a real card: that clears the test money."
    )
