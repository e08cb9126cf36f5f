"""Feature drift: each model feature's recent distribution against its training window.

The training run saves a reference per feature (``drift_reference.json`` in the run folder):
decile bin edges with the share of training rows in each bin (for PSI), and the quantiles
at 101 levels with the training CDF at each (for KS). The monitor compares the last
``drift_days`` trading days of the feature table with it:

- PSI = sum over bins of (a - e) ln(a / e), shares floored at 1e-4; above 0.25 is the usual
  "significant shift" line.
- KS: the two-sample Kolmogorov-Smirnov statistic, max |F_recent - F_train|, evaluated at
  the 101 stored quantiles (a lower bound of the exact statistic, within a percentile).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

LEVELS = np.linspace(0.0, 1.0, 101)
DECILES = np.linspace(0.1, 0.9, 9)
FLOOR = 1e-4  # share floor inside PSI's logarithm


def _finite(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return values[np.isfinite(values)]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def feature_reference(values: np.ndarray) -> dict[str, Any]:
    """One feature's reference: decile edges (distinct) and bin shares, 101 quantiles and the
    training CDF at each of them, and the row count."""
    values = _finite(values)
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


def psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a feature reference."""
    expected = np.maximum(np.asarray(reference["shares"]), FLOOR)
    actual = np.maximum(bin_shares(_finite(values), np.asarray(reference["edges"])), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(reference: dict[str, Any], values: np.ndarray) -> float:
    """Two-sample KS statistic at the reference's 101 quantiles."""
    values = np.sort(_finite(values))
    grid = np.asarray(reference["grid"])
    recent = np.searchsorted(values, grid, side="right") / max(len(values), 1)
    return float(np.max(np.abs(recent - np.asarray(reference["cdf"]))))


def drift_table(
    reference: dict[str, Any], recent: pl.DataFrame, exempt: set[str], top: int, threshold: float
) -> pl.DataFrame:
    """feature, importance rank, psi, ks, rows, exempt, alerting (PSI above ``threshold`` for
    one of the ``top`` most important features that are not exempt), most important first."""
    if not reference["importance"]:  # a model of prices, not features: nothing to watch
        top = 0
    ranked = [f for f in reference["importance"] if f in reference["features"]]
    ranked += sorted(set(reference["features"]) - set(ranked))
    out = []
    watched = 0  # rank among the features that may alert
    for rank, name in enumerate(ranked, start=1):
        ref = reference["features"][name]
        watched += name not in exempt
        if name not in recent.columns or not ref.get("rows"):
            continue
        values = recent[name].to_numpy()
        score = psi(ref, values)
        out.append(
            {
                "feature": name,
                "rank": rank,
                "psi": score,
                "ks": ks(ref, values),
                "rows": int(np.isfinite(values.astype(np.float64)).sum()),
                "exempt": name in exempt,
                "alerting": name not in exempt and watched <= top and score > threshold,
            }
        )
    schema = {
        "feature": pl.String,
        "rank": pl.Int64,
        "psi": pl.Float64,
        "ks": pl.Float64,
        "rows": pl.Int64,
        "exempt": pl.Boolean,
        "alerting": pl.Boolean,
    }
    return pl.DataFrame(out, schema=schema)
