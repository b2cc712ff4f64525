from django.conf import settings
from django.core import signing
from django.urls import reverse

from stall.core.errors import InvalidRequest

_MAGIC_SALT = "stall.accounts.buyer-magic-link"


class MagicLinkInvalid(InvalidRequest):
    code = "magic_link_invalid"
    default_message = "This sign-in link is not valid or has expired. Ask for a new one below."


def buyer_magic_link(*, email: str) -> str:
    """An absolute link that signs a buyer in to their library, with no password."""
    token = signing.dumps(email.lower(), salt=_MAGIC_SALT, compress=True)
    return settings.BASE_URL + reverse("orders:library_enter", args=[token])


def buyer_magic_link_verify(*, token: str, max_age: int | None = None) -> str:
    max_age = settings.STALL_MAGIC_LINK_TTL_SECONDS if max_age is None else max_age
    try:
        return signing.loads(token, salt=_MAGIC_SALT, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        raise MagicLinkInvalid() from None
