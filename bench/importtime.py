"""Read `python -X importtime` output: total, heaviest packages, and which dcim module pulls each.

    python -X importtime -m dcim --help 2> imports.txt
    python bench/importtime.py imports.txt
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


@dataclass
class Node:
    """One imported module: self and cumulative microseconds, and what it imported first."""

    name: str
    self_us: int
    cum_us: int
    children: list[Node] = field(default_factory=list)


def parse(text: str) -> list[Node]:
    """The import forest, roots in order (the output is post-order, indented by depth)."""
    pending: dict[int, list[Node]] = {}
    roots: list[Node] = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        depth = (len(m[3]) - 1) // 2
        node = Node(m[4], int(m[1]), int(m[2]), pending.pop(depth + 1, []))
        if depth == 0:
            roots.append(node)
        else:
            pending.setdefault(depth, []).append(node)
    return roots


def top_package(name: str) -> str:
    """The distribution-level package of a module name."""
    return name.split(".")[0]


def third_party(roots: list[Node], own: str = "dcim") -> dict[str, tuple[int, str]]:
    """Package -> (microseconds, the dcim module or root that first imported it).

    Counts each package where it is entered from outside itself, so a package imported inside
    another third-party package is charged to that one (rich inside typer is typer's cost).
    """
    out: dict[str, tuple[int, str]] = {}

    def visit(node: Node, importer: str) -> None:
        pkg = top_package(node.name)
        if pkg == own:
            for child in node.children:
                visit(child, node.name)
            return
        us, by = out.get(pkg, (0, importer))
        out[pkg] = (us + node.cum_us, by)

    for root in roots:
        visit(root, "(a function-level import or start-up)")
    return out


def own_modules(roots: list[Node], own: str = "dcim") -> list[tuple[str, int]]:
    """dcim modules by self time (their own top-level code, not what they import)."""
    out: list[tuple[str, int]] = []

    def visit(node: Node) -> None:
        if top_package(node.name) == own:
            out.append((node.name, node.self_us))
        for child in node.children:
            visit(child)

    for root in roots:
        visit(root)
    return sorted(out, key=lambda x: -x[1])


def report(path: Path, top: int = 12) -> dict[str, object]:
    """Total import time, the heaviest packages and dcim's own modules."""
    roots = parse(path.read_text())
    total = sum(r.cum_us for r in roots)
    packages = sorted(third_party(roots).items(), key=lambda kv: -kv[1][0])
    return {"total_ms": total / 1000,
            "packages": [{"package": p, "ms": us / 1000, "imported_by": by}
                         for p, (us, by) in packages[:top]],
            "own": [{"module": m, "ms": us / 1000} for m, us in own_modules(roots)[:top]]}


def main() -> None:
    """Print the report of each file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for path in args.files:
        r = report(path, args.top)
        print(f"{path.name}: {r['total_ms']:.0f} ms of imports")
        for p in r["packages"]:  # type: ignore[attr-defined]
            print(f"  {p['ms']:7.1f} ms  {p['package']:22} first imported by {p['imported_by']}")
        print("  dcim's own modules (self time):")
        for m in r["own"]:  # type: ignore[attr-defined]
            print(f"  {m['ms']:7.1f} ms  {m['module']}")


if __name__ == "__main__":
    main()
