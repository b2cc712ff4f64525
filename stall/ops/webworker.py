"""gunicorn's threaded worker, with new connections spread over the workers.

Every gthread worker polls the one listening socket that gunicorn's master opened. When a
connection arrives the kernel wakes them all, and the one that calls accept() first gets it. On
an idle server that is the same worker every time, and a kept-alive connection stays with the
worker that accepted it: `bench/unlock.py` (32 browsers signing in one after another) found all
32 connections on one of two workers, which ran a whole core while the other sat idle.

Here a worker that holds more connections than it has threads waits a moment, in proportion to
the excess, before it tries to accept; a worker holding fewer gets there first. That is "least
connections" without any state shared between the workers: when every worker holds the same
number, they race as before, and whichever loses is ahead by one the next time. The wait is at
most ``ACCEPT_DELAY_MAX`` seconds and never comes with a single worker. Counting only the excess
over the threads keeps it off servers whose clients open a connection per request (a proxy with
no upstream keep-alive): there a worker holds about as many connections as requests in flight,
and its main loop, which sleeps here, should not cap how fast it takes new ones.

On SQLite a worker also lets one request at a time into the application (``AppGate``). Its
threads still read requests and send answers meanwhile, downloads included, but they no longer
take turns on the GIL inside Django: with four threads in the app, the one holding SQLite's write
queue was made to wait for the others' Python, and every writer of every process waited with it."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connections
from gunicorn.workers.gthread import ThreadWorker

ACCEPT_DELAY_PER_CONNECTION = 0.0002  # seconds of head start per connection held
ACCEPT_DELAY_MAX = 0.003
# How long a request waits for the gate before it goes in anyway: a spend is in the app for a few
# milliseconds, so only a slow one (an upload read from a slow client, a call to a payment
# provider, a long export) keeps the others out longer, and then not for more than this.
GATE_WAIT = 0.025


def accept_delay(connections: int, *, workers: int, threads: int) -> float:
    """How long a worker holding ``connections`` lets the others try first."""
    if workers < 2:
        return 0.0
    return min(max(connections - threads, 0) * ACCEPT_DELAY_PER_CONNECTION, ACCEPT_DELAY_MAX)


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


class BalancedThreadWorker(ThreadWorker):
    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = gated(self.wsgi, database_vendor())

    def accept(self, listener):
        delay = accept_delay(self.nr_conns, workers=self.cfg.workers, threads=self.cfg.threads)
        if delay:
            # The main thread sleeps without the GIL: the request threads go on meanwhile. If a
            # less busy worker took the connection, accept() finds none and returns.
            time.sleep(delay)
        super().accept(listener)
