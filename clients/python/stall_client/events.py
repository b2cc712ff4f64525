"""Usage events: sent in batches of at most 1,000, each batch retried with the same event ids
and the same Idempotency-Key, so nothing is counted twice however often it is sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Stall

BATCH_MAX = 1000


@dataclass(frozen=True)
class EventResult:
    id: str
    status: str  # accepted, duplicate or refused
    error: dict[str, Any] | None = None


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    results: list[EventResult] = field(default_factory=list)

    @property
    def refusals(self) -> list[EventResult]:
        return [r for r in self.results if r.status == "refused"]


def event(*, customer: str, name: str, properties: dict[str, Any] | None = None, id: str | None = None,
          timestamp: datetime | None = None) -> dict[str, Any]:
    """One event, with a new id and the current time unless given."""
    return {"id": id or str(uuid.uuid4()), "customer": customer, "name": name,
            "timestamp": (timestamp or datetime.now(tz=UTC)).isoformat(), "properties": properties or {}}


class Events:
    def __init__(self, client: Stall):
        self._client = client

    def send(self, events: Iterable[dict[str, Any]], *, batch_size: int = BATCH_MAX) -> BatchResult:
        """Send any number of events in batches of ``batch_size`` (at most 1,000). An event
        without an ``id`` or ``timestamp`` is given one first, so its retries carry the same."""
        if not 1 <= batch_size <= BATCH_MAX:
            raise ValueError(f"batch_size must be 1 to {BATCH_MAX}")
        total = BatchResult()
        batch: list[dict[str, Any]] = []
        for raw in events:
            item = dict(raw)
            item.setdefault("id", str(uuid.uuid4()))
            item.setdefault("timestamp", datetime.now(tz=UTC).isoformat())
            batch.append(item)
            if len(batch) == batch_size:
                self._send(batch, total)
                batch = []
        if batch:
            self._send(batch, total)
        return total

    def _send(self, batch: list[dict[str, Any]], total: BatchResult) -> None:
        key = f"events-{uuid.uuid4()}"  # kept across this batch's retries (Stall.request)
        out = self._client.request("POST", "/events", json={"events": batch}, idempotency_key=key)
        total.accepted += out["accepted"]
        total.duplicates += out["duplicates"]
        total.refused += out["refused"]
        total.results += [EventResult(id=r.get("id"), status=r["status"], error=r.get("error")) for r in out["data"]]
