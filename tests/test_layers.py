"""The layers in .importlinter hold, and no module hides a cross-app import inside a function.

import-linter sees an import wherever it is written, so a function-level import that points up a
layer fails its contract too; this test adds the rule that even a downward cross-app import sits
at the top of the module, where a reader sees what the module depends on. One place must import
late and is allowed to: ``AppConfig.ready`` (models cannot be imported while apps load; it is
where upper apps register their handlers with lower ones). The command line's Django commands
live in ``stall.commands``, which sets Django up before its top-level imports.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stall"
ALLOWED = {("apps.py", "ready")}


def _app_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def function_level_cross_app_imports(source: str, path: Path) -> list[str]:
    """The cross-app imports written inside functions of one module, as "file:line module"."""
    app = _app_of(path)
    found = []

    def visit(node, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name if function is None else function)
                continue
            if function is not None and isinstance(child, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                for module in modules:
                    if isinstance(child, ast.ImportFrom) and child.level:
                        continue  # relative: the same app
                    if module.startswith("stall.") and module.split(".")[1] != app:
                        if (path.name, function) not in ALLOWED and (path.name, "*") not in ALLOWED:
                            found.append(f"{path.relative_to(ROOT)}:{child.lineno} {module}")
            visit(child, function)

    visit(ast.parse(source), None)
    return found


def test_no_function_level_cross_app_imports():
    """No module outside AppConfig.ready and the command line imports another app inside a function."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tests" in path.relative_to(PACKAGE).parts:
            continue
        offenders += function_level_cross_app_imports(path.read_text(), path)
    assert offenders == []


def test_the_check_finds_a_hidden_import():
    """The check itself catches an upward import tucked into a function (so the test above can fail)."""
    source = "def pay():\n    from stall.orders.services import order_create_for_checkout\n"
    assert function_level_cross_app_imports(source, PACKAGE / "payments" / "services.py") == [
        "stall/payments/services.py:2 stall.orders.services"
    ]
    assert function_level_cross_app_imports("def f():\n    from .models import X\n", PACKAGE / "payments" / "x.py") == []


def test_import_contracts_hold():
    """lint-imports keeps every contract in .importlinter (the map of the layers)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), ".importlinter"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
