"""No import cycles, and nothing imports upwards: every module of ``core/``, ``tasks/``,
``flows/`` and ``deployments/`` sits in a layer of ``LAYERS`` and imports only from its own
layer or the ones below it. Data flows one way: flows -> tasks -> core.

Imports are read with ``ast``, at module level and inside functions alike (both run);
those under ``if TYPE_CHECKING:`` do not run and do not count. ``from pkg import name``
counts as importing ``pkg.name`` when that is a module, else ``pkg``.

The ground is the issue's list -- config, layout, storage, errors, notify, plots,
tracking -- each a layer of its own, with one change of order: ``core/errors.py`` (the
exception classes and exit codes every layer raises) imports nothing of the project and
is imported by config, layout and storage, so it sits at the very bottom, under
``core/config.py``, rather than after storage. Keeping one layer per ground module (rather
than one ground layer with only the cycle check among them) still catches, say, layout
importing storage at run time.

A module the table does not place fails the test, so a new module gets its layer on
purpose: a folder entry (ending in ``/``) places everything under it; a top-level module
of ``core/`` is listed by itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.factories import ROOT

PACKAGES = ("core", "tasks", "flows", "deployments", "service")

# from the ground up; a module's layer is that of the longest entry its path starts with
LAYERS: list[tuple[str, ...]] = [
    ("core/__init__.py", "core/errors.py", "core/lifeline.py"),
    ("core/config.py",),
    ("core/layout.py",),
    ("core/storage.py", "core/locks.py"),
    ("core/notify.py",),
    ("core/plots.py",),
    ("core/tracking.py",),
    ("core/data/",),
    ("core/features/",),
    # settings: core.config's model checked against the registries of data, features, models;
    # runs and backtests: the folders of a training run and of a backtest (modeling's results)
    ("core/modeling/", "core/settings.py", "core/runs.py", "core/backtests.py"),
    # retention: what prune removes (reads run dates with monitoring's health helpers)
    ("core/monitoring/", "core/retention.py"),
    # forecasts: the read API over what the steps wrote (runs, predictions, monitoring)
    ("core/report/", "core/forecasts.py"),
    ("tasks/",),
    ("flows/", "deployments/", "service/"),
]


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the project's packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer_of(path: Path) -> int | None:
    """The index in LAYERS of a module's file (None: not placed)."""
    relative = path.relative_to(ROOT).as_posix()
    matches = [
        (len(entry), i)
        for i, entries in enumerate(LAYERS)
        for entry in entries
        if relative == entry or (entry.endswith("/") and relative.startswith(entry))
    ]
    return max(matches)[1] if matches else None


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except what sits under ``if TYPE_CHECKING:`` (not its ``else``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import of the module that runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def project_module(dotted: str) -> str | None:  # the deepest project module named
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            found = project_module(target)
            if found is not None and found != name:
                yield found, node.lineno


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}."""
    known = modules()
    edges: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        edges[name] = {}
        for target, line in imports(name, path, known):
            edges[name].setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_module_has_a_layer():
    unplaced = sorted(str(p.relative_to(ROOT)) for p in modules().values() if layer_of(p) is None)
    assert not unplaced, f"place these modules in LAYERS (tests/unit/test_layers.py): {unplaced}"


def test_no_import_cycles():
    edges = graph()
    found = cycles(edges)
    lines = [
        f"{a} -> {b} (line {edges[a][b]})"
        for component in found
        for a in component
        for b in sorted(edges[a])
        if b in component
    ]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_nothing_imports_from_a_higher_layer():
    known, edges = modules(), graph()
    upward = [
        f"{a} -> {b} (line {line})"
        for a, targets in sorted(edges.items())
        for b, line in sorted(targets.items())
        if (la := layer_of(known[a])) is not None
        and (lb := layer_of(known[b])) is not None
        and lb > la
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
