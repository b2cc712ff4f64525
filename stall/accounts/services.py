import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse

from stall.core.errors import InvalidRequest
from stall.core.limits import RateLimited, limits_hit

from .models import Buyer, MagicLinkUse, User

_MAGIC_SALT = "stall.accounts.buyer-magic-link"


class MagicLinkInvalid(InvalidRequest):
    code = "magic_link_invalid"
    default_message = "This sign-in link is not valid or has expired. Ask for a new one below."


class MagicLinkUsed(MagicLinkInvalid):
    code = "magic_link_used"
    default_message = "This sign-in link has already been used. Ask for a new one below."


def buyer_magic_link(*, email: str, next_path: str = "") -> str:
    """An absolute link that signs a buyer in (to their library, or to ``next_path`` on this site).

    It signs in once: the random nonce in it is recorded when it is used (buyer_magic_link_use)."""
    token = signing.dumps({"e": email.lower(), "n": secrets.token_urlsafe(12)}, salt=_MAGIC_SALT, compress=True)
    url = settings.BASE_URL + reverse("orders:library_enter", args=[token])
    return f"{url}?{urlencode({'next': next_path})}" if next_path.startswith("/") else url


def buyer_magic_link_verify(*, token: str, max_age: int | None = None) -> tuple[str, str]:
    """The link's (email, nonce), if it is ours and not expired; it may have been used."""
    max_age = settings.STALL_MAGIC_LINK_TTL_SECONDS if max_age is None else max_age
    try:
        payload = signing.loads(token, salt=_MAGIC_SALT, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        raise MagicLinkInvalid() from None
    if not isinstance(payload, dict):  # a link from before links were single use
        raise MagicLinkInvalid()
    return payload["e"], payload["n"]


def buyer_magic_link_use(*, token: str) -> str:
    """The email a sign-in link is for, recording that it has been used; MagicLinkUsed if it was.

    Single use by a table of used nonces rather than by something of the buyer's folded into the
    signature (as Django's password reset tokens fold in the last login): that would undo every
    link the buyer has at once, yesterday's receipt with today's sign-in, where this undoes only
    the link that was followed. The nonce's primary key decides a race between two clicks."""
    email, nonce = buyer_magic_link_verify(token=token)
    try:
        with transaction.atomic():
            MagicLinkUse.objects.create(nonce=nonce)
    except IntegrityError:
        raise MagicLinkUsed() from None
    return email


def magic_link_request_allowed(*, email: str, address: str) -> bool:
    """Count a request for a sign-in link; False once the email or the address is past its limit.

    The caller then sends nothing but answers as it always does, so that the page tells no one
    whether an address has an account (or has been asked for too often)."""
    try:
        limits_hit(("magic_link_email", email.strip().lower()), ("magic_link_address", address))
    except RateLimited:
        return False
    return True


def login_attempt_count(*, email: str, address: str) -> None:
    """Count a creator's attempt to log in, before the password is checked; RateLimited past the
    limit for the account's email or for the client's address."""
    limits_hit(("login_email", email.strip().lower()), ("login_address", address))


def signup_attempt_count(*, address: str) -> None:
    """Count a sign-up: each one also tells whether an email has an account."""
    limits_hit(("signup_address", address))


class AccountInvalid(InvalidRequest):
    code = "invalid_account"


@transaction.atomic
def user_create(*, email: str, password: str, name: str = "") -> User:
    """Create a creator's account. The password must pass the configured validators."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise AccountInvalid("Enter a valid email address.", param="email") from None
    taken = AccountInvalid("An account with this email already exists; log in instead.", param="email", code="email_taken")
    if User.objects.filter(email__iexact=email).exists():
        raise taken
    user = User(email=email, name=(name or "").strip()[:120])
    try:
        validate_password(password or "", user=user)
    except ValidationError as exc:
        raise AccountInvalid(" ".join(exc.messages), param="password") from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # two sign-ups with the same email racing
        raise taken from None
    return user


BUYER_SESSION_KEY = "buyer_id"
BUYER_EMAIL_SESSION_KEY = "buyer_email"


def buyer_for_email(*, email: str) -> Buyer:
    """The buyer with this email (any case), created on first sight."""
    email = (email or "").strip().lower()
    buyer = Buyer.objects.filter(email=email).first()
    if buyer is not None:
        return buyer
    try:
        with transaction.atomic():
            return Buyer.objects.create(email=email)
    except IntegrityError:  # created by a concurrent request
        return Buyer.objects.get(email=email)


def buyer_sign_in(*, request, buyer) -> None:
    """Sign a buyer in to this browser session (after they followed a magic link)."""
    request.session.cycle_key()
    request.session[BUYER_SESSION_KEY] = buyer.pk
    request.session[BUYER_EMAIL_SESSION_KEY] = buyer.email
    request._stall_buyer = buyer


def buyer_sign_out(*, request) -> None:
    request.session.pop(BUYER_SESSION_KEY, None)
    request.session.pop(BUYER_EMAIL_SESSION_KEY, None)
    request._stall_buyer = None


def buyer_from_request(request):
    """The signed-in buyer of this session, or None.

    Read from the session with no query: sign-in keeps the buyer's id and email there, and a
    buyer's email never changes (buyers are never deleted either). Kept on the request."""
    cached = getattr(request, "_stall_buyer", _UNREAD)
    if cached is not _UNREAD:
        return cached
    session = getattr(request, "session", None)
    buyer_id = session.get(BUYER_SESSION_KEY) if session is not None else None
    email = session.get(BUYER_EMAIL_SESSION_KEY) if buyer_id else None
    if buyer_id and email:
        buyer = Buyer(id=buyer_id, email=email)
        buyer._state.adding, buyer._state.db = False, "default"
    elif buyer_id:  # a session from before the email was kept in it
        buyer = Buyer.objects.filter(pk=buyer_id).first()
    else:
        buyer = None
    request._stall_buyer = buyer
    return buyer


_UNREAD = object()


def sign_in_url(next_path: str) -> str:
    """The buyer's sign-in page (the library's email form), coming back to ``next_path``."""
    return f"{reverse('orders:library')}?{urlencode({'next': next_path})}"
