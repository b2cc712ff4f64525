from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest


class LedgerError(InvalidRequest):
    code = "ledger_error"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"
    status = 402
    default_message = gettext_noop("The balance is too low for this payment.")


class LimitExceeded(LedgerError):
    code = "limit_exceeded"
    status = 402
    default_message = gettext_noop("This would go over the account's limit.")


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class TransferExistsWithDifferentFields(Conflict):
    code = "idempotency_key_reused"
    default_message = gettext_noop("A transfer with this idempotency key exists with different fields.")


class TransferAlreadyResolved(Conflict):
    code = "transfer_already_resolved"
    default_message = gettext_noop("The transfer was already posted or voided.")


class TransferNotPending(Conflict):
    code = "transfer_not_pending"
    default_message = gettext_noop("Only a pending transfer can be posted or voided.")
