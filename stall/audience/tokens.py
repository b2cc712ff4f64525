"""Signed links for the list: confirming a sign-up (expires) and unsubscribing (never expires,
so the link in an old email still works, as RFC 8058 expects)."""

from django.core import signing

from .errors import TokenInvalid

CONFIRM_SALT = "stall.audience.confirm"
UNSUBSCRIBE_SALT = "stall.audience.unsubscribe"
CONFIRM_MAX_AGE = 7 * 24 * 3600


def confirm_token(*, store_id: str, email: str) -> str:
    return signing.dumps([store_id, email], salt=CONFIRM_SALT, compress=True)


def confirm_token_read(token: str) -> tuple[str, str]:
    try:
        store_id, email = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        raise TokenInvalid() from None
    return store_id, email


def unsubscribe_token(*, store_id: str, email: str) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign_object([store_id, email], compress=True)


def unsubscribe_token_read(token: str) -> tuple[str, str]:
    try:
        store_id, email = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        raise TokenInvalid() from None
    return store_id, email
