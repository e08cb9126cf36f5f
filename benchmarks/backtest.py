"""Walk-forward backtest benchmark on the 249 Yahoo tickers of ../shared/data.

    python -m benchmarks.backtest [--store DIR] [--models lightgbm,catboost]
                                  [--start 2010-01-01] [--end 2021-02-05]

Collects the tickers and builds the default features (seed, risk) into ``--store`` (a
temporary folder by default; an existing store is reused), then runs
``python -m flows.backtest`` once per model as a whole process with default settings
(refit every 21 trading days, Prefect's cache refreshed so every refit is fitted anew),
and prints issue 22's targets next to what was measured: every level's exceedance and
per-symbol Kupiec pass share beside a perfect forecaster's; the target interval's coverage
per month, year, volatility tercile and in the crash months; CRPS against every method
calibrated alike with Diebold-Mariano p-values and the Model Confidence Set, before and
after 2018; wall time and peak memory of the process tree (``benchmarks.processes``). It
also prints what perfect foresight of each forecast's realized range volatility would score
on the same rows, and replays the per-level tracker's step over the same refits, split
into the years it is chosen on and the years after. The tickers are February 2021 index
members: survivorship bias makes these results optimistic.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.processes import Measured, run_measured

if TYPE_CHECKING:
    import polars as pl

ROOT = Path(__file__).resolve().parent.parent
YAHOO = ROOT.parent / "shared" / "data" / "yahoo_sp500_2005_2021"


def newest_backtest(store: Path, model: str) -> dict[str, Any]:
    """The metrics of the newest backtest of ``model``, read through its manifest."""
    from core.backtests import backtest_ids, read_backtest
    from core.storage import Store

    opened = Store(str(store))
    manifests = [read_backtest(opened, bid) for bid in backtest_ids(opened)]
    return [m for m in manifests if m.model == model][-1].metrics(opened)


def predictions(store: Path, metrics: dict[str, Any]) -> pl.DataFrame:
    """A finished backtest's rows with a known outcome."""
    import polars as pl

    from core.backtests import read_backtest
    from core.storage import Store

    opened = Store(str(store))
    manifest = read_backtest(opened, metrics["backtest_id"])
    return manifest.predictions(opened).filter(pl.col("y").is_not_null())


def foresight(store: Path, metrics: dict[str, Any], horizon: int) -> dict[str, float]:
    """Quantiles from the realized range volatility of each backtest row's next h days times
    the empirical shape of y over that scale before the backtest: their pinball (against
    ewma's on the same rows), coverage, and the share of months within 0.05 of it."""
    import numpy as np
    import polars as pl

    from benchmarks.model_quality import realized_scale
    from core.modeling.distribution_scores import pinball_rows

    q = metrics["quantiles"]
    start = metrics["forecasts"][0]
    rows = realized_scale(str(store), horizon)
    before = rows.filter(pl.col("date").cast(pl.String) < start)
    test = (
        predictions(store, metrics)
        .select("symbol", "date", *[f"ewma_q_{v}" for v in q])
        .join(rows, on=["symbol", "date"], how="inner")
    )
    shape = np.quantile((before["y"] / before["scale"]).to_numpy(), q)
    oracle = test["scale"].to_numpy()[:, None] * shape[None, :]
    y = test["y"].to_numpy()
    loss = float(pinball_rows(y, oracle, q).mean())
    ewma = float(pinball_rows(y, test.select([f"ewma_q_{v}" for v in q]).to_numpy(), q).mean())
    hit = (y >= oracle[:, 0]) & (y <= oracle[:, -1])
    months = (
        test.with_columns(pl.Series("hit", hit))
        .group_by(pl.col("date").dt.strftime("%Y-%m"))
        .agg(pl.col("hit").mean())["hit"]
        .to_numpy()
    )
    return {
        "pinball": loss,
        "vs_ewma": loss / ewma,
        "coverage": float(hit.mean()),
        "months_within": float(np.mean(np.abs(months - hit.mean()) <= 0.05)),
    }


SWEEP = tuple(
    (step, decay) for step in (0.02, 0.05, 0.1) for decay in (0.0, 0.01, 0.02, 0.05)
)  # (model.tracker_step, model.tracker_decay)
TUNED_UNTIL = 2018  # every choice is made on forecasts up to this year


def replay(store: Path, metrics: dict[str, Any]) -> Callable[..., pl.DataFrame]:
    """A function of online settings (``ModelSettings`` fields such as ``tracker_step``) that
    replays a finished backtest's calibration over its stored refits: the calibrated frame."""
    from core import layout
    from core.backtests import RefitRecord, read_backtest, read_refit
    from core.config import ModelSettings
    from core.modeling.walkforward import calibrate_in_order
    from core.storage import Store

    opened = Store(str(store))
    manifest = read_backtest(opened, metrics["backtest_id"])
    records = [
        RefitRecord.read(opened, layout.BACKTEST_REFIT_CALIBRATION(fit_key=manifest.fit_key, **w))
        for w in ({"refit": r["refit"], "until": r["until"]} for r in metrics["refits"])
    ]
    blocks = [read_refit(opened, r) for r in records]

    def calibrated(**online: Any) -> pl.DataFrame:
        cfg = ModelSettings(
            name=metrics["model"], quantiles=metrics["quantiles"],
            target_coverage=metrics["target_coverage"], **online,
        )  # fmt: skip
        return calibrate_in_order(
            [(f.clone(), c) for f, c in blocks], cfg, metrics["horizon"]
        ).frame

    return calibrated


def online_sweep(
    store: Path, metrics: dict[str, Any], sweep: tuple[tuple[float, float], ...] = SWEEP
) -> str:
    """Replay the per-level calibration with each tracker step and decay over a finished backtest's
    stored refits, split into the years it is chosen on (<= TUNED_UNTIL) and the years after:
    the worst level's exceedance error, the target interval's coverage and months within
    0.05, and the model's CRPS, alone and against ewma's, both calibrated alike."""
    import numpy as np
    import polars as pl

    from core.modeling.scorecard import crps_expr, interval_columns, qcols

    calibrated = replay(store, metrics)
    q = metrics["quantiles"]
    lines = [
        f"per-level tracker step and decay replayed over the same refits (chosen on <= {TUNED_UNTIL})",
        "",
        "| step | decay | years | worst level error | coverage | months within 0.05 | CRPS | CRPS / ewma |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lo, hi = interval_columns(q, 1 - metrics["target_coverage"])
    for step, decay in sweep:
        frame = calibrated(tracker_step=step, tracker_decay=decay)
        rows = frame.filter(pl.col("y").is_not_null()).with_columns(
            hit=(pl.col("y") >= pl.col(lo)) & (pl.col("y") <= pl.col(hi))
        )
        for label, part in (
            (f"<= {TUNED_UNTIL}", rows.filter(pl.col("date").dt.year() <= TUNED_UNTIL)),
            (f"> {TUNED_UNTIL}", rows.filter(pl.col("date").dt.year() > TUNED_UNTIL)),
        ):
            months = part.group_by(pl.col("date").dt.strftime("%Y-%m")).agg(pl.col("hit").mean())
            worst = max(abs(float((part["y"] <= part[f"q_{t}"]).mean()) - t) for t in q)  # pyright: ignore[reportArgumentType]
            loss = part.select(
                crps_expr(qcols(q), q).mean().alias("m"),
                crps_expr(qcols(q, "ewma"), q).mean().alias("e"),
            )
            lines.append(
                f"| {step} | {decay} | {label} | {worst:.4f} | {part['hit'].mean():.4f} "
                f"| {np.mean(np.abs(months['hit'].to_numpy() - metrics['target_coverage']) <= 0.05):.0%} "
                f"| {loss['m'][0]:.6f} | {loss['m'][0] / loss['e'][0]:.4f} |"
            )
    return "\n".join(lines)


def period_crps(metrics: dict[str, Any], method: str, later: bool) -> float:
    """A method's mean CRPS over the years up to TUNED_UNTIL (or after), rows weighted."""
    years = [
        g for g in metrics["groups"][method]["year"] if (int(g["year"]) > TUNED_UNTIL) == later
    ]
    rows = sum(g["rows"] for g in years)
    return sum(g["crps"] * g["rows"] for g in years) / rows if rows else float("nan")


def report(m: dict[str, Any], got: Measured, bound: dict[str, float], before_minutes: float) -> str:
    """The issue's targets beside what was measured, for the backtest's model."""
    model, target = m["model"], m["target_coverage"]
    cal, groups, tests = m["calibrated"], m["groups"][model], m["tests"]
    levels = tests["levels"][model]
    dm = tests["diebold_mariano"]["calibrated"][model]
    mcs = tests["mcs"] or {"included": [], "pvalues": {}}
    record = m["track_record"]
    full_years = [
        g for g in groups["year"] if g["rows"] > 0.8 * max(x["rows"] for x in groups["year"])
    ]
    worst_year = max(full_years, key=lambda g: abs(g["coverage"] - target))
    worst_tercile = max(groups["vol_tercile"], key=lambda g: abs(g["coverage"] - target))
    crash = {
        g["month"]: g["coverage"]
        for g in groups["month"]
        if g["month"] in ("2020-02", "2020-03", "2020-04")
    }
    terciles = ", ".join(f"{g['vol_tercile']}: {g['coverage']:.3f}" for g in groups["vol_tercile"])
    ratio = cal[model]["crps"] / cal["ewma"]["crps"]
    baselines = [b for b in cal if b not in (model, "boa")]
    lines = [
        f"## {model}: {m['forecasts'][0]} .. {m['forecasts'][1]}, {len(m['refits'])} refits",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for q in m["quantiles"]:
        t = levels[f"q_{q}"]
        tol = 0.005 if q <= 0.05 or q >= 0.95 else 0.01
        gap = t["reference_pass_share"] - t["kupiec_pass_share"]
        lines.append(
            f"| level {q}: exceedance within {tol} of it; Kupiec pass share within 3 points of a perfect "
            f"forecaster's | {t['exceedance']:.4f} (clustered p {t['clustered_test']['p_value']:.2g}); "
            f"{t['kupiec_pass_share']:.1%} vs {t['reference_pass_share']:.1%} "
            f"| {abs(t['exceedance'] - q) <= tol and gap <= 0.03} |"
        )
    lines += [
        f"| >= 90 % of months within 0.05 of {target} | {record['months_within_0.05']:.1%} of {record['months']} | {record['months_within_0.05'] >= 0.9} |",
        f"| every full year within 0.02 | worst {worst_year['year']} {worst_year['coverage']:.3f} | {abs(worst_year['coverage'] - target) <= 0.02} |",
        f"| every volatility tercile within 0.02 | {terciles} | {abs(worst_tercile['coverage'] - target) <= 0.02} |",
        f"| 2020-02, 2020-03, 2020-04 each >= 0.75 | {', '.join(f'{k} {v:.3f}' for k, v in crash.items())} | {len(crash) == 3 and min(crash.values()) >= 0.75} |",
        f"| CRPS <= 0.97 x ewma calibrated alike | {ratio:.4f} | {ratio <= 0.97} |",
    ]
    for name in baselines:
        t = dm[name]
        lines.append(
            f"| lower CRPS than {name} (calibrated), DM p < 0.05 | {cal[model]['crps'] / cal[name]['crps']:.4f} x, p {t['p_value']:.2g} | {t['beats']} |"
        )
    held = [b for b in baselines if b in mcs["included"]]
    lines += [
        f"| the 90 % MCS holds no baseline | holds {', '.join(mcs['included'])} | {not held} |",
        f"| wall time <= 1.5 x {before_minutes:.1f} min (issue 21) | {got.seconds / 60:.1f} min, peak RSS {got.tree / 1024:.2f} GiB "
        f"(process tree; flow process {got.flow / 1024:.2f} GiB, largest of {got.workers} workers {got.worker / 1024:.2f} GiB) "
        f"| {got.seconds / 60 <= 1.5 * before_minutes} |",
        "",
        "| method | CRPS calibrated | raw | <= 2018 / ewma | > 2018 / ewma | coverage | worst level error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in cal:
        lines.append(
            f"| {name} | {cal[name]['crps']:.5f} | {m['raw'][name]['crps']:.5f} "
            f"| {period_crps(m, name, False) / period_crps(m, 'ewma', False):.4f} "
            f"| {period_crps(m, name, True) / period_crps(m, 'ewma', True):.4f} "
            f"| {cal[name]['coverage']:.4f} | {cal[name]['max_exceedance_error']:.4f} |"
        )
    lines += [
        "",
        "coverage by year: "
        + ", ".join(f"{g['year']} {g['coverage']:.3f}" for g in groups["year"]),
        "fits that fell back: "
        + (
            ", ".join(
                f"{k}: {len(v)} symbols, {sum(v.values())} symbol-refits"
                for k, v in m["fallbacks"].items()
            )
            or "none"
        ),
        f"values clipped by the sanity bound: {m['clipped']}",
        f"perfect range-volatility foresight on the same rows (its own grid, raw): pinball "
        f"{bound['pinball']:.5f}, {bound['vs_ewma']:.4f} x ewma's calibrated pinball",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", help="store folder (reused when it exists)")
    parser.add_argument("--models", default="lightgbm,catboost")
    parser.add_argument("--start", default="2010-01-01")
    parser.add_argument("--end", default="2021-02-05")
    ns = parser.parse_args()
    if not YAHOO.is_dir():
        raise SystemExit(f"missing {YAHOO}")
    with tempfile.TemporaryDirectory(prefix="sma-bench-backtest-") as tmp:
        store = Path(ns.store or Path(tmp) / "store").resolve()
        tickers = store.parent / "tickers.csv"
        env = os.environ | {
            "SMA_STORE": str(store),
            "SMA_TICKERS": str(tickers),
            "SMA_TRACKING__WANDB_MODE": "disabled",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        }
        if not (store / "features" / "manifest.json").exists():
            store.parent.mkdir(parents=True, exist_ok=True)
            tickers.write_text(
                "Symbol\n" + "\n".join(sorted(p.stem for p in YAHOO.glob("*.csv"))) + "\n"
            )
            collect_env = env | {
                "SMA_SOURCE": "local",
                "SMA_SOURCE_PATH": str(YAHOO),
                "SMA_START": "2005-01-01",
                "SMA_END": "2021-02-05",
            }
            for flow in ("flows.collect", "flows.features"):
                got = run_measured(["-m", flow], collect_env)
                print(f"{flow}: {got.seconds:.0f} s", flush=True)
                if got.returncode:
                    raise SystemExit(f"{flow} failed ({got.returncode}):\n{got.output[-4000:]}")
        from core.features.table import read_manifest
        from core.storage import Store

        built = read_manifest(Store(str(store)))
        assert built is not None  # built above
        horizon = built.horizon
        for model in ns.models.split(","):
            args = ["-m", "flows.backtest", "--model", model, "--start", ns.start, "--end", ns.end]
            got = run_measured(args, env | {"PREFECT_TASKS_REFRESH_CACHE": "true"}, echo=True)
            if got.returncode:
                raise SystemExit(
                    f"backtest of {model} failed ({got.returncode}):\n{got.output[-4000:]}"
                )
            metrics = newest_backtest(store, model)
            before = {"lightgbm": 13.1, "catboost": 64.0}.get(model, float("nan"))  # issue 21
            print(report(metrics, got, foresight(store, metrics, horizon), before), flush=True)
            print(online_sweep(store, metrics), flush=True)


if __name__ == "__main__":
    main()
