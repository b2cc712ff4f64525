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
