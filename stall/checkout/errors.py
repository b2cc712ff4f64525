from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class CheckoutNotFound(NotFound):
    default_message = gettext_noop("No such checkout.")


class CheckoutInvalid(InvalidRequest):
    code = "invalid_checkout"


class CheckoutExpired(Conflict):
    code = "checkout_expired"
    default_message = gettext_noop("This checkout has expired; start again from the product page.")


class AmountTooSmall(InvalidRequest):
    code = "amount_too_small"


class DiscountNotFound(NotFound):
    default_message = gettext_noop("No such discount.")


class DiscountInvalid(InvalidRequest):
    """A discount's settings are not valid (creating or editing one)."""

    code = "invalid_discount"


class DiscountRefused(InvalidRequest):
    """A buyer's code cannot be applied; ``code`` says why (discount_expired, …)."""

    code = "discount_invalid"
    default_message = gettext_noop("This discount code is not valid.")

    def __init__(self, message: str | None = None, *, param: str | None = "discount_code", code: str | None = None):
        super().__init__(message, param=param, code=code)


class DiscountInUse(Conflict):
    code = "discount_in_use"
    default_message = gettext_noop("Checkouts have used this code, so it stays for their history: deactivate it instead.")
