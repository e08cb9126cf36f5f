"""The quality rules and the feature build on the whole messy stooq set.

    python -m benchmarks.stooq_quality

Input: every file of ../shared/data/stooq_messy (94 tickers, 1962 .. 2017, 0.27 M rows of
non-positive prices, high < low rows, Saturday bars, bad ticks, unadjusted reverse splits,
long runs of zero volume). Prints how every input row is accounted for (valid or
quarantined, with the rule it broke), the rejections by rule, and whether the features of
every group, in both window modes, come out finite. The unit tests check small look-alikes
of these defects; this runs the real set, which is not part of the repository.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOOQ = ROOT.parent / "shared" / "data" / "stooq_messy"


def main() -> int:
    if not STOOQ.is_dir():
        print(f"error: {STOOQ} not found (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    import polars as pl

    from core.config import QualitySettings
    from core.data.collectors.local import LocalCollector
    from core.data.quality import apply_rules
    from core.features.build import build_features
    from core.features.registry import GROUPS, output_columns
    from core.features.schema import schema_problems

    symbols = sorted(p.stem for p in STOOQ.glob("*.csv"))
    fetched = LocalCollector(STOOQ).fetch(symbols, dt.date(1900, 1, 1), dt.date(2024, 1, 1))
    bars = fetched.bars
    started = time.perf_counter()
    result = apply_rules(bars, QualitySettings(), dt.date(2024, 1, 1))
    seconds = time.perf_counter() - started
    accounted = result.valid.height + result.quarantine.height
    unique = result.valid.select(pl.struct("symbol", "date").is_unique().all()).item()
    print(
        f"symbols: {bars['symbol'].n_unique()} read, {len(fetched.failures)} unreadable {fetched.failures or ''}"
    )
    print(
        f"rows: {bars.height} in, {result.valid.height} valid, {result.quarantine.height} quarantined "
        f"({'every row accounted for' if accounted == bars.height else 'ROWS LOST'}); "
        f"valid (symbol, date) unique: {unique}; rules ran in {seconds:.2f} s"
    )
    print("quarantined by rule:")
    for rule, n in (
        result.quarantine.group_by("rule").len().sort("len", descending=True).iter_rows()
    ):
        print(f"  {rule:<20} {n}")
    print("warnings:", dict(result.warnings.group_by("warning").len().iter_rows()))
    groups = list(GROUPS)
    columns = output_columns(groups, 3)
    finite = True
    for mode in ("over", "masked"):
        started = time.perf_counter()
        out = build_features(result.valid.lazy(), groups, 3, mode).collect()
        problems = schema_problems(out, columns)
        verdict = f"NOT FINITE: {'; '.join(problems)}" if problems else "all finite"
        finite = finite and not problems
        print(
            f"features ({', '.join(groups)}; {mode}): {out.height} rows in {time.perf_counter() - started:.1f} s, {verdict}"
        )
    return 0 if accounted == bars.height and unique and finite else 1


if __name__ == "__main__":
    sys.exit(main())
