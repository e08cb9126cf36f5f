"""What the monitor's drift checks compare with (``core.monitoring.drift``): each model
feature's distribution over the deployed fit's training rows, saved by the training run
as ``drift_reference.json``: decile edges with bin shares (PSI), 101 quantiles with the
training CDF at each (KS)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

LEVELS = np.linspace(0.0, 1.0, 101)
DECILES = np.linspace(0.1, 0.9, 9)


def finite(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return values[np.isfinite(values)]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def feature_reference(values: np.ndarray) -> dict[str, Any]:
    """One feature's reference: decile edges (distinct) and bin shares, 101 quantiles and the
    training CDF at each of them, and the row count."""
    values = finite(values)
    if not len(values):
        return {"rows": 0}
    edges = np.unique(np.quantile(values, DECILES, method="inverted_cdf"))  # data values
    grid = np.quantile(values, LEVELS)
    cdf = np.searchsorted(np.sort(values), grid, side="right") / len(values)
    return {
        "rows": len(values),
        "edges": edges.tolist(),
        "shares": bin_shares(values, edges).tolist(),
        "grid": grid.tolist(),
        "cdf": cdf.tolist(),
    }


def drift_reference(
    rows: pl.DataFrame, features: list[str], importance: dict[str, float], window: list[str]
) -> dict[str, Any]:
    """The reference a training run saves: per numeric feature, over the training rows."""
    numeric = [f for f in features if rows.schema[f].is_numeric()]
    return {
        "window": window,
        "importance": dict(sorted(importance.items(), key=lambda kv: -kv[1])),
        "features": {f: feature_reference(rows[f].to_numpy()) for f in numeric},
    }
