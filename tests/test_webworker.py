"""The web workers share the connections and, on SQLite, the application (stall.ops.webworker),
tried on a real gunicorn."""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from argparse import Namespace
from collections import Counter
from pathlib import Path

import pytest

from stall.cli import web_command
from stall.core.gate import AppGate, gated
from stall.ops.webworker import ACCEPT_DELAY_MAX, accept_delay

APP = '''
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

# A Django-configured app that answers how many of its requests were inside it at once, at most.
GATE_APP = '''
import threading, time
import django
from django.conf import settings

settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.%s", "NAME": "unused"}})
django.setup()
inside, most, lock = 0, 0, threading.Lock()

def app(environ, start_response):
    global inside, most
    with lock:
        inside += 1
        most = max(most, inside)
    time.sleep(0.3)
    with lock:
        inside -= 1
    body = str(most).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(tmp_path, source: str, *, workers: int, threads: int, gate_wait: float | None = None):
    """A real gunicorn on ``source``'s ``app`` with Stall's worker, once every worker is set up."""
    (tmp_path / "testapp.py").write_text(source)
    # Each worker leaves a file once it is set up; its next step is the loop that polls the socket.
    (tmp_path / "conf.py").write_text(
        "def post_worker_init(worker):\n"
        f"    open({str(tmp_path)!r} + f'/ready-{{worker.pid}}', 'w').close()\n"
        + (f"    if hasattr(worker.wsgi, 'wait'):\n        worker.wsgi.wait = {gate_wait}\n" if gate_wait else "")
    )
    port = free_port()
    server = subprocess.Popen([
        sys.executable, "-m", "gunicorn", "testapp:app", "--pythonpath", str(tmp_path), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--worker-class", "stall.ops.webworker.BalancedThreadWorker",
        "--keep-alive", "30", "--log-level", "warning", "--config", str(tmp_path / "conf.py"),
    ])
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("ready-*"))) < workers:
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise AssertionError("gunicorn's workers did not start")
        time.sleep(0.05)
    return server, port


def test_a_worker_holding_more_connections_than_threads_lets_the_others_accept_first():
    assert accept_delay(0, workers=2, threads=4) == accept_delay(4, workers=2, threads=4) == 0
    assert 0 < accept_delay(5, workers=2, threads=4) < accept_delay(9, workers=2, threads=4) <= ACCEPT_DELAY_MAX
    assert accept_delay(1000, workers=2, threads=4) == ACCEPT_DELAY_MAX
    assert accept_delay(9, workers=1, threads=4) == 0  # alone, it has nobody to wait for


def test_connections_opened_one_after_another_are_spread_over_the_workers(tmp_path):
    # Browsers arriving at an idle server, one after the other, each keeping its connection: with
    # gunicorn's own gthread worker every one of them lands on the same worker.
    server, port = start_gunicorn(tmp_path, APP, workers=2, threads=2)
    connections = []
    try:
        pids = Counter()
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            pids[conn.getresponse().read().decode()] += 1
            connections.append(conn)  # kept open, as a browser keeps it
        assert len(pids) == 2, pids
        assert min(pids.values()) >= 8, pids
    finally:
        for conn in connections:
            conn.close()
        server.terminate()
        server.wait(timeout=30)


def test_serve_gives_gunicorn_an_access_log_only_when_asked():
    # Any access log file, /dev/null as much as a real one, makes gunicorn build a line for each
    # request; without --access-log the web server gets none, so it builds none.
    args = Namespace(host="127.0.0.1", port=8000, workers=2, threads=4, server="gunicorn", access_log=False)
    assert not any(arg.startswith("--access-log") for arg in web_command(args))
    logged = web_command(Namespace(**{**vars(args), "access_log": True}))
    assert logged[logged.index("--access-logfile") + 1] == "-"


@pytest.mark.parametrize(("engine", "most_inside"), [("sqlite3", "1"), ("postgresql", "2")])
def test_on_sqlite_a_worker_lets_one_request_at_a_time_into_the_app(tmp_path, engine, most_inside):
    # Two requests at once to one worker with two threads, each inside for 0.3 s: on SQLite the
    # second waits at the gate (given a wait longer than that here), on PostgreSQL it goes in.
    server, port = start_gunicorn(tmp_path, GATE_APP % engine, workers=1, threads=2, gate_wait=10)
    answers = []

    def get():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        answers.append(conn.getresponse().read().decode())
        conn.close()

    try:
        clients = [threading.Thread(target=get) for _ in range(2)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=30)
        assert len(answers) == 2
        assert max(answers) == most_inside
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_request_that_waited_long_enough_goes_in_beside_a_slow_one():
    inside, release = threading.Event(), threading.Event()

    def app(environ, start_response):
        if environ["slow"]:
            inside.set()
            release.wait(10)
        return [b"done"]

    gate = AppGate(app, wait=0.05)
    slow = threading.Thread(target=gate, args=({"slow": True}, None))
    slow.start()
    try:
        assert inside.wait(10)
        assert gate({"slow": False}, None) == [b"done"]  # not held until the slow one ends
        assert gate.busy
    finally:
        release.set()
        slow.join(10)
    assert not gate.busy


def test_the_gate_opens_before_the_body_is_sent():
    # A FileResponse's file, or any body iterated after the app returns, goes out with the gate open.
    def app(environ, start_response):
        assert gate.busy
        return iter([b"part one", b"part two"])

    gate = AppGate(app)
    body = gate({}, None)
    assert not gate.busy
    assert list(body) == [b"part one", b"part two"]


def test_an_error_in_the_app_opens_the_gate():
    def app(environ, start_response):
        raise RuntimeError("boom")

    gate = AppGate(app)
    with pytest.raises(RuntimeError):
        gate({}, None)
    assert not gate.busy


def test_only_sqlite_gets_the_gate():
    def app(environ, start_response):
        return []

    assert isinstance(gated(app, "sqlite"), AppGate)
    assert gated(app, "postgresql") is app
    assert gated(app, None) is app


GATED_APPLICATION = (
    "import stall.wsgi as w\n"
    "from stall.core.gate import AppGate\n"
    "g = w.gated_application\n"
    "print(type(g).__name__, isinstance(g, AppGate) and g.app is w.application or g is w.application)\n"
)


@pytest.mark.parametrize(("database_url", "served"), [
    (None, "AppGate True"), ("postgres://someone@db.invalid:5432/shop", "WSGIHandler True"),
])
def test_granian_serves_the_application_behind_the_gate_on_sqlite(tmp_path, database_url, served):
    """granian has no worker class of Stall's: `stall serve --server granian` names the gated
    application of stall.wsgi, which on SQLite lets one of its blocking threads at a time in."""
    args = Namespace(host="127.0.0.1", port=8000, workers=2, threads=4, server="granian", access_log=False)
    assert "stall.wsgi:gated_application" in web_command(args)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(STALL_DATA_DIR=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    if database_url:
        env["DATABASE_URL"] = database_url
    out = subprocess.run([sys.executable, "-c", GATED_APPLICATION], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == served, out.stderr[-2000:]
