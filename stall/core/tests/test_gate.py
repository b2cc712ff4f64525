"""The web process's gate (stall/core/gate.py): one request at a time through the application,
and never held longer than its wait for one that is stuck. That stall.wsgi serves it: tests/test_wsgi.py."""

import threading
import time

from stall.core.gate import Gate


class Recorder:
    """A WSGI app that notes how many calls run at once, each holding for ``hold`` seconds."""

    def __init__(self, hold: float = 0.02):
        self.hold = hold
        self.running = 0
        self.most = 0
        self.guard = threading.Lock()

    def __call__(self, environ, start_response):
        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.hold)
        with self.guard:
            self.running -= 1
        start_response("200 OK", [])
        return [b"ok"]


def call_at_once(app, n: int) -> list[list[bytes]]:
    bodies: list = [None] * n
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        bodies[i] = list(app({}, lambda status, headers: None))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return bodies


def test_requests_in_one_process_go_through_one_at_a_time():
    inner = Recorder(hold=0.02)
    bodies = call_at_once(Gate(inner, wait_ms=5_000), 4)
    assert bodies == [[b"ok"]] * 4
    assert inner.most == 1


def test_a_request_that_waited_long_enough_runs_without_the_gate():
    # The first call holds the gate for 0.5 s (a slow outside service); the others give up
    # waiting after 20 ms and run alongside it instead of queueing behind it.
    inner = Recorder(hold=0.5)
    call_at_once(Gate(inner, wait_ms=20), 3)
    assert inner.most == 3


def test_a_wait_of_zero_turns_the_gate_off():
    inner = Recorder(hold=0.05)
    call_at_once(Gate(inner, wait_ms=0), 3)
    assert inner.most == 3


def test_the_gate_is_released_when_the_application_raises():
    def failing(environ, start_response):
        raise RuntimeError("boom")

    gate = Gate(failing, wait_ms=5_000)
    for _ in range(2):
        try:
            gate({}, lambda status, headers: None)
        except RuntimeError:
            pass
    assert gate.lock.acquire(blocking=False)

