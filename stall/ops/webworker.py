"""gunicorn's threaded worker, with new connections spread over the workers.

Every gthread worker polls the one listening socket that gunicorn's master opened. When a
connection arrives the kernel wakes them all, and the one that calls accept() first gets it. On
an idle server that is the same worker every time, and a kept-alive connection stays with the
worker that accepted it: `bench/unlock.py` (32 browsers signing in one after another) found all
32 connections on one of two workers, which ran a whole core while the other sat idle.

Here a worker that already holds connections waits a moment, in proportion to how many it holds,
before it tries to accept; a worker holding fewer gets there first. That is "least connections"
without any state shared between the workers: when every worker holds the same number, they race
as before, and whichever loses is ahead by one the next time. The wait is at most
``ACCEPT_DELAY_MAX`` seconds, spent only by a worker that is already serving others, and not at
all with a single worker."""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

ACCEPT_DELAY_PER_CONNECTION = 0.0002  # seconds of head start per connection held
ACCEPT_DELAY_MAX = 0.003


def accept_delay(connections: int, workers: int) -> float:
    """How long a worker holding ``connections`` lets the others try first."""
    if workers < 2:
        return 0.0
    return min(connections * ACCEPT_DELAY_PER_CONNECTION, ACCEPT_DELAY_MAX)


class BalancedThreadWorker(ThreadWorker):
    def accept(self, listener):
        delay = accept_delay(self.nr_conns, self.cfg.workers)
        if delay:
            # The main thread sleeps without the GIL: the request threads go on meanwhile. If a
            # less busy worker took the connection, accept() finds none and returns.
            time.sleep(delay)
        super().accept(listener)
