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


def database_settings(tmp_path, database_url: str | None) -> dict:
    """DATABASES['default'] as a fresh process builds it from this environment."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(STALL_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
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
    assert named["ENGINE"] == default["ENGINE"] == "django.db.backends.sqlite3"
    assert named["OPTIONS"] == default["OPTIONS"]
    assert named["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;" in named["OPTIONS"]["init_command"]
