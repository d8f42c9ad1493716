"""The import graph of dcim, read from the source (AST), against the one-way layering.

config -> scheduler -> drivers -> readings -> compute -> snapshot -> sinks (README "Layout"):
sources never import sinks, drivers never import compute or sinks, compute imports no config
and no I/O, nothing imports the tests, and module-level imports have no cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import dcim

ROOT = Path(dcim.__file__).resolve().parent
# Standard modules that do I/O or read clocks: the compute core is handed its inputs and time.
IO_MODULES = {"asyncio", "http", "os", "socket", "sqlite3", "subprocess", "threading", "time",
              "urllib"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, top_level_only: bool = False) -> Iterator[str]:
    """Every module `module` imports (lazy ones inside functions too, unless top_level_only)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes: list[ast.AST] = list(tree.body) if top_level_only else list(ast.walk(tree))
    if top_level_only:
        # module-level imports, without those only for the type checker
        nodes = [n for n in nodes if not (isinstance(n, ast.If) and _is_type_checking(n))]
        nodes += [c for n in list(nodes) if isinstance(n, ast.If | ast.Try) for c in ast.walk(n)]
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}"


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(importers: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module in MODULES:
        if not _in(module, importers):
            continue
        for name in _imports(module):
            if any(_in(name, f) for f in forbidden):
                found.append(f"{module} imports {name}")
    return found


def test_the_graph_is_read() -> None:
    # a guard against a walker that silently finds nothing
    assert "dcim.sinks.mqtt" in MODULES and "dcim.sources.bms" in MODULES
    assert "dcim.mqtt_client" in set(_imports("dcim.sources.bms"))
    assert "dcim.compute.snapshot" in set(_imports("dcim.compute.cooling"))
    assert "dcim.site" in set(_imports("dcim.compute.cooling"))


@pytest.mark.parametrize(("importers", "forbidden"), [
    ("dcim.sources", ("dcim.sinks", "dcim.daemon")),
    ("dcim.drivers", ("dcim.compute", "dcim.sinks", "dcim.sources", "dcim.daemon")),
    ("dcim.compute", ("dcim.config", "dcim.drivers", "dcim.sinks", "dcim.sources", "dcim.daemon",
                      "dcim.snmp", "dcim.sim", "dcim.mqtt_client", *sorted(IO_MODULES))),
    ("dcim.sinks", ("dcim.sources", "dcim.drivers", "dcim.daemon")),
    ("dcim.site", ("dcim.drivers", "dcim.compute", "dcim.sinks", "dcim.sources", "dcim.daemon")),
    ("dcim.config", ("dcim.site", "dcim.drivers", "dcim.compute", "dcim.sinks", "dcim.daemon")),
    ("dcim", ("tests", "support", "conftest")),
])
def test_no_upward_imports(importers: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(importers, forbidden) == []


def test_module_level_imports_have_no_cycle() -> None:
    graph = {m: {n for n in _imports(m, top_level_only=True) if n in MODULES and n != m}
             for m in MODULES}
    # a package imports its own submodules to re-export them; that is not a cycle
    for module, deps in graph.items():
        deps.difference_update({d for d in deps if _in(d, module) and d != module})
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module):], module])
        visiting.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
