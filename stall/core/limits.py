"""Rate limits: how many times a subject (an email, a client address, an API key) may do a thing.

A fixed-window counter: each period-long window is one entry in the ``limits`` cache, named by
the limit, the subject and the window's number. ``cache.add`` creates it at 0, living as long as
the window; ``cache.incr`` counts the attempt. Both are atomic on Redis and on the file cache
used without it (stall.core.cache), so concurrent attempts are all counted. A fixed window may let
twice the limit through across its boundary (the end of one window, the start of the next); for
abuse limits that is enough, and it costs one entry and one increment, not a log of timestamps.

Limits are named in settings.STALL_LIMITS as ``"<count>/<period>"`` (``"10/15m"``) or ``"off"``.
"""

import hashlib
import ipaddress
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import caches
from django.utils.translation import gettext_lazy, ngettext

from .errors import StallError


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*")


@lru_cache(maxsize=64)
def rate_parse(text: str) -> Rate | None:
    """``"10/15m"`` → 10 per 900 seconds; ``"off"`` → no limit. Anything else is a setup error."""
    if text.strip().lower() in ("off", "none", ""):
        return None
    match = _RATE.fullmatch(text)
    if not match or int(match[1]) < 1 or match[2] == "0":
        raise ValueError(f"A rate limit is '<count>/<period>' such as '10/15m', or 'off'; not {text!r}.")
    return Rate(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])


# What was limited, as a buyer or creator reads it; the message is made in the active language
# (English under /api/ and on the creator's pages, the buyer's on theirs).
_TOO_MANY = {
    "attempts": gettext_lazy("Too many attempts."),
    "checkouts": gettext_lazy("Too many checkouts."),
    "requests": gettext_lazy("Too many requests."),
    "code attempts": gettext_lazy("Too many code attempts."),
}


class RateLimited(StallError):
    code = "rate_limited"
    status = 429

    def __init__(self, *, retry_after: int, what: str = "attempts"):
        self.retry_after = max(1, retry_after)
        if self.retry_after < 60:
            count = self.retry_after
            wait = ngettext("Try again in %(count)d second.", "Try again in %(count)d seconds.", count)
        else:
            count = math.ceil(self.retry_after / 60)
            wait = ngettext("Try again in %(count)d minute.", "Try again in %(count)d minutes.", count)
        super().__init__(f"{_TOO_MANY[what]} {wait % {'count': count}}")


def limits_hit(*hits: tuple[str, str], what: str = "attempts") -> None:
    """Count one attempt for each ``(limit name, subject)``; RateLimited if any is past its limit.

    Every hit is counted even when an earlier one is already over: an attacker who is limited by
    address still uses up the email's attempts, so changing address does not reset them."""
    waits = [wait for name, subject in hits if (wait := _hit(name, subject)) is not None]
    if waits:
        raise RateLimited(retry_after=max(waits), what=what)


def limits_check(*checks: tuple[str, str], what: str = "attempts") -> None:
    """RateLimited if any ``(limit name, subject)`` has used up its limit, counting nothing: for a
    limit counted only on some outcomes (license checks count an address's unknown keys), which
    must still refuse everything once it is reached. One cache read each."""
    waits = []
    for name, subject in checks:
        rate = rate_parse(settings.STALL_LIMITS[name])
        if rate is None:
            continue
        now = time.time()
        key, window = _key(name, subject, rate, now)
        if (caches["limits"].get(key) or 0) >= rate.count:
            waits.append(math.ceil((window + 1) * rate.seconds - now))
    if waits:
        raise RateLimited(retry_after=max(waits), what=what)


def _key(name: str, subject: str, rate: Rate, now: float) -> tuple[str, int]:
    window = int(now // rate.seconds)
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{name}:{digest}:{window}", window


def _hit(name: str, subject: str) -> int | None:
    """Count the attempt; the seconds until the window ends when it is past the limit, else None."""
    rate = rate_parse(settings.STALL_LIMITS[name])
    if rate is None:
        return None
    now = time.time()
    key, window = _key(name, subject, rate, now)
    cache = caches["limits"]
    cache.add(key, 0, timeout=rate.seconds + 1)
    try:
        hits = cache.incr(key)
    except ValueError:  # the entry expired between add and incr, at the window's very end
        cache.add(key, 1, timeout=rate.seconds + 1)
        hits = 1
    if hits <= rate.count:
        return None
    return math.ceil((window + 1) * rate.seconds - now)


def client_address(request) -> str:
    """Who is asking, for per-address limits: the client's IP address, or its /64 for IPv6.

    Anyone with IPv6 has a /64 of addresses to rotate through, so the network is the subject.
    Behind a reverse proxy (STALL_BEHIND_PROXY) the client is the last address the proxy added to
    X-Forwarded-For; the addresses before it are whatever the client wrote."""
    address = request.META.get("REMOTE_ADDR") or ""
    if settings.STALL_BEHIND_PROXY:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        address = forwarded[-1] or address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:203.0.113.9 is 203.0.113.9
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))
