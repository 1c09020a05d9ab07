"""The package's layout: which part of odlkit may import which (read from the source with ast).

Dependencies point one way: ``attacks`` -> ``fl``, ``labs`` on top of everything, ``fl`` never
imports ``board`` or ``attacks``, ``odlkit.board`` needs only numpy + pyserial, and no two
packages import each other (directly or through others). Function-level (lazy) imports count:
they are dependencies too, only later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "odlkit"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from odlkit import fl` imports odlkit.fl
    return out


def _part(module: str) -> str | None:
    """The part of odlkit a module belongs to: ``odlkit.fl.server`` -> ``fl``, ``odlkit.data`` -> ``data``."""
    parts = module.split(".")
    if parts[0] != "odlkit" or len(parts) < 2:
        return None
    return parts[1]


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
KNOWN = {m for m in MODULES} | {m.rpartition(".")[0] for m in MODULES}


def _graph() -> dict[str, set[str]]:
    """Package-level import graph: part -> parts it imports (only names that are odlkit modules)."""
    g: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        src = _part(mod)
        if src is None:
            continue
        for imp in _imports(path):
            if imp not in KNOWN:
                continue
            dst = _part(imp)
            if dst is not None and dst != src:
                g.setdefault(src, set()).add(dst)
    return g


def _reach(g, start) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in g.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_parser_sees_real_imports():
    """The graph is not vacuous: known edges are found (incl. lazy and relative imports)."""
    g = _graph()
    assert "fl" in g["attacks"]  # attacks.experiments imports odlkit.fl inside a function
    assert {"board", "fl", "attacks"} <= g["labs"]
    assert "config" in g["data"]  # `from .config import ...`


def test_no_package_level_import_cycle():
    g = _graph()
    cycles = sorted(p for p in g if p in _reach(g, p))
    assert not cycles, f"these parts of odlkit import themselves through others: {cycles}; graph: {g}"


@pytest.mark.parametrize("part, forbidden", [
    ("fl", {"board", "attacks", "labs"}),
    ("board", {"fl", "attacks", "privacy", "labs", "export", "models", "transfer", "tiny", "pretrain"}),
])
def test_one_way_dependencies(part, forbidden):
    reached = _reach(_graph(), part)
    assert not reached & forbidden, f"odlkit.{part} reaches {sorted(reached & forbidden)}"


def test_nothing_outside_labs_imports_labs():
    g = _graph()
    assert [p for p, dst in g.items() if "labs" in dst] == []


def test_board_needs_only_numpy_and_pyserial():
    third_party = set()
    for mod, path in MODULES.items():
        if _part(mod) == "board":
            third_party |= {i.split(".")[0] for i in _imports(path) if not i.startswith(("odlkit", "__future__"))}
    import sys

    assert third_party - set(sys.stdlib_module_names) <= {"numpy", "serial"}, third_party
