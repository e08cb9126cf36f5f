"""Feature drift: each model feature's recent distribution against its training window.

The training run saves a reference per feature (``core.modeling.drift_reference``,
``drift_reference.json`` in the run folder): decile bin edges with the share of training rows in each bin (for PSI), and the quantiles
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

from core.modeling.drift_reference import bin_shares, finite

FLOOR = 1e-4  # share floor inside PSI's logarithm


def psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a feature reference."""
    expected = np.maximum(np.asarray(reference["shares"]), FLOOR)
    actual = np.maximum(bin_shares(finite(values), np.asarray(reference["edges"])), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(reference: dict[str, Any], values: np.ndarray) -> float:
    """Two-sample KS statistic at the reference's 101 quantiles."""
    values = np.sort(finite(values))
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
