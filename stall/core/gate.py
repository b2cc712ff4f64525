"""One request at a time through Django in each web process, so the threads do not share the GIL.

A web worker runs several threads (gunicorn's gthread) so that a slow client, a download being
sent or a call to Stripe does not hold the whole process. But Python runs one thread at a time,
and threads that are all busy computing take turns: every time a thread lets go of the GIL — at
each SQL statement, at the commit — another one runs for up to the switch interval before it gets
it back. A thread inside a write transaction then holds the database's write lock (one writer at a
time, stall/core/sqlite) for three or four times as long as its own work takes, and every writer
in every process queues behind it. Measured with bench/unlock.py (SQLite, 32 clients, 2 workers):
4 threads a worker, 236 one-click spends/s, p99 224 ms; 1 thread a worker, 379/s, p99 115 ms;
4 threads with this gate, 332/s — the threads kept for what they are for.

The gate is a lock taken around the application call: the request's parsing, its middleware, its
view and building the response. What comes after — sending the body, a file streamed in blocks
— runs outside it, as do the server's own reading of slow clients. A request that has waited
``STALL_WEB_GATE_MS`` (50 ms by default) runs anyway without it, so one request waiting on a slow
outside service (a payment provider, a mail server) never holds the others for longer than that;
``STALL_WEB_GATE_MS=0`` turns the gate off.
"""

from __future__ import annotations

import threading


class Gate:
    """A WSGI wrapper: ``application`` called under a per-process lock, waited for at most ``wait_ms``."""

    def __init__(self, application, *, wait_ms: int):
        self.application = application
        self.wait = wait_ms / 1000
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self.wait <= 0:
            return self.application(environ, start_response)
        held = self.lock.acquire(timeout=self.wait)
        try:
            return self.application(environ, start_response)
        finally:
            if held:
                self.lock.release()
