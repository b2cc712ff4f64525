"""The web workers share the connections (stall.ops.webworker), tried on a real gunicorn."""

import http.client
import socket
import subprocess
import sys
import time
from argparse import Namespace
from collections import Counter

from stall.cli import web_command
from stall.ops.webworker import ACCEPT_DELAY_MAX, accept_delay

APP = '''
import os

def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_holding_more_connections_than_threads_lets_the_others_accept_first():
    assert accept_delay(0, workers=2, threads=4) == accept_delay(4, workers=2, threads=4) == 0
    assert 0 < accept_delay(5, workers=2, threads=4) < accept_delay(9, workers=2, threads=4) <= ACCEPT_DELAY_MAX
    assert accept_delay(1000, workers=2, threads=4) == ACCEPT_DELAY_MAX
    assert accept_delay(9, workers=1, threads=4) == 0  # alone, it has nobody to wait for


def test_connections_opened_one_after_another_are_spread_over_the_workers(tmp_path):
    # Browsers arriving at an idle server, one after the other, each keeping its connection: with
    # gunicorn's own gthread worker every one of them lands on the same worker.
    (tmp_path / "pidapp.py").write_text(APP)
    # Each worker leaves a file once it is set up; its next step is the loop that polls the socket.
    (tmp_path / "conf.py").write_text(
        "def post_worker_init(worker):\n"
        f"    open({str(tmp_path)!r} + f'/ready-{{worker.pid}}', 'w').close()\n"
    )
    port = free_port()
    server = subprocess.Popen([
        sys.executable, "-m", "gunicorn", "pidapp:app", "--pythonpath", str(tmp_path), "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--threads", "2", "--worker-class", "stall.ops.webworker.BalancedThreadWorker",
        "--keep-alive", "30", "--log-level", "warning", "--config", str(tmp_path / "conf.py"),
    ])
    connections = []
    try:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("ready-*"))) < 2:
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn's workers did not start"
            time.sleep(0.05)
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
