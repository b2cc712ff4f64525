"""django-ninja as Stall imports it: without Django's test framework, its schemas built on first use,
one response wrapper per schema class.

ninja's settings module takes ``setting_changed`` from ``django.test.signals`` (the signal lives in
``django.core.signals``; the test module only re-exports it). Importing a submodule runs its
package first, and ``django/test/__init__.py`` imports the test client, ``TestCase``, unittest,
xml.dom and, where installed, jinja2: about 4.4 MB of RSS in every process that imports ninja (both
web workers and the task worker; bench/memory.py), for code that only tests use.

So, before ninja is imported, ``django.test.signals`` alone is loaded from its file under its own
name. It is the very module, not a copy: its receivers are the ones a test run would connect, and a
later ``import django.test`` (pytest) finds it in ``sys.modules`` and uses it. core's AppConfig
module imports this one, and "stall.core" comes before "ninja" in INSTALLED_APPS, so it runs before
Django imports ninja. Remove this part once ninja imports the signal from ``django.core.signals``
(django-ninja pull request #1772).
"""

import importlib.util
import sys
from pathlib import Path

import django


def _test_signals_load_alone() -> None:
    """Load ``django.test.signals`` without its package, unless the package is loaded already."""
    name = "django.test.signals"
    if name in sys.modules or "django.test" in sys.modules:
        return
    path = Path(django.__file__).parent / "test" / "signals.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


_test_signals_load_alone()

import ninja  # noqa: E402  (after the signals module: ninja.conf imports it)
from ninja.operation import Operation  # noqa: E402

# Every schema is built on its first use, not when its class is made. Each process imports them
# all (services and the URLconf name them), and ninja wraps each status an endpoint declares in a
# response schema (fewer since they are shared, below); building them at import took ~5 MB of RSS
# in each web worker, for schemas a worker may never use (an endpoint's 402 or 409 answer). A
# schema's first validation or serialization builds it, once per process, under pydantic's lock
# (thread-safe since pydantic 2.14, hence its floor in pyproject); the OpenAPI document builds what
# it lists. Set on ninja's base class before any schema derives from it: a class takes its config
# from its bases when it is made.
ninja.Schema.model_config["defer_build"] = True


# One response wrapper per response schema, shared by every operation that answers with it. ninja
# wraps each status's schema in a model class of its own (``{"response": schema}``) for every
# operation: ~700 classes for Stall's 172 operations, 603 of them around the one error schema,
# each ~9 KB even unbuilt: ~6 MB of RSS in every web worker (bench/memory.py). A wrapper holds
# nothing of its operation, so one per schema class serves all (and is built once, by its first
# use). Only classes are shared, by identity: typing forms such as ``list[X]`` or unions compare
# by value (``A | B == B | A``), and their order matters to validation and to the document.
_wrap_response = Operation._create_response_model
_response_wrappers: dict[type, type] = {}


def _shared_response_model(operation, response_param):
    if not isinstance(response_param, type):
        return _wrap_response(operation, response_param)
    wrapper = _response_wrappers.get(response_param)
    if wrapper is None:
        wrapper = _response_wrappers[response_param] = _wrap_response(operation, response_param)
    return wrapper


Operation._create_response_model = _shared_response_model
