"""The risk section of a scorecard: every method's VaR and ES (``core.modeling.tail_risk``) at
1, 2.5 and 5 % in both tails, backtested as a risk desk reports them, on the same rows as the
rest of the scorecard (train's held-out period, or a whole backtest).

Per method and tail (long: the return falls below -VaR; short: it rises above VaR):
- the exceedance, with its test clustered by date (the dates are the independent units);
- on every h-th date (non-overlapping outcomes), the per-symbol pass shares of Kupiec's,
  Christoffersen's and Engle and Manganelli's DQ tests, and of Acerbi and Szekely's Z2 for the
  ES, each beside a perfectly calibrated forecaster's (Kupiec exact; DQ and Z2 simulated);
- the pooled Z2 with a date-block bootstrap p-value;
- the Basel traffic light of the 99 % VaR (h = 1 only: per symbol, blocks of 250 dates);
- the mean FZ0 loss of (VaR, ES), with Diebold-Mariano of every method against every other
  on its daily cross-sectional mean;
- the crash months apart: the 99 % VaR's exceptions per symbol in 2020-02 .. 2020-04.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from core.modeling.distribution_scores import (
    clustered_exceedance_test,
    qcols,
    reference_pass_share,
)
from core.modeling.metrics import christoffersen, daily_losses, kupiec, pairwise_dm
from core.modeling.risk_backtests import (
    BASEL_DATES,
    BASEL_LEVEL,
    Z2_THRESHOLD,
    dq_of_hits,
    dq_reference_pass_share,
    fz0_loss,
    traffic_light,
    z2,
    z2_block_bootstrap,
    z2_reference_pass_share,
)
from core.modeling.tail_risk import RISK_ALPHAS, risk_alphas, risk_columns

PASS_LEVEL = 0.05
Z2_BLOCK_DATES = 20  # the pooled Z2's bootstrap block: about a month of dates
FZ0_FLOOR = 1e-6  # VaR and ES below this loss (a tail quantile above zero) are floored
TAILS = ("long", "short")


def risk_frame(frame: pl.DataFrame, quantiles: list[float], prefix: str = "") -> pl.DataFrame:
    """symbol, date, y and the method's VaR and ES columns (``tail_risk.risk_columns``, as
    ``predict`` writes them), from its calibrated quantiles ``<prefix>_q_*``."""
    columns = risk_columns(frame.select(qcols(quantiles, prefix)).to_numpy(), quantiles)
    return frame.select("symbol", "date", "y").with_columns(
        pl.Series(name, values) for name, values in columns.items()
    )


def symbol_runs(frame: pl.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index into ``frame``, run starts, run ends) of every h-th date's rows sorted by
    symbol then date: each symbol's non-overlapping outcomes as one run."""
    dates = frame["date"].unique().sort().gather_every(horizon)
    keep = (
        frame.with_row_index("_row")
        .filter(pl.col("date").is_in(dates.implode()))
        .sort("symbol", "date")
    )
    symbols = keep["symbol"].to_numpy()
    starts = (
        np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
        if len(symbols)
        else np.array([], int)
    )
    ends = np.r_[starts[1:], len(symbols)].astype(int)
    return keep["_row"].to_numpy(), starts, ends


def tail_view(
    risk: pl.DataFrame, tail: str, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P&L as a simple return of the position, VaR, ES) of a tail: the long position earns
    the return, the short one its negative; VaR and ES are positive losses."""
    simple = np.expm1(risk["y"].to_numpy())
    pnl = simple if tail == "long" else -simple
    return pnl, risk[f"var_{tail}_{alpha}"].to_numpy(), risk[f"es_{tail}_{alpha}"].to_numpy()


def fz0_rows(pnl: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> np.ndarray:
    """FZ0 per row with VaR and ES as returns (-VaR, -ES), each loss floored at ``FZ0_FLOOR``
    (a forecast whose tail quantile is above zero has no negative VaR to score)."""
    v = -np.maximum(var, FZ0_FLOOR)
    e = np.minimum(-np.maximum(es, FZ0_FLOOR), v)
    return fz0_loss(pnl, v, e, alpha)


def tail_tests(
    risk: pl.DataFrame, tail: str, alpha: float, horizon: int, lags: int, seed: int = 0
) -> dict[str, Any]:
    """One method's backtests of one tail at ``alpha`` (the module's list), without FZ0's DM."""
    pnl, var, es = tail_view(risk, tail, alpha)
    hits = pnl < -var
    dates = risk["date"].to_numpy()
    index, starts, ends = symbol_runs(risk, horizon)
    runs = [index[a:b] for a, b in zip(starts, ends, strict=True)]
    lengths = [len(r) for r in runs]
    kup = [kupiec(hits[r], alpha)["p_value"] >= PASS_LEVEL for r in runs]
    chris = [christoffersen(hits[r])["p_value"] >= PASS_LEVEL for r in runs]
    dq = [dq_of_hits(hits[r], -var[r], alpha).p_value >= PASS_LEVEL for r in runs]
    es_floor = np.maximum(es, FZ0_FLOOR)  # a non-positive ES (a tail above zero) is no loss
    z2s = [z2(pnl[r], var[r], es_floor[r], alpha) for r in runs]
    every = np.sort(index)
    pooled = z2_block_bootstrap(
        dates[every], pnl[every], var[every], es_floor[every], alpha, Z2_BLOCK_DATES, seed=seed
    )
    out: dict[str, Any] = {
        "tail": tail,
        "alpha": alpha,
        "exceedance": float(hits.mean()),
        "clustered_test": clustered_exceedance_test(dates, hits, alpha, lags),
        "symbols": len(runs),
        "kupiec_pass_share": float(np.mean(kup)) if kup else float("nan"),
        "kupiec_reference": reference_pass_share(lengths, alpha, PASS_LEVEL),
        "christoffersen_pass_share": float(np.mean(chris)) if chris else float("nan"),
        "dq_pass_share": float(np.mean(dq)) if dq else float("nan"),
        "dq_reference": dq_reference_pass_share(
            [-var[r] for r in runs], alpha, PASS_LEVEL, seed=seed
        ),
        "z2_pass_share": float(np.mean(np.asarray(z2s) > Z2_THRESHOLD)) if z2s else float("nan"),
        "z2_reference": z2_reference_pass_share(tuple(lengths), alpha, seed=seed),
        "z2_pooled": {"statistic": pooled.statistic, "p_value": pooled.p_value, "rows": pooled.n},
        "mean_var": float(np.mean(var)),
        "mean_es": float(np.mean(es)),
        "fz0": float(np.mean(fz0_rows(pnl, var, es, alpha))),
    }
    if horizon == 1 and alpha == BASEL_LEVEL:
        by_symbol = (
            risk.select("symbol")
            .with_columns(pl.Series("hit", hits))
            .sort("symbol", maintain_order=True)
        )
        light = traffic_light(
            [g["hit"].to_numpy() for _, g in by_symbol.group_by("symbol", maintain_order=True)],
            BASEL_DATES,
            BASEL_LEVEL,
        )
        out["traffic_light"] = light.__dict__
    return out


def crash_exceptions(
    risk: pl.DataFrame, alpha: float, months: tuple[str, str], horizon: int
) -> dict[str, Any]:
    """The long VaR's exceptions per symbol over ``months`` (every h-th date): the mean per
    symbol against the expected, the share of symbols with 0, 1, 2 and 3 or more, the most."""
    month = pl.col("date").dt.strftime("%Y-%m")
    rows = risk.filter(month.is_between(pl.lit(months[0]), pl.lit(months[1])))
    dates = rows["date"].unique().sort().gather_every(horizon)
    rows = rows.filter(pl.col("date").is_in(dates.implode()))
    if not rows.height:
        return {"months": list(months), "dates": 0}
    counts = (
        rows.with_columns((pl.col("y").exp() - 1 < -pl.col(f"var_long_{alpha}")).alias("hit"))
        .group_by("symbol")
        .agg(pl.col("hit").sum())["hit"]
        .to_numpy()
    )
    return {
        "months": list(months),
        "dates": len(dates),
        "expected_per_symbol": len(dates) * alpha,
        "mean_per_symbol": float(counts.mean()),
        "share_with": {
            "0": float(np.mean(counts == 0)),
            "1": float(np.mean(counts == 1)),
            "2": float(np.mean(counts == 2)),
            "3+": float(np.mean(counts >= 3)),
        },
        "most": int(counts.max()),
    }


def risk_scorecard(
    frame: pl.DataFrame,
    quantiles: list[float],
    horizon: int,
    methods: dict[str, str],
    lags: int,
    crash: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Every method's tail backtests (``tail_tests``) at each risk level the grid holds, the
    pairwise Diebold-Mariano of daily FZ0 per tail, and the crash months' 99 % exceptions.
    ``frame``: symbol, date, y (known) and the methods' calibrated ``<prefix>q_*``."""
    alphas = risk_alphas(quantiles)
    if not alphas:
        return {"note": f"the grid {quantiles} holds no risk level pair of {list(RISK_ALPHAS)}"}
    frame = frame.filter(pl.col("y").is_not_null() & pl.col("y").is_not_nan()).sort(
        "date", "symbol"
    )
    out: dict[str, Any] = {
        "alphas": alphas,
        "conventions": "VaR and ES as positive fractions of the position's value in simple "
        "returns (long: 1 - exp(q_alpha); short: exp(q_(1-alpha)) - 1); ES from the calibrated "
        "grid, linear between levels and a generalized Pareto loss tail beyond the outermost "
        "through the three outermost levels (core.modeling.tail_risk)",
        "per_symbol": "every h-th date (non-overlapping outcomes), tests at 5 %; DQ and Z2 "
        "references simulated, Kupiec's exact",
        "methods": {},
        "fz0_diebold_mariano": {},
    }
    daily: dict[str, dict[str, np.ndarray]] = {}
    for name, prefix in methods.items():
        risk = risk_frame(frame, quantiles, prefix)
        tails = {}
        for alpha in alphas:
            for tail in TAILS:
                key = f"{tail}_{alpha}"
                tails[key] = tail_tests(risk, tail, alpha, horizon, lags)
                pnl, var, es = tail_view(risk, tail, alpha)
                daily.setdefault(key, {})[name] = daily_losses(risk, fz0_rows(pnl, var, es, alpha))
        out["methods"][name] = {"tails": tails}
        if crash is not None and BASEL_LEVEL in alphas:
            out["methods"][name]["crash"] = crash_exceptions(risk, BASEL_LEVEL, crash, horizon)
    if len(methods) > 1:
        out["fz0_diebold_mariano"] = {key: pairwise_dm(d, lags) for key, d in daily.items()}
    return out


def risk_markdown(metrics: dict[str, Any], focus: str) -> list[str]:
    """Markdown lines of the risk section for the method ``focus``: per tail, the exceedance
    and each pass share beside a perfect forecaster's, the pooled Z2 and the mean FZ0; the 99 %
    VaR's traffic light; FZ0's Diebold-Mariano against every other method."""
    risk = metrics.get("risk") or {}
    if "note" in risk or focus not in risk.get("methods", {}):
        return ["", f"Risk: {risk.get('note', 'not scored')}."]
    lines = [
        "",
        f"Value-at-risk and expected shortfall of {focus} ({risk['conventions']}; "
        f"{risk['per_symbol']}):",
        "",
        "| tail | exceedance | Kupiec pass (perfect) | DQ pass (perfect) | Z2 pass (perfect) "
        "| pooled Z2 (p) | mean VaR | mean ES | FZ0 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tails = risk["methods"][focus]["tails"]
    for key, t in tails.items():
        lines.append(
            f"| {key} | {t['exceedance']:.4f} | {t['kupiec_pass_share']:.1%} ({t['kupiec_reference']:.1%}) "
            f"| {t['dq_pass_share']:.1%} ({t['dq_reference']:.1%}) | {t['z2_pass_share']:.1%} "
            f"({t['z2_reference']:.1%}) | {t['z2_pooled']['statistic']:+.3f} ({t['z2_pooled']['p_value']:.3g}) "
            f"| {t['mean_var']:.4f} | {t['mean_es']:.4f} | {t['fz0']:.4f} |"
        )
    for key, t in tails.items():
        if light := t.get("traffic_light"):
            lines.append(
                f"\nBasel traffic light, {key} ({light['blocks']} blocks of {BASEL_DATES} dates): "
                f"green {light['green']:.1%}, yellow {light['yellow']:.1%}, red {light['red']:.2%} "
                f"(a perfect forecaster: {light['reference_green']:.2%}, "
                f"{light['reference_yellow']:.2%}, {light['reference_red']:.3%})"
            )
    crashes = {n: m["crash"] for n, m in risk["methods"].items() if m.get("crash", {}).get("dates")}
    if crashes:
        first = next(iter(crashes.values()))
        lines.append(
            f"\nCrash months {' .. '.join(first['months'])}, the long 99 % VaR's exceptions per "
            f"symbol over {first['dates']} dates (expected {first['expected_per_symbol']:.2f}): "
            + "; ".join(
                f"{n} {c['mean_per_symbol']:.2f} (3 or more: {c['share_with']['3+']:.0%}, most {c['most']})"
                for n, c in crashes.items()
            )
        )
    for key, by_method in risk.get("fz0_diebold_mariano", {}).items():
        versus = by_method.get(focus, {})
        if versus:
            lines.append(
                f"\nFZ0 Diebold-Mariano, {key}: "
                + ", ".join(
                    f"{name} {'beaten' if d['beats'] else 'not beaten'} (p {d['p_value']:.3g})"
                    for name, d in versus.items()
                )
            )
    return lines
