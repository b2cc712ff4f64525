from stall.core.errors import InvalidRequest
from stall.payments.errors import TabLimitReached, TabOverdue, WalletEmpty  # noqa: F401  (raised by the rails)


class TopUpInvalid(InvalidRequest):
    code = "invalid_top_up"
