"""The test suite's own layout: tests/unit starts nothing, tests/live runs real parts, helpers live
in tests/support, and no test module imports another (or conftest)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = {p.stem for p in (TESTS / "support").glob("*.py")} - {"__init__"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_test_module_imports_another_or_a_helper_by_a_bare_name() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top.startswith("test_") or top == "conftest" or top in SUPPORT:
                offenders.append(f"{path.relative_to(TESTS)}: imports {name}")
    assert not offenders, "\n".join(offenders)


SERVER_FIXTURES = {"snmpd", "mosquitto", "victoria_metrics", "webhook", "promtool"}
LIVE_MODULES = {"support.servers", "support.daemon_process", "support.modbus_server",
                "support.registry", "dcim.sim.child"}


def test_unit_tests_start_no_server() -> None:
    """Server fixtures, server helpers and child processes belong to tests/live."""
    offenders = []
    for path in sorted((TESTS / "unit").glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        offenders += [f"{path.name}: imports {m}" for m in _imports(path) & LIVE_MODULES]
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args:
                    name = arg.arg
                    if name in SERVER_FIXTURES or name.endswith(("_factory", "_session")):
                        offenders.append(f"{path.name}:{node.lineno} uses fixture {name}")
    assert not offenders, "\n".join(offenders)


def test_every_test_module_is_in_unit_or_live() -> None:
    stray = [p.name for p in TESTS.glob("test_*.py")]
    assert not stray, f"put these under tests/unit or tests/live: {stray}"
