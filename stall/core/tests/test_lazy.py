"""Large libraries stay out of a process until it uses them: the Stripe library, httpx and the
Markdown renderer (see core.lazy), and the Redis and PostgreSQL clients Huey's storage would
import for queues not in use (see settings). Each check runs in a fresh interpreter: this one has
imported everything."""

import json
import os
import subprocess
import sys

from django.db import connection

from stall.api import api
from stall.core.api import Error

WATCHED = ["httpx", "markdown_it", "nh3", "psycopg", "redis", "requests", "segno", "stripe"]
# What a web worker and the Huey consumer (run_huey) load at start: every app, URL, view and
# task module.
START = (
    "import django; django.setup()\n"
    "from django.urls import get_resolver; get_resolver().url_patterns\n"
    "from django.utils.module_loading import autodiscover_modules; autodiscover_modules('tasks')\n"
)


def run_fresh(code: str, tmp_path, **env_vars) -> str:
    """The last line ``code`` prints in a fresh interpreter (no REDIS_URL unless given)."""
    env = {**os.environ, "STALL_DATA_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    env.pop("REDIS_URL", None)
    env.update(env_vars)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def loaded_after(code: str, tmp_path) -> list[str]:
    """Which of WATCHED a fresh interpreter has imported after running ``code``."""
    report = f"import sys, json\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    return json.loads(run_fresh(code + report, tmp_path))


def test_a_started_process_holds_no_stripe_httpx_or_unused_database_client(tmp_path):
    """After every app, URL, view and task is loaded, neither the Stripe library nor httpx (nor
    the requests library they bring) is imported, nor segno (QR codes, drawn by two pages), nor
    markdown-it and nh3 (Markdown, rendered by some pages and emails), nor redis without
    REDIS_URL; psycopg only when the database is PostgreSQL."""
    expected = ["psycopg"] if connection.vendor == "postgresql" else []
    assert loaded_after(START, tmp_path) == expected


def test_a_started_process_holds_no_django_test_framework(tmp_path):
    """ninja takes its ``setting_changed`` from ``django.test.signals`` (see core.ninja_setup): after
    every app, URL, view and task is loaded, that module alone is imported, not the test client,
    unittest or jinja2 that its package would bring; the signal is Django's own."""
    code = START + (
        "import sys, json\n"
        "from django.core.signals import setting_changed\n"
        "from ninja.conf import setting_changed as ninjas\n"
        "print(json.dumps([ninjas is setting_changed, 'django.test.signals' in sys.modules]"
        " + [m for m in ('django.test', 'django.test.client', 'unittest', 'jinja2') if m in sys.modules]))"
    )
    assert json.loads(run_fresh(code, tmp_path)) == [True, True]


def test_a_schema_is_built_by_its_first_use_and_validates_as_declared_from_any_thread(tmp_path):
    """Schemas are not built when a process starts (see core.ninja_setup); the first validation
    builds one, also when eight threads make it at once, and each of them gets the schema's own
    rules: the body with an unknown field refused, the good one read, the amount as given."""
    code = START + (
        "import json\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from pydantic import ValidationError\n"
        "from stall.wallets.schemas import GiftCardCreateIn\n"
        "built_at_start = GiftCardCreateIn.__pydantic_complete__\n"
        "def check(i):\n"
        "    try:\n"
        "        GiftCardCreateIn.model_validate({'amount': 500, 'ammount': 5})\n"
        "        return 'accepted'\n"
        "    except ValidationError as e:\n"
        "        refused = [err['type'] for err in e.errors()]\n"
        "    return [refused, GiftCardCreateIn.model_validate({'amount': 500 + i}).amount - i]\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    answers = list(pool.map(check, range(8)))\n"
        "print(json.dumps([built_at_start, answers]))"
    )
    assert json.loads(run_fresh(code, tmp_path)) == [False, [[["extra_forbidden"], 500]] * 8]


def test_operations_answering_with_one_schema_share_one_response_wrapper(client):
    """Every status of every API operation that answers with a given schema class is validated
    by one wrapper model around that class (see core.ninja_setup): one for all the error answers,
    one for each other schema; each wraps the class it was made for."""
    client.get("/healthz")  # the URLconf, so every router is mounted
    operations = [
        operation
        for router in api._get_bound_routers()
        for path_view in router.path_operations.values()
        for operation in path_view.operations
    ]
    wrappers = [
        wrapper
        for operation in operations
        for wrapper in operation.response_models.values()
        if isinstance(wrapper, type)
    ]
    by_schema: dict[type, set[type]] = {}
    for wrapper in wrappers:
        schema = wrapper.model_fields["response"].annotation
        if isinstance(schema, type):
            by_schema.setdefault(schema, set()).add(wrapper)

    assert len([w for w in wrappers if w.model_fields["response"].annotation is Error]) > 300
    assert {schema: len(found) for schema, found in by_schema.items() if len(found) > 1} == {}
    assert len(by_schema) > 20


def test_a_started_process_has_not_read_the_common_passwords(tmp_path):
    """Django's password validators (the common-password one reads 20,000 passwords into memory)
    are made by the first page or check that needs them, not by importing the signup form."""
    code = START + (
        "from django.contrib.auth.password_validation import get_default_password_validators\n"
        "print(get_default_password_validators.cache_info().currsize)"
    )
    assert run_fresh(code, tmp_path) == "0"


def test_the_stripe_library_is_imported_by_its_first_use(tmp_path):
    """The first attribute read through the rail's ``stripe`` imports the library, and the names it
    gives are the library's own."""
    use = (
        "import stripe as real\n"
        "from stall.payments.rails import stripe as stripe_rail\nfrom stall.payments import stripe_services\n"
        "assert stripe_rail.stripe.StripeError is real.StripeError\n"
        "assert stripe_services.stripe.Webhook is real.Webhook\n"
    )
    first_use = "from stall.payments.rails import stripe as stripe_rail\nstripe_rail.stripe.StripeError\n"
    assert "stripe" in loaded_after(START + first_use, tmp_path)
    assert "stripe" in loaded_after(START + use, tmp_path)


def test_with_redis_url_the_queue_is_on_redis(tmp_path):
    """With REDIS_URL set, Huey's storage sees the redis client: the queue is a RedisHuey that
    answers (the client is hidden from Huey only when no Redis is configured)."""
    code = (
        "import django; django.setup()\n"
        "from huey.contrib.djhuey import HUEY\n"
        "print(type(HUEY).__name__, HUEY.pending_count())\n"
    )
    queue = f"stall-test-{os.getpid()}-{tmp_path.name}"  # a queue no one else uses: empty
    answer = run_fresh(code, tmp_path, REDIS_URL="redis://127.0.0.1:6379/15", STALL_QUEUE_NAME=queue)
    assert answer == "RedisHuey 0"
