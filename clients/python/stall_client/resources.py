"""The API's resources. Each method sends one request and returns the JSON object Stall answers
(a ``dict``); lists return Stall's list object (``data``, ``has_more``) or iterate every page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Stall

JSON = dict[str, Any]


class Resource:
    path = ""

    def __init__(self, client: Stall):
        self._client = client

    def _post(self, path: str, body: JSON | None = None, idempotency_key: str | None = None) -> JSON:
        return self._client.request("POST", path, json=body or {}, idempotency_key=idempotency_key)

    def _get(self, path: str, **params: Any) -> JSON:
        return self._client.request("GET", path, params=params)


class _Listable(Resource):
    def list(self, *, limit: int = 10, starting_after: str | None = None, **filters: Any) -> JSON:
        return self._get(self.path, limit=limit, starting_after=starting_after, **filters)

    def iterate(self, **filters: Any) -> Iterator[JSON]:
        """Every object, newest first, page after page."""
        after = None
        while True:
            page = self.list(limit=100, starting_after=after, **filters)
            yield from page["data"]
            if not page["has_more"] or not page["data"]:
                return
            after = page["data"][-1]["id"]

    def retrieve(self, id: str) -> JSON:
        return self._get(f"{self.path}/{id}")


class Products(_Listable):
    path = "/products"

    def create(self, *, name: str, amount: int, idempotency_key: str | None = None, **fields: Any) -> JSON:
        return self._post(self.path, {"name": name, "amount": amount, **fields}, idempotency_key)

    def update(self, id: str, **fields: Any) -> JSON:
        return self._post(f"{self.path}/{id}", fields)

    def archive(self, id: str) -> JSON:
        return self._post(f"{self.path}/{id}/archive")

    def upload_file(self, id: str, *, filename: str, content: bytes, content_type: str = "application/octet-stream",
                    idempotency_key: str | None = None) -> JSON:
        """A file buyers download after paying (a product is published once it has one)."""
        return self._client.request("POST", f"{self.path}/{id}/files", files={"file": (filename, content, content_type)},
                                    idempotency_key=idempotency_key)


class Checkouts(Resource):
    path = "/checkouts"

    def create(self, *, idempotency_key: str | None = None, **fields: Any) -> JSON:
        return self._post(self.path, fields, idempotency_key)

    def retrieve(self, id: str) -> JSON:
        return self._get(f"{self.path}/{id}")

    def confirm(self, id: str, *, payment_method: str, idempotency_key: str | None = None, **fields: Any) -> JSON:
        return self._post(f"{self.path}/{id}/confirm", {"payment_method": payment_method, **fields}, idempotency_key)


class Orders(_Listable):
    path = "/orders"


class Refunds(_Listable):
    path = "/refunds"

    def create(self, *, order: str, amount: int | None = None, idempotency_key: str | None = None, **fields: Any) -> JSON:
        body = {"order": order, **fields}
        if amount is not None:
            body["amount"] = amount
        return self._post(self.path, body, idempotency_key)


class Charges(_Listable):
    path = "/charges"

    def create(self, *, customer: str, amount: int, currency: str, description: str = "",
               idempotency_key: str | None = None) -> JSON:
        """Charge a customer's wallet under the allowance they gave the store."""
        return self._post(self.path, {"customer": customer, "amount": amount, "currency": currency,
                                      "description": description}, idempotency_key)


class Customers(_Listable):
    path = "/customers"

    def wallet(self, id: str) -> JSON:
        return self._get(f"{self.path}/{id}/wallet")

    def subscriptions(self, id: str) -> JSON:
        return self._get(f"{self.path}/{id}/subscriptions")

    def usage(self, id: str, *, meter: str | None = None, start: int | str | None = None,
              end: int | str | None = None) -> JSON:
        """Quantities and exact costs per meter over [start, end) (Unix seconds or ISO 8601)."""
        return self._get(f"{self.path}/{id}/usage", meter=meter, **{"from": start, "to": end})


class Subscriptions(_Listable):
    """Memberships."""

    path = "/subscriptions"

    def cancel(self, id: str, **fields: Any) -> JSON:
        return self._post(f"{self.path}/{id}/cancel", fields)

    def pause(self, id: str, *, periods: int = 1) -> JSON:
        return self._post(f"{self.path}/{id}/pause", {"periods": periods})

    def resume(self, id: str) -> JSON:
        return self._post(f"{self.path}/{id}/resume")


class Meters(_Listable):
    path = "/meters"

    def create(self, *, key: str, name: str, event_name: str, aggregation: str = "count", property: str = "",
               filters: dict[str, Any] | None = None) -> JSON:
        return self._post(self.path, {"key": key, "name": name, "event_name": event_name, "aggregation": aggregation,
                                      "property": property, "filters": filters or {}})

    def update(self, id: str, **fields: Any) -> JSON:
        return self._post(f"{self.path}/{id}", fields)


class Plans(_Listable):
    path = "/plans"

    def create(self, *, name: str, prices: list[JSON], fixed_fee: int = 0) -> JSON:
        """``prices``: ``{"meter": "api_calls", "unit_price": "0.2"}`` (minor units, as text), or
        ``model="tiered"`` with ``tiers``, or ``model="package"`` with ``package_size``."""
        return self._post(self.path, {"name": name, "prices": prices, "fixed_fee": fixed_fee})

    def update(self, id: str, **fields: Any) -> JSON:
        return self._post(f"{self.path}/{id}", fields)


class UsageSubscriptions(_Listable):
    path = "/usage_subscriptions"

    def create(self, *, customer: str, plan: str, billing: str = "live", threshold: int = 100) -> JSON:
        return self._post(self.path, {"customer": customer, "plan": plan, "billing": billing, "threshold": threshold})

    def cancel(self, id: str) -> JSON:
        return self._post(f"{self.path}/{id}/cancel")

    def retry(self, id: str) -> JSON:
        return self._post(f"{self.path}/{id}/retry")
