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

On SQLite a worker also lets one request at a time into the application (``stall.core.gate``)."""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

from stall.core.gate import database_vendor, gated

ACCEPT_DELAY_PER_CONNECTION = 0.0002  # seconds of head start per connection held
ACCEPT_DELAY_MAX = 0.003


def accept_delay(connections: int, *, workers: int, threads: int) -> float:
    """How long a worker holding ``connections`` lets the others try first."""
    if workers < 2:
        return 0.0
    return min(max(connections - threads, 0) * ACCEPT_DELAY_PER_CONNECTION, ACCEPT_DELAY_MAX)


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
