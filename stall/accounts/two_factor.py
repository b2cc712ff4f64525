"""Two-factor sign-in for creators: a TOTP authenticator app (RFC 6238, by pyotp), and recovery codes.

A code is accepted for the current 30-second step and the one before it (a code typed as it
changes), and once: the step of the last accepted code is kept on the row, so the same code, or
an older one, does not work again. Recovery codes are kept as salted SHA-256 hashes: they are ten
random characters each, far too many to guess, so a slow password hash would only slow the
check of ten of them without making them safer. Every attempt at an account's code is counted
by the rate limiter, per account and per client address, before it is checked.

Signing in is two steps: a correct password for an account with two-factor on leaves a pending
sign-in in the session (the user's id, a deadline and where to go), and only a correct code turns
it into a login.
"""

import hashlib
import hmac
import secrets
import time

import pyotp
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from stall.core.errors import InvalidRequest
from stall.core.lazy import LazyModule
from stall.core.limits import limits_hit

from .models import RecoveryCode, TwoFactor, User

segno = LazyModule("segno")  # drawn only by the setup page, which every web worker imports

STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_LENGTH = 10  # about 49 bits each
ISSUER = "Stall"


class TwoFactorCodeInvalid(InvalidRequest):
    code = "two_factor_code_invalid"
    default_message = "That code is not right. Enter the 6-digit code your authenticator app shows now, or an unused recovery code."

    def __init__(self, message: str | None = None, *, param: str | None = "code", code: str | None = None):
        super().__init__(message, param=param, code=code)


class TwoFactorCodeUsed(TwoFactorCodeInvalid):
    code = "two_factor_code_used"
    default_message = "That code has already been used. Wait for the next one in your authenticator app."


class TwoFactorStateInvalid(InvalidRequest):
    code = "two_factor_state"


# --- The authenticator ----------------------------------------------------------------------


def two_factor_enabled(*, user) -> bool:
    return TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).exists()


def two_factor_for_user(*, user) -> TwoFactor | None:
    """The user's authenticator, confirmed or still being set up; None when there is none."""
    return TwoFactor.objects.filter(user=user).first()


def two_factor_start(*, user) -> TwoFactor:
    """Begin setting up: a new secret, not yet in force until a code from the app confirms it.

    Starting again replaces an unconfirmed secret (a QR code scanned on a phone that was lost)."""
    if two_factor_enabled(user=user):
        raise TwoFactorStateInvalid("Two-factor sign-in is already on.")
    two_factor, _ = TwoFactor.objects.update_or_create(
        user=user, defaults={"secret": pyotp.random_base32(), "created_at": timezone.now(), "last_used_step": 0}
    )
    return two_factor


def two_factor_cancel(*, user) -> None:
    """Drop a setup that was never confirmed; one in force is turned off only with a code."""
    TwoFactor.objects.filter(user=user, confirmed_at__isnull=True).delete()


def two_factor_uri(two_factor: TwoFactor) -> str:
    """The otpauth:// link an authenticator app reads from the QR code."""
    return pyotp.TOTP(two_factor.secret).provisioning_uri(name=two_factor.user.email, issuer_name=ISSUER)


def two_factor_qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG markup: drawn by the page, with no request anywhere."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, border=2, omitsize=True, svgclass="qr", title="QR code for your authenticator app", dark="#000", light="#fff"
    )


def two_factor_confirm(*, user, code: str) -> list[str]:
    """Turn two-factor on with a first code from the app; the new recovery codes, shown once.

    Not counted by the limiter: the secret is new and the creator's own, so a guess here gains
    nothing (turning it off and making new recovery codes are counted)."""
    with transaction.atomic():
        two_factor = TwoFactor.objects.select_for_update().filter(user=user).first()
        if two_factor is None or two_factor.confirmed_at is not None:
            raise TwoFactorStateInvalid("Start setting up two-factor sign-in again.")
        step = _totp_step(two_factor.secret, code)
        if step is None:
            raise TwoFactorCodeInvalid(
                "That code is not right. Check the app shows “Stall” with your email, and enter the code it shows now."
            )
        two_factor.confirmed_at = timezone.now()
        two_factor.last_used_step = step
        two_factor.save(update_fields=["confirmed_at", "last_used_step"])
        return _recovery_codes_replace(user=user)


def two_factor_verify(*, user, code: str, address: str) -> str:
    """Check a code for a user with two-factor on: ``"totp"`` or ``"recovery"``, which one worked.

    Counted by the limiter first (RateLimited past it); TwoFactorCodeInvalid when it is wrong,
    TwoFactorCodeUsed when it is an app code already accepted (or older than one that was)."""
    _attempt_count(user=user, address=address)
    return _code_check(user=user, code=code)


def _code_check(*, user, code: str) -> str:
    two_factor = TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).first()
    if two_factor is None:
        raise TwoFactorStateInvalid("Two-factor sign-in is off for this account.")
    digits = "".join(code.split())
    if digits.isdigit() and len(digits) == 6:
        step = _totp_step(two_factor.secret, digits)
        if step is None:
            raise TwoFactorCodeInvalid()
        # The conditional update decides between two requests racing with the same code.
        taken = TwoFactor.objects.filter(pk=two_factor.pk, last_used_step__lt=step).update(last_used_step=step)
        if not taken:
            raise TwoFactorCodeUsed()
        return "totp"
    if _recovery_code_use(user=user, code=code):
        return "recovery"
    raise TwoFactorCodeInvalid()


def two_factor_disable(*, user, password: str, code: str, address: str) -> None:
    """Turn two-factor off: the account's password and a current (or recovery) code, both."""
    _attempt_count(user=user, address=address)
    if not user.check_password(password or ""):
        raise InvalidRequest("That password is not right.", param="password", code="password_invalid")
    with transaction.atomic():
        _code_check(user=user, code=code)
        TwoFactor.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()


def recovery_codes_regenerate(*, user, code: str, address: str) -> list[str]:
    """New recovery codes for a current code; the old ones stop working."""
    with transaction.atomic():
        two_factor_verify(user=user, code=code, address=address)
        return _recovery_codes_replace(user=user)


def recovery_codes_remaining(*, user) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def _attempt_count(*, user, address: str) -> None:
    limits_hit(("two_factor_user", str(user.pk)), ("two_factor_address", address), what="code attempts")


def _totp_step(secret: str, code: str) -> int | None:
    """The time step ``code`` belongs to, if it is the current step's code or the previous one's."""
    code = "".join(code.split())
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(time.time()) // STEP_SECONDS
    for step in (current, current - 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# --- Recovery codes -------------------------------------------------------------------------


def _recovery_codes_replace(*, user) -> list[str]:
    codes = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH)) for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(RecoveryCode(user=user, code_hash=_recovery_hash(code)) for code in codes)
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _recovery_normalize(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _recovery_hash(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256(f'{salt}${_recovery_normalize(code)}'.encode()).hexdigest()}"


def _recovery_matches(code: str, stored: str) -> bool:
    _, salt, _ = stored.split("$", 2)
    return hmac.compare_digest(_recovery_hash(code, salt), stored)


def _recovery_code_use(*, user, code: str) -> bool:
    """Use up the recovery code ``code`` if it is one of the user's unused ones."""
    if len(_recovery_normalize(code)) != _RECOVERY_LENGTH:
        return False
    for row in RecoveryCode.objects.filter(user=user, used_at__isnull=True):
        if _recovery_matches(code, row.code_hash):
            return bool(RecoveryCode.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=timezone.now()))
    return False


# --- The sign-in waiting for its code ---------------------------------------------------------

_PENDING_KEY = "two_factor_pending"


def two_factor_pending_set(*, request, user, backend: str, next_url: str) -> None:
    """Remember, for a few minutes, that this session gave ``user``'s password and waits for a code."""
    request.session[_PENDING_KEY] = {
        "user": user.pk,
        "backend": backend,
        "next": next_url,
        "until": int(time.time()) + settings.STALL_TWO_FACTOR_PENDING_SECONDS,
    }


def two_factor_pending_get(*, request) -> tuple[User, dict] | None:
    """The user waiting for a code in this session and the pending state; None if none or expired."""
    pending = request.session.get(_PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("until", 0) <= time.time():
        two_factor_pending_clear(request=request)
        return None
    user = User.objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        two_factor_pending_clear(request=request)
        return None
    return user, pending


def two_factor_pending_clear(*, request) -> None:
    request.session.pop(_PENDING_KEY, None)
