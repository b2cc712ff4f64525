"""Verifying Stall's webhook deliveries (Standard Webhooks signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE = 300  # seconds


class WebhookVerificationError(Exception):
    pass


def webhook_verify(*, secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise WebhookVerificationError unless ``body`` was signed with the endpoint's ``whsec_``
    secret within the last five minutes. Pass the raw body, before any JSON parsing."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, signatures = lower["webhook-id"], lower["webhook-timestamp"], lower["webhook-signature"]
        sent = int(stamp)
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook headers") from None
    if abs((now if now is not None else time.time()) - sent) > TOLERANCE:
        raise WebhookVerificationError("the delivery is too old or too new")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    if not any(hmac.compare_digest(expected, sig.partition(",")[2]) for sig in signatures.split()):
        raise WebhookVerificationError("no signature matches")
