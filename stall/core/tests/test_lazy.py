"""Large libraries stay out of a process until it uses them: the Stripe library and httpx (see
core.lazy). Each check runs in a fresh interpreter: this one has imported everything."""

import json
import os
import subprocess
import sys

WATCHED = ["httpx", "requests", "stripe"]
# What a web worker and the Huey consumer (run_huey) load at start: every app, URL, view and
# task module.
START = (
    "import django; django.setup()\n"
    "from django.urls import get_resolver; get_resolver().url_patterns\n"
    "from django.utils.module_loading import autodiscover_modules; autodiscover_modules('tasks')\n"
)


def loaded_after(code: str, tmp_path) -> list[str]:
    """Which of WATCHED a fresh interpreter has imported after running ``code``."""
    env = {**os.environ, "STALL_DATA_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "stall.settings"
    env.pop("REDIS_URL", None)
    report = f"import sys, json\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", code + report], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_started_process_holds_no_stripe_or_httpx(tmp_path):
    """After every app, URL, view and task is loaded, neither the Stripe library nor httpx (nor
    the requests library they bring) is imported."""
    assert loaded_after(START, tmp_path) == []


def test_the_stripe_library_is_imported_by_its_first_use(tmp_path):
    """The first attribute read through the rail's ``stripe`` imports the library, and the names it
    gives are the library's own."""
    use = (
        "import stripe as real\n"
        "from stall.payments import stripe_rail, stripe_services\n"
        "assert stripe_rail.stripe.StripeError is real.StripeError\n"
        "assert stripe_services.stripe.Webhook is real.Webhook\n"
    )
    first_use = "from stall.payments import stripe_rail\nstripe_rail.stripe.StripeError\n"
    assert "stripe" in loaded_after(START + first_use, tmp_path)
    assert "stripe" in loaded_after(START + use, tmp_path)
