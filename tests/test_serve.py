"""`stall serve` as an operator runs it: a real supervisor, gunicorn and Huey consumer, in
subprocesses, on a free port and a fresh data directory.

On SQLite each server starts from a copy of one database migrated once for this module by the
command `stall serve` itself runs first (migrating from nothing costs seconds of CPU per start).
On PostgreSQL (DATABASE_URL) it is pointed at this test's database, which pytest-django has
migrated and empties again after the test.
"""

import email
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from stall.accounts.models import Buyer
from stall.cli import migrate_command

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90  # seconds: migrating a fresh SQLite database on a busy 2-core machine
STOP_TIMEOUT = 30  # the supervisor's own bound is 20 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str | None:
    """This test's PostgreSQL database as a URL, or None on SQLite (the server makes its own)."""
    if connection.vendor != "postgresql":
        return None
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def server_env(data_dir: Path) -> dict:
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REDIS_URL", "STALL_BASE_URL", "EMAIL_URL"):
        env.pop(name, None)
    if database_url():
        env["DATABASE_URL"] = database_url()
    return env


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """On SQLite, a data directory migrated from nothing by `stall serve`'s own migrate step."""
    if connection.vendor != "sqlite":
        return None
    data_dir = tmp_path_factory.mktemp("template")
    done = subprocess.run(
        migrate_command(), cwd=ROOT, env=server_env(data_dir), capture_output=True, text=True,
        timeout=START_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return data_dir


class Server:
    """`stall serve --workers 2` in a subprocess, its output kept in a file."""

    def __init__(self, tmp_path: Path, template: Path | None):
        self.port = free_port()
        self.mail_dir = tmp_path / "mail"
        self.log = tmp_path / "serve.log"
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        if template is not None:
            shutil.copy(template / "stall.sqlite3", data_dir / "stall.sqlite3")
        env = server_env(data_dir) | {"EMAIL_URL": f"file://{self.mail_dir}"}
        with open(self.log, "wb") as out:
            command = ["-m", "stall.cli", "serve", "--port", str(self.port), "--workers", "2"]
            self.proc = subprocess.Popen(
                [sys.executable, *command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.base = f"http://127.0.0.1:{self.port}"
        self.seen: set[int] = set()
        self.browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, data: dict | None = None):
        body = None if data is None else urllib.parse.urlencode(data).encode()
        return self.browser.open(self.base + path, data=body, timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                f"stall serve exited with {self.proc.returncode}:\n{self.output()}"
            )
            try:
                if self.get("/healthz").status == 200 and len(self.processes()) == 4:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"stall serve was not ready within {START_TIMEOUT} s:\n{self.output()}")

    def processes(self) -> dict[int, str]:
        """Every process under the supervisor, with its command line."""
        found = {}
        for pid in descendants(self.proc.pid):
            try:
                found[pid] = command_line(pid)
            except OSError:
                continue
        self.seen |= set(found)
        return found

    def wait_mail(self, timeout: float = 30) -> list[str]:
        """The emails sent, once one is there and written to its end (Django's file backend
        closes each message with a line of 79 dashes)."""
        end = "\n" + "-" * 79 + "\n"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            texts = [p.read_text() for p in sorted(self.mail_dir.glob("*"))]
            if texts and all(t.endswith(end) for t in texts):
                return [m for t in texts for m in t.split(end) if m]
            time.sleep(0.2)
        pytest.fail(f"the task worker sent no email within {timeout:.0f} s:\n{self.output()}")

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stall serve did not exit within {STOP_TIMEOUT} s:\n{self.output()}")

    def kill(self) -> None:
        """Leave nothing behind, whatever the test did (even orphans of a dead supervisor)."""
        self.processes()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.seen:
            try:
                if running(pid) and "stall" in command_line(pid):  # not a pid reused meanwhile
                    os.kill(pid, signal.SIGKILL)
            except OSError:  # gone meanwhile
                continue


def left_running(pids, within: float = 5.0) -> list[int]:
    """Those of ``pids`` still running after ``within`` seconds (a bounded wait for reaping)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if running(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if running(pid)]


@pytest.fixture
def server(transactional_db, tmp_path, template):
    started = Server(tmp_path, template)
    try:
        started.wait_ready()
        yield started
    finally:
        started.kill()


def roles(processes: dict[int, str]) -> list[str]:
    names = []
    for line in processes.values():
        if "gunicorn" in line:
            names.append("gunicorn")
        elif "stall.cli worker" in line:
            names.append("task worker")
        else:
            names.append(line)
    return sorted(names)


def test_serve_answers_runs_tasks_and_stops_cleanly_on_sigterm(server):
    """`stall serve` runs migrate, answers /healthz from gunicorn (a master and two workers), runs
    a task in its Huey consumer — the library's sign-in email, whose link then signs the buyer
    in — and on SIGTERM stops every process it started before it exits 0 itself."""
    processes = server.processes()
    assert roles(processes) == ["gunicorn", "gunicorn", "gunicorn", "task worker"]
    health = json.loads(server.get("/healthz").read())
    assert (health["status"], health["database"], health["queue"]) == ("ok", "ok", "ok")

    page = server.get("/library/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    sent = server.get("/library/", {"csrfmiddlewaretoken": token, "email": "fan@example.com"})
    assert sent.status == 200

    mails = server.wait_mail()
    assert len(mails) == 1
    message = email.message_from_string(mails[0])
    assert message["To"] == "fan@example.com"
    assert message["Subject"] == "Your library"
    text = (
        next(p for p in message.walk() if p.get_content_type() == "text/plain")
        .get_payload(decode=True)
        .decode()
    )
    link = re.search(rf"{re.escape(server.base)}(/library/enter/\S+)", text).group(1)
    library = server.get(link)
    assert library.url == f"{server.base}/library/"
    assert "fan@example.com" in library.read().decode()
    if database_url():  # on PostgreSQL the server wrote to this test's database
        assert list(Buyer.objects.values_list("email", flat=True)) == ["fan@example.com"]

    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    # Already gone when `stall serve` exits, not a moment later: whoever restarts it (systemd, a
    # shell loop) may then bind the port again at once.
    assert [pid for pid in processes if running(pid)] == []
    assert "stopping the rest" not in server.output()  # no child had died before the stop


def test_a_dead_task_worker_stops_the_server_with_an_error(server):
    """When the Huey consumer dies (killed here), the supervisor stops gunicorn too, says which
    process stopped, and exits non-zero (128 + the signal), leaving nothing running."""
    processes = server.processes()
    consumer = next(pid for pid, line in processes.items() if "stall.cli worker" in line)
    os.kill(consumer, signal.SIGKILL)
    assert server.wait_exit() == 128 + signal.SIGKILL
    assert left_running(processes) == []
    assert "stall: the task worker stopped (exit -9); stopping the rest." in server.output()


def test_a_killed_supervisor_leaves_no_server_or_worker_running(server):
    """Even a supervisor killed outright (SIGKILL, no chance to stop anything) takes gunicorn and
    the Huey consumer with it: they are told when their parent dies."""
    processes = server.processes()
    server.proc.kill()
    server.proc.wait()
    assert left_running(processes, within=STOP_TIMEOUT) == []
