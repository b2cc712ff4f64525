from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound, PermissionDenied


class OrderNotFound(NotFound):
    default_message = gettext_noop("No such order.")


class DownloadLinkInvalid(InvalidRequest):
    code = "download_link_invalid"
    status = 404
    default_message = gettext_noop("This download link is not valid.")


class DownloadLinkExpired(InvalidRequest):
    code = "download_link_expired"
    status = 410
    default_message = gettext_noop("This download link has expired. Open your library for a fresh one.")


class DownloadLimitReached(PermissionDenied):
    code = "download_limit_reached"
    default_message = gettext_noop("This file has been downloaded as many times as the purchase allows.")


class DownloadRevoked(PermissionDenied):
    code = "download_revoked"
    default_message = gettext_noop("This purchase was refunded, so its downloads are no longer available.")


class PriceChanged(Conflict):
    """A checkout's line costs this buyer less now than when it was priced (orders.pricing: a
    membership's cap was reached meanwhile); paying it as priced would charge too much."""

    code = "price_changed"
    default_message = gettext_noop("The price of this checkout has changed since it was made: start again from the product.")


class PriceLimitPassed(PriceChanged):
    """Raised inside a wallet or tab payment, under the buyer's lock, when the order would pay
    more than a price limit allows now (orders.pricing: a membership's cap reached by another
    payment since the price was read). The payment's transaction rolls back: nothing moved."""

    code = "price_limit_passed"
    default_message = gettext_noop(
        "You reached this membership's monthly cap with another payment just now, so nothing was charged. "
        "Try again: it costs you nothing more than the cap this month."
    )
