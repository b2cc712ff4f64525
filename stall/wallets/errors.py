from stall.core.errors import Conflict, InvalidRequest
from stall.ledger.errors import InsufficientFunds, LimitExceeded


class WalletEmpty(InsufficientFunds):
    code = "insufficient_funds"
    default_message = "Your wallet does not hold enough for this. Top it up, or put it on your tab."


class TabLimitReached(LimitExceeded):
    code = "tab_limit_reached"
    default_message = "This would take your tab over its limit. Settle the tab to continue."


class TabOverdue(Conflict):
    code = "tab_overdue"
    status = 402
    default_message = "Your tab has been open too long. Settle it to keep buying on it."


class TopUpInvalid(InvalidRequest):
    code = "invalid_top_up"
