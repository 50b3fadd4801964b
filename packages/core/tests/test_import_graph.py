"""The core's modules import each other without circles.

Two rules, checked on the source (``ast``), type-checking-only imports left out:

- at module level, no module imports itself back through others (import order never matters);
- in the recipe and run packages, not even a deferred import (inside a function) closes a circle:
  models, loader, validation and build form a chain, and so do plan, ledger, pipeline and events.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _graph(*, deferred: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        nodes = ast.walk(tree) if deferred else iter(tree.body)
        for node in nodes:
            if getattr(node, "lineno", 0) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.append(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names)
            graph[name].update(t for t in targets if t in modules and t != "dataloader" and t != name)
    return graph


def _cycles(graph: dict[str, set[str]], within: tuple[str, ...] = ()) -> list[list[str]]:
    if within:
        keep = {n for n in graph if n.startswith(within)}
        graph = {n: graph[n] & keep for n in keep}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_level_import_circles():
    assert _cycles(_graph(deferred=False)) == []


def test_the_recipe_and_run_packages_have_no_circles_even_through_deferred_imports():
    assert _cycles(_graph(deferred=True), within=("dataloader.recipe", "dataloader.run")) == []
