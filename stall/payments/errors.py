from stall.core.errors import Conflict, InvalidRequest, NotFound, PaymentError


class PaymentDeclined(PaymentError):
    """The rail refused the payment; ``code`` is the rail's reason (card_declined, …)."""


class PaymentNotFound(NotFound):
    default_message = "No such payment."


class PaymentNotAwaitingAction(Conflict):
    code = "payment_not_awaiting_action"
    default_message = "This payment is not waiting for confirmation."


class RefundInvalid(InvalidRequest):
    code = "invalid_refund"


class RefundFailed(PaymentError):
    code = "refund_failed"
    default_message = "The refund did not go through."
