"""The HTTP client: authentication, an Idempotency-Key on every POST, retries, errors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from .events import Events
from .resources import (
    Charges,
    Checkouts,
    Customers,
    Meters,
    Orders,
    Plans,
    Products,
    Refunds,
    Subscriptions,
    UsageSubscriptions,
)

JSON = dict[str, Any]
RETRY_STATUSES = {429, 500, 502, 503, 504}


class StallAPIError(Exception):
    """Stall answered with an error object: ``status``, ``code``, ``message``, ``param``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(f"{status} {code}: {message}" + (f" ({param})" if param else ""))
        self.status, self.code, self.message, self.param = status, code, message, param


class StallConnectionError(Exception):
    """Stall could not be reached, after every retry."""


class Stall:
    """``Stall(api_key, base_url=...)``. Each POST carries an ``Idempotency-Key`` (one you pass,
    or a new UUID) kept across its retries, so a retried request is applied once."""

    def __init__(self, api_key: str, *, base_url: str = "http://127.0.0.1:8000", timeout: float = 30.0,
                 max_retries: int = 3, backoff: float = 0.5, transport: httpx.BaseTransport | None = None):
        self.max_retries = max_retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "stall-client-python/0.1"},
        )
        self.products = Products(self)
        self.checkouts = Checkouts(self)
        self.orders = Orders(self)
        self.refunds = Refunds(self)
        self.charges = Charges(self)
        self.customers = Customers(self)
        self.events = Events(self)
        self.subscriptions = Subscriptions(self)
        self.meters = Meters(self)
        self.plans = Plans(self)
        self.usage_subscriptions = UsageSubscriptions(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Stall:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: JSON | None = None, params: dict[str, Any] | None = None,
                idempotency_key: str | None = None, files: dict[str, Any] | None = None) -> JSON:
        headers = {}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers, files=files)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise StallConnectionError(str(exc)) from exc
            else:
                if response.status_code < 400:
                    return response.json()
                retryable = response.status_code in RETRY_STATUSES or _key_in_use(response)
                if not retryable or attempt >= self.max_retries:
                    raise _error(response)
            attempt += 1
            time.sleep(self.backoff * 2 ** (attempt - 1))


def _key_in_use(response: httpx.Response) -> bool:
    """A 409 because the first request with this key is still being answered: ask again."""
    if response.status_code != 409:
        return False
    try:
        return response.json()["error"]["code"] == "idempotency_key_in_use"
    except (ValueError, KeyError, TypeError):
        return False


def _error(response: httpx.Response) -> StallAPIError:
    try:
        error = response.json()["error"]
        return StallAPIError(response.status_code, error["code"], error["message"], error.get("param"))
    except (ValueError, KeyError, TypeError):
        return StallAPIError(response.status_code, "http_error", response.text[:200])
