from django.utils.functional import SimpleLazyObject

from stall.accounts.services import BUYER_SESSION_KEY, buyer_from_request


def buyer(request) -> dict:
    """``buyer``: the signed-in buyer, for the header's Wallet and Sign out links.

    Read lazily, and only when the session names a buyer: one query on pages that show it, none
    for visitors who never signed in."""
    session = getattr(request, "session", None)
    if session is None or not session.get(BUYER_SESSION_KEY):
        return {"buyer": None}
    return {"buyer": SimpleLazyObject(lambda: buyer_from_request(request))}
