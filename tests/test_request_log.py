"""One JSON line per request (STALL_LOG_FORMAT=json) with the request's id, store, status and
duration; the id taken from X-Request-ID or made, and returned in it."""

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stall.core.logjson import JsonFormatter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def request_lines():
    """The request logger's lines, through the JSON formatter, as dicts."""
    logger = logging.getLogger("stall.request")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_request_is_one_json_line_with_its_store_and_the_callers_id(client, store, request_lines):
    response = client.get(f"/s/{store.slug}/", headers={"X-Request-ID": "lb-7f3a.42"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "lb-7f3a.42"
    [line] = request_lines()
    assert line["request_id"] == "lb-7f3a.42"
    assert {k: line[k] for k in ("method", "path", "store", "status", "remote_addr", "logger", "level")} == {
        "method": "GET", "path": f"/s/{store.slug}/", "store": store.slug, "status": 200,
        "remote_addr": "203.0.113.9", "logger": "stall.request", "level": "INFO",
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"].endswith("+00:00")


@pytest.mark.django_db
def test_an_id_is_made_when_none_or_a_bad_one_is_sent(client, request_lines):
    sent = [None, "has spaces", "new\nline", "x" * 129, ""]
    ids = []
    for value in sent:
        headers = {} if value is None else {"X-Request-ID": value}
        response = client.get("/no-such-page/", headers=headers)
        assert response.status_code == 404
        ids.append(response.headers["X-Request-ID"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    lines = request_lines()
    assert [line["request_id"] for line in lines] == ids
    assert all(line["store"] is None and line["status"] == 404 for line in lines)


@pytest.mark.django_db
def test_behind_a_proxy_the_address_is_the_one_the_proxy_added(client, settings, request_lines):
    forwarded = {"X-Forwarded-For": "198.51.100.1, 192.0.2.77"}
    client.get("/healthz", headers=forwarded, REMOTE_ADDR="10.0.0.2")
    settings.STALL_BEHIND_PROXY = True
    client.get("/healthz", headers=forwarded, REMOTE_ADDR="10.0.0.2")
    assert [line["remote_addr"] for line in request_lines()] == ["10.0.0.2", "192.0.2.77"]


def test_an_exception_is_one_json_object_too():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed here" and "ValueError: boom" in line["exception"]


def django_process(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    """A fresh process configured from the environment alone, answering one request."""
    env = {**os.environ, "STALL_DATA_DIR": str(tmp_path), **env}
    env.pop("DATABASE_URL", None)
    code = (
        "import django; django.setup(); from django.test import Client; "
        "print(Client(SERVER_NAME='127.0.0.1').get('/healthz', headers={'X-Request-ID': 'abc'}).status_code)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_setting_switches_the_format_and_plain_stays_the_default(tmp_path):
    as_json = django_process(tmp_path, {"STALL_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "stall.settings"})
    assert as_json.returncode == 0 and as_json.stdout.strip() == "200", as_json.stderr
    lines = [json.loads(line) for line in as_json.stderr.splitlines()]  # every line is JSON
    assert [(x["path"], x["status"], x["request_id"]) for x in lines if x["logger"] == "stall.request"] == [
        ("/healthz", 200, "abc")
    ]
    plain = django_process(tmp_path, {"DJANGO_SETTINGS_MODULE": "stall.settings"})
    assert plain.returncode == 0 and "/healthz" not in plain.stderr, plain.stderr
    wrong = django_process(tmp_path, {"STALL_LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "stall.settings"})
    assert wrong.returncode != 0 and "STALL_LOG_FORMAT is plain or json" in wrong.stderr
