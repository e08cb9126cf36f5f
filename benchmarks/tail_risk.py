"""Issue 23's targets: VaR and ES of the walk-forward backtests at horizons 1 and 10.

    python -m benchmarks.tail_risk --stores DIR_H1,DIR_H10 [--model lightgbm]

Each store holds a finished ``flows.backtest`` of the 249 Yahoo tickers (2010-01 ..
2021-02, refit every 21; ``benchmarks.backtest`` builds one per store with
``SMA_FEATURES__HORIZON`` set). From the newest backtest's predictions, the risk section
(``core.modeling.risk_scorecard``) is computed over the years the choices were made on
(2010-2018) and apart over 2019-2021, and the issue's targets are printed beside what was
measured: the 99 % 1-day VaR's traffic light; Kupiec and DQ pass shares beside a perfect
forecaster's at 1, 2.5 and 5 %; the 2.5 % ES's pooled Z2 and FZ0 against ``historical``
(250 days), ``fhs`` and ``evt`` with Diebold-Mariano; the crash months' 99 % exceptions per
symbol. Wall times come from the flows' logs (``--times H=SECONDS,...``), not measured here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.backtest import newest_backtest, predictions

TUNED_UNTIL = 2018
REFERENCES = ("historical", "fhs", "evt")


def period_card(frame: Any, metrics: dict[str, Any], later: bool) -> dict[str, Any]:
    """The risk section over 2010-2018 (or after), every method calibrated alike."""
    import polars as pl

    from core.modeling.backtest import CRASH
    from core.modeling.risk_scorecard import risk_scorecard
    from core.modeling.scorecard import dm_lags

    year = pl.col("date").dt.year()
    rows = frame.filter(year > TUNED_UNTIL if later else year <= TUNED_UNTIL)
    model = metrics["model"]
    methods = {model: ""} | {m: m for m in metrics["methods"] if m != model}
    lags = dm_lags(rows["date"].n_unique(), metrics["horizon"])
    return risk_scorecard(rows, metrics["quantiles"], metrics["horizon"], methods, lags, CRASH)


def verdicts(card: dict[str, Any], model: str, horizon: int) -> list[str]:
    """Markdown rows: each target of the issue, what was measured, met or not."""
    tails = card["methods"][model]["tails"]
    lines = []
    light = tails["long_0.01"].get("traffic_light")
    if light:
        lines.append(
            f"| 99 % 1-day VaR (long): green within 3 points of 89.2 %, red <= 0.5 % | green "
            f"{light['green']:.1%}, yellow {light['yellow']:.1%}, red {light['red']:.2%} "
            f"({light['blocks']} blocks) | {abs(light['green'] - light['reference_green']) <= 0.03 and light['red'] <= 0.005} |"
        )
        short = tails["short_0.01"]["traffic_light"]
        lines.append(
            f"| (short tail, beside) | green {short['green']:.1%}, yellow {short['yellow']:.1%}, "
            f"red {short['red']:.2%} | - |"
        )
    for key, t in tails.items():
        kup = abs(t["kupiec_reference"] - t["kupiec_pass_share"])
        dq = abs(t["dq_reference"] - t["dq_pass_share"])
        lines.append(
            f"| {key} (h={horizon}): exceedance; Kupiec and DQ pass within 3 points of a perfect "
            f"forecaster's | {t['exceedance']:.4f} (clustered p {t['clustered_test']['p_value']:.2g}); "
            f"Kupiec {t['kupiec_pass_share']:.1%} vs {t['kupiec_reference']:.1%}; DQ "
            f"{t['dq_pass_share']:.1%} vs {t['dq_reference']:.1%}; Christoffersen "
            f"{t['christoffersen_pass_share']:.1%} | {kup <= 0.03 and dq <= 0.03} |"
        )
    for key in ("long_0.025", "short_0.025"):
        t = tails[key]
        z = t["z2_pooled"]
        lines.append(
            f"| ES {key}: pooled Z2 not rejected (p >= 0.05); per-symbol Z2 pass beside a perfect "
            f"forecaster's | Z2 {z['statistic']:+.3f} (p {z['p_value']:.3f}); pass "
            f"{t['z2_pass_share']:.1%} vs {t['z2_reference']:.1%} | {z['p_value'] >= 0.05} |"
        )
        dm = card["fz0_diebold_mariano"][key][model]
        for ref in REFERENCES:
            if ref in dm:
                mine = t["fz0"]
                theirs = card["methods"][ref]["tails"][key]["fz0"]
                lines.append(
                    f"| FZ0 {key} lower than {ref}, DM p < 0.05 | {mine:.4f} vs {theirs:.4f}, "
                    f"p {dm[ref]['p_value']:.2g} | {dm[ref]['beats']} |"
                )
    return lines


def pass_table(card: dict[str, Any]) -> list[str]:
    """Every method's Kupiec / DQ pass shares per tail (a perfect forecaster's beside): the
    baselines treated alike, for context."""
    keys = list(next(iter(card["methods"].values()))["tails"])
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, m in card["methods"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{m['tails'][k]['kupiec_pass_share']:.0%} / {m['tails'][k]['dq_pass_share']:.0%}"
                for k in keys
            )
            + " |"
        )
    ref = next(iter(card["methods"].values()))["tails"]
    lines.append(
        "| perfect | "
        + " | ".join(
            f"{ref[k]['kupiec_reference']:.0%} / {ref[k]['dq_reference']:.0%}" for k in keys
        )
        + " |"
    )
    return lines


def crash_table(card: dict[str, Any], model: str) -> list[str]:
    """The crash months' 99 % exceptions per symbol: the model, fhs and historical."""
    lines = ["| method | dates | expected per symbol | mean per symbol | 0 | 1 | 2 | 3+ | most |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in (model, "fhs", "historical", "evt", "boa"):
        c = card["methods"].get(name, {}).get("crash")
        if c and c.get("dates"):
            s = c["share_with"]
            lines.append(
                f"| {name} | {c['dates']} | {c['expected_per_symbol']:.2f} | {c['mean_per_symbol']:.2f} "
                f"| {s['0']:.0%} | {s['1']:.0%} | {s['2']:.0%} | {s['3+']:.0%} | {c['most']} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stores", required=True, help="store folders, comma-separated")
    parser.add_argument("--model", default="lightgbm")
    ns = parser.parse_args()
    for folder in ns.stores.split(","):
        store = Path(folder)
        metrics = newest_backtest(store, ns.model)
        frame = predictions(store, metrics)
        h = metrics["horizon"]
        print(f"\n## h = {h}: backtest {metrics['backtest_id']}, {metrics['forecasts'][0]} .. "
              f"{metrics['forecasts'][1]}, {len(metrics['refits'])} refits\n", flush=True)  # fmt: skip
        for later in (False, True):
            card = period_card(frame, metrics, later)
            label = "2019-2021 (reported apart)" if later else "2010-2018 (choices made here)"
            print(f"### {label}\n\n| target | measured | met |\n|---|---|---|")
            print("\n".join(verdicts(card, metrics["model"], h)))
            print("\nKupiec / DQ pass shares of every method (within 3 points: either side):\n")
            print("\n".join(pass_table(card)))
            if later:
                print(
                    "\nCrash months 2020-02 .. 2020-04, the long 99 % VaR's exceptions per symbol:\n"
                )
                print("\n".join(crash_table(card, metrics["model"])))
            print(flush=True)


if __name__ == "__main__":
    main()
