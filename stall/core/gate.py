"""One request at a time in the application, on SQLite.

A web worker's threads (gunicorn's, or granian's blocking threads) still read requests and send
answers side by side, downloads included, but on SQLite only one of them at a time runs the
application: with four threads in it, the one holding SQLite's write queue took turns on the GIL
with the other three, and every writer of every process waited with it (bench/unlock.py, SQLite,
32 clients: one thread per worker carried 520-576 spends/s, four ungated 347-455). gunicorn's
workers get the gate from ``stall.ops.webworker.BalancedThreadWorker``; granian's serve
``stall.wsgi:gated_application``."""

from __future__ import annotations

import threading

from django.conf import settings
from django.db import connections

# How long a request waits for the gate before it goes in anyway: a spend is in the app for a few
# milliseconds, so only a slow one (an upload read from a slow client, a call to a payment
# provider, a long export) keeps the others out longer, and then not for more than this.
GATE_WAIT = 0.025


class AppGate:
    """A WSGI application that lets one request in at a time, or one more once a request has
    waited ``wait`` seconds. The gate opens when the application returns its answer, so the body
    (a FileResponse's file, say) is sent with the gate open."""

    def __init__(self, app, *, wait: float = GATE_WAIT):
        self.app = app
        self.wait = wait
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        held = self._lock.acquire(timeout=self.wait)
        try:
            return self.app(environ, start_response)
        finally:
            if held:
                self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


def gated(app, vendor: str | None):
    """The worker's application: behind the gate on SQLite, where one writer goes at a time
    anyway. On PostgreSQL a thread waiting for its commit leaves the CPU to the others, and the
    gate made spends slower (bench/unlock.py, 32 clients: 215-216 spends/s against 228-262)."""
    return AppGate(app) if vendor == "sqlite" else app


def database_vendor() -> str | None:
    """The default database's vendor, once the application has configured Django (None for an
    application that does not use it)."""
    if not settings.configured or "default" not in settings.DATABASES:
        return None
    return connections["default"].vendor
