import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SHOW_DATABASE = (
    "import json, django.conf, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'stall.settings';"
    "db = django.conf.settings.DATABASES['default'];"
    "print(json.dumps({'ENGINE': db['ENGINE'], 'NAME': str(db['NAME']),"
    " 'OPTIONS': db.get('OPTIONS', {})}))"
)


def database_settings(tmp_path, database_url: str | None, **env_vars) -> dict:
    """DATABASES['default'] as a fresh process builds it from this environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STALL_PG_PREPARED")}
    env.update(STALL_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), **env_vars)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    out = subprocess.run(
        [sys.executable, "-c", SHOW_DATABASE], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(out.stdout)


def test_a_sqlite_database_url_gets_the_same_tuning_as_the_default_file(tmp_path):
    """DATABASE_URL=sqlite:////path names that file and keeps WAL, the busy timeout and IMMEDIATE
    transactions, as the default database in the data directory has them (a worker started on
    another SQLite file must queue its writes the same way)."""
    default = database_settings(tmp_path, None)
    named = database_settings(tmp_path, f"sqlite:///{tmp_path}/other.sqlite3")

    assert default["NAME"] == str(tmp_path / "stall.sqlite3")
    assert named["NAME"] == str(tmp_path / "other.sqlite3")
    assert named["ENGINE"] == default["ENGINE"] == "stall.core.sqlite"
    assert named["OPTIONS"] == default["OPTIONS"]
    assert named["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;" in named["OPTIONS"]["init_command"]


def base_url(tmp_path, **env_vars) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("STALL_BASE_URL", "PORT")}
    env.update(STALL_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), DJANGO_SETTINGS_MODULE="stall.settings", **env_vars)
    code = "import django.conf; print(django.conf.settings.BASE_URL)"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def test_links_point_where_stall_serve_listens_unless_told_otherwise(tmp_path):
    """`PORT=8123 make run` prints and emails links to port 8123, as `stall serve` listens there."""
    assert base_url(tmp_path) == "http://127.0.0.1:8000"
    assert base_url(tmp_path, PORT="8123") == "http://127.0.0.1:8123"
    assert base_url(tmp_path, PORT="8123", STALL_BASE_URL="https://shop.example/") == "https://shop.example"


def test_a_postgresql_database_url_runs_on_the_backend_without_like_twins(tmp_path):
    """DATABASE_URL=postgres://… runs on stall.core.postgresql, whose schema editor makes no
    ``varchar_pattern_ops`` twin of each varchar index (stall/core/tests/test_indexes.py)."""
    settings = database_settings(tmp_path, "postgres://someone@db.invalid:5432/shop")
    assert settings["ENGINE"] == "stall.core.postgresql"
    assert settings["NAME"] == "shop"


def test_on_postgresql_statements_are_prepared_unless_turned_off(tmp_path):
    """Values are bound on the server and repeated statements prepared there (the server plans
    them once), except with STALL_PG_PREPARED off, for a pooler in transaction mode that cannot
    keep a prepared statement on the connection that made it."""
    url = "postgres://someone@db.invalid:5432/shop"
    prepared = database_settings(tmp_path, url)["OPTIONS"]
    assert prepared == {"server_side_binding": True, "prepare_threshold": 5}
    assert database_settings(tmp_path, url, STALL_PG_PREPARED="off")["OPTIONS"] == {}


QUEUED_RETRIES = (
    "import json, os, django\n"
    "os.environ['DJANGO_SETTINGS_MODULE'] = 'stall.settings'\n"
    "django.setup()\n"
    "from huey.contrib.djhuey import HUEY\n"
    "from stall.orders.tasks import receipt_send, refund_notice_send\n"
    "from stall.payments.stripe_services import stripe_duplicate_refund\n"
    "from stall.wallets.tasks import auto_top_up_failed_notice, tab_overdue_notice\n"
    "tasks = [receipt_send, refund_notice_send, stripe_duplicate_refund,\n"
    "         auto_top_up_failed_notice, tab_overdue_notice]\n"
    "queued = [HUEY.deserialize_task(HUEY.serialize_task(t.s('x'))) for t in tasks]\n"
    "print(json.dumps([[t.name, t.retries, t.retry_delay] for t in queued]))\n"
)


def test_tasks_with_retries_are_queued_with_the_configured_delay(tmp_path):
    """A process started with STALL_TASK_RETRY_DELAY_SECONDS=7 queues every task that has retries
    with 5 retries 7 s apart (Huey writes both into the task's message); unset, 60 s apart."""
    def queued(delay: str | None):
        env = {k: v for k, v in os.environ.items() if k != "STALL_TASK_RETRY_DELAY_SECONDS"}
        env.update(STALL_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
        if delay is not None:
            env["STALL_TASK_RETRY_DELAY_SECONDS"] = delay
        out = subprocess.run(
            [sys.executable, "-c", QUEUED_RETRIES], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60, check=True,
        )
        return json.loads(out.stdout)

    names = ["receipt_send", "refund_notice_send", "stripe_duplicate_refund",
             "auto_top_up_failed_notice", "tab_overdue_notice"]
    assert queued("7") == [[name, 5, 7] for name in names]
    assert queued(None) == [[name, 5, 60] for name in names]
