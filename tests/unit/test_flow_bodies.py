"""Flows read as their steps: every ``@flow`` body (docstring left out) stays within 60
lines, the work living in ``core`` and the tasks that wrap it."""

from __future__ import annotations

import ast

from tests.factories import ROOT

LIMIT = 60


def flow_bodies() -> dict[str, int]:
    """``module.function`` -> lines of its body, for every function decorated ``@flow``."""
    found = {}
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = {
                (d.func if isinstance(d, ast.Call) else d).id  # type: ignore[union-attr]
                for d in node.decorator_list
                if isinstance(d.func if isinstance(d, ast.Call) else d, ast.Name)
            }
            if "flow" not in names:
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            found[f"{path.stem}.{node.name}"] = (body[-1].end_lineno or 0) - body[0].lineno + 1
    return found


def test_every_flow_body_is_short():
    bodies = flow_bodies()
    assert {"backtest.backtest", "train.train", "tune.tune", "predict.predict"} <= set(bodies)
    long = {name: n for name, n in bodies.items() if n > LIMIT}
    assert not long, f"flow bodies over {LIMIT} lines (move the work into core or a task): {long}"
