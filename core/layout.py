"""The store layout, a public contract: every key the pipeline reads or writes, in one place.

Each ``Key`` is a pattern such as ``raw/prices/symbol={symbol}/data.parquet``; call it with
the parts to get a key, ``match`` a key to get them back. ``KEYS`` lists them in the
order of the site's layout page, which is generated from it. The layout carries a
version in ``store.json`` (recorded by the store's first write): a store written by an
older version keeps working, through a migration here when a change needs one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from core.storage import Store

LAYOUT_VERSION = 3  # stores written before store.json existed are version 1
# 2: every level calibrated; one emitted forecast set per prediction file (no `lo`/`hi`: the
# interval is its two levels' columns); the online state is the per-level tracker's
# (``TRACKER_STATE``). Version 1 files are read as they are: no migration is needed.
# 3: several horizons in one store. The home horizon (that of the root feature build,
# ``FEATURES_MANIFEST``) keeps every key below as it was; each other horizon h has the same
# keys under ``HORIZON_ROOT`` (``horizons/h=<h>/``), except the ``SHARED`` ones, which every
# horizon reads at the root. Prediction files gain the VaR and ES columns. A version 2 store
# is a version 3 store with its home horizon only: no migration is needed.

_FIELD = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Key:
    """A key pattern of the store and what the key holds."""

    pattern: str
    holds: str
    rebuild: str = ""  # the command that rebuilds a damaged copy

    def __call__(self, **parts: Any) -> str:
        return self.pattern.format(**parts)

    @property
    def shown(self) -> str:
        """The pattern as the docs write it: ``raw/prices/symbol=<symbol>/data.parquet``."""
        return _FIELD.sub(lambda m: f"<{m[1]}>", self.pattern)

    @property
    def prefix(self) -> str:
        """The fixed folder part before the first field (where to list)."""
        head = self.pattern.split("{", 1)[0]
        return head.rsplit("/", 1)[0] if "{" in self.pattern else head

    def match(self, key: str) -> dict[str, str] | None:
        """The parts of a key of this pattern, or None when it is not one."""
        parts: list[str] = []
        regex = ""
        last = 0
        for m in _FIELD.finditer(self.pattern):
            regex += re.escape(self.pattern[last : m.start()]) + f"(?P<{m[1]}>[^/]+)"
            parts.append(m[1])
            last = m.end()
        found = re.fullmatch(regex + re.escape(self.pattern[last:]), key)
        return found.groupdict() if found else None


HORIZON_ROOT = "horizons/h={horizon}"  # a non-home horizon's keys, below this folder
_HORIZON_KEY = re.compile(r"horizons/h=(\d+)/")


def horizons_in(keys: list[str]) -> list[int]:
    """The non-home horizons that keys (of ``Store.list("horizons")``) live under, sorted."""
    return sorted({int(m[1]) for k in keys if (m := _HORIZON_KEY.match(k))})


SHARED = ("raw/", "store.json")  # key prefixes every horizon reads at the store's root


def is_shared(key: str) -> bool:
    """Whether ``key`` is one every horizon of a store shares (prices, the layout version)."""
    return key.startswith(SHARED) or key == "store.json"


# Files of a training run folder (written locally, then uploaded with a hashed manifest).
MODEL_DIR = "model"
HOLDOUT_DIR = "holdout"
MEMBERS_DIR = "members"
CALIBRATION_FILE = "calibration.json"
METRICS_FILE = "metrics.json"
TEST_PREDICTIONS_FILE = "test_predictions.parquet"
PLOTS_DIR = "plots"
MANIFEST_FILE = "manifest.json"
DRIFT_REFERENCE_FILE = "drift_reference.json"
WANDB_FILE = "wandb.json"  # written after the manifest: not one of the files it vouches for
OPTUNA_FILE = "optuna.db"  # the default Optuna study storage, beside (not in) a local store

STORE_META = Key("store.json", "the layout version of the store, written on first use")
LOCK = Key(
    "locks/{name}.lock",
    "held by a run while it reads, updates and writes back a shared file (`ingestion`: the ingestion table; `prices`: the price files, as a collect writes them; `predict`: a run's tracker state; `monitor`: the monitoring tables); names its holder (`pid`, `host`, `since`, on S3 `expires`)",
)
PRICES = Key(
    "raw/prices/symbol={symbol}/data.parquet",
    "valid bars: `symbol, date, open, high, low, close, adj_close (nullable), volume`, sorted by date, unique dates",
    rebuild="python -m flows.collect (it sets a damaged price file aside and refetches the symbol)",
)
QUARANTINE = Key(
    "raw/quarantine/symbol={symbol}/{run_id}.parquet", "rejected rows plus `rule` and `detail`"
)
INGESTION = Key(
    "raw/ingestion.parquet",
    "per symbol: `symbol, status (ok/failed/no_data/insufficient), first_date, last_date, rows, attempts, last_attempt_at, last_success_at, error`",
    rebuild="python -m flows.collect (it rebuilds the table from the price files)",
)
CORRUPT = Key(
    "raw/corrupt/{run_id}/{key}",
    "a file found damaged by run `<run_id>`, moved aside from its own key `<key>` (then rebuilt)",
)
QUALITY_REPORT = Key(
    "raw/reports/{run_id}/quality.json", "counts per rule, per symbol and in total"
)
FEATURES_MANIFEST = Key(
    "features/manifest.json",
    "the current feature build: groups, features, horizon, windows, rows, parts, the sha256 of every part and of the market series, input fingerprint (written last)",
    rebuild="python -m flows.features",
)
FEATURE_PART = Key(
    "features/{version}/part-{index:05d}-{chunk:03d}.parquet",
    "`symbol, date, <features>, y` (features Float32) of one batch and chunk",
    rebuild="python -m flows.features",
)
MARKET = Key(
    "features/{version}/market.parquet",
    "the universe's market series of a build (groups that need it join it by date)",
    rebuild="python -m flows.features",
)
RUN_MODEL = Key(
    f"models/{{run_id}}/{MODEL_DIR}/{{file}}",
    "the model predict uses, refitted on the newest data, in its native format (`.cbm`, LightGBM text, `garch.json`, `har.json`) plus `params.json` (and `scale.json` when volatility-scaled)",
    rebuild="python -m flows.train (a new run)",
)
RUN_MEMBER = Key(
    f"models/{{run_id}}/{MEMBERS_DIR}/{{method}}/{{file}}",
    "when the deployed method is the online aggregation: each aggregated method other than the one in `model/`, refitted on the newest data, as `model/` holds its files",
    rebuild="python -m flows.train (a new run)",
)
RUN_HOLDOUT_MODEL = Key(
    f"models/{{run_id}}/{HOLDOUT_DIR}/{MODEL_DIR}/{{file}}",
    "the held-out fit behind the run's metrics and test predictions (runs before the deployed refit have only `model/`, which is this fit)",
    rebuild="python -m flows.train (a new run)",
)
RUN_CALIBRATION = Key(
    f"models/{{run_id}}/{CALIBRATION_FILE}",
    "the deployed method (`method`) and, per method predict runs (`members`: the deployed one, or every one the aggregation combines), its folder, its deployed fit's per-level calibration (`levels`; `holdout_levels`: the held-out fit's) and its tracker's state at the end of the test period (`tracker`), where predict's starts; the aggregation's state (`aggregation`) when it is deployed (layout 1: `cqr` and `aci`)",
    rebuild="python -m flows.train (a new run)",
)
RUN_METRICS = Key(
    f"models/{{run_id}}/{METRICS_FILE}",
    "the deployed method; every method (the model and each baseline) scored calibrated and raw on the held-out test rows: CRPS, pinball, per-level exceedance, interval coverage and score, PIT, each per month / year / volatility tercile / sector / symbol; the per-level tests, pairwise Diebold-Mariano, the Model Confidence Set; fits that fell back; the splits",
    rebuild="python -m flows.train (a new run)",
)
RUN_TEST_PREDICTIONS = Key(
    f"models/{{run_id}}/{TEST_PREDICTIONS_FILE}",
    "the held-out test rows: `symbol, date, y`, `vol_tercile`, [`sector`] and every method's quantiles per level, calibrated and raw (as in a backtest's predictions)",
    rebuild="python -m flows.train (a new run)",
)
RUN_PLOT = Key(
    f"models/{{run_id}}/{PLOTS_DIR}/{{name}}.png",
    "calibration, rolling coverage, three fan charts, feature importance",
)
RUN_MANIFEST = Key(
    f"models/{{run_id}}/{MANIFEST_FILE}",
    "run id, git commit, settings, features, data fingerprint, sha256 of every file of the run (written last)",
    rebuild="python -m flows.train (a new run)",
)
RUN_WANDB = Key(
    f"models/{{run_id}}/{WANDB_FILE}",
    "the W&B run that logged the run: `run_id`, `wandb_id`, `folder` (its local folder, `offline-run-<time>-<id>` or `run-<time>-<id>`), `mode`; written after the manifest (which does not list it); prune removes that folder with the run and no other (runs trained before it have none)",
)
LATEST_RUN = Key(
    "models/latest.json",
    '`{"run_id": ...}` of the newest complete run',
    rebuild="python -m flows.train (a new run)",
)
PREDICTIONS = Key(
    "predictions/{as_of}.parquet",
    "the emitted forecast: `symbol, date` (the forecast date), `target_date`, `horizon`, `method`, one column `q_<level>` per level, `var_long_<a>`, `es_long_<a>`, `var_short_<a>`, `es_short_<a>` for a in 0.01, 0.025, 0.05 (positive fractions of the position in simple returns; each a whose two levels the grid holds), `run_id`; the target interval is its two levels' columns (layout 1: CQR quantiles and a separate `lo`, `hi`)",
    rebuild="python -m flows.predict",
)
TRACKER_STATE = Key(
    "predictions/tracker/{run_id}.json",
    "the online state the predict flow continues: the per-level tracker's (its offsets and the daily hit rates behind them), or with the aggregation deployed each member's tracker (`members`) and the aggregation's weights (`aggregation`)",
    rebuild="delete it: predict starts again from the newest state of the same method there is, or the run's own",
)
ACI_STATE = Key(
    "predictions/aci/{run_id}.json",
    "layout 1's online interval calibration state (tracker or ACI; a file without `method` is ACI), continued for runs trained before layout 2",
    rebuild="delete it: predict restarts from the run's calibration",
)
BEST_PARAMS = Key(
    "tuning/{study}/best_params.json",
    "best parameters, score, trial number, data fingerprint",
    rebuild="python -m flows.tune",
)
TUNING_PLOT = Key(
    "tuning/{study}/plots/{name}.png", "optimization history and parameter importances"
)

BACKTEST_REFIT = Key(
    "backtests/refits/{fit_key}/{refit}_{until}.parquet",
    "one backtest refit's forecasts: `symbol, date, y, refit`, the model's raw `q_*_raw` and each baseline's `<name>_q_*_raw` (`fit_key`: a digest of the data, settings and windows; a rerun reuses it)",
    rebuild="python -m flows.backtest (it refits what is missing)",
)
BACKTEST_REFIT_CALIBRATION = Key(
    "backtests/refits/{fit_key}/{refit}_{until}.json",
    "that refit's window, every method's per-level calibration, the fits that fell back and the sha256 of its forecasts (written last; layout 1: a CQR calibration)",
    rebuild="python -m flows.backtest (it refits what is missing)",
)
BACKTEST_PREDICTIONS = Key(
    "backtests/{backtest_id}/predictions.parquet",
    "every forecast of a backtest: `symbol, date, y, refit`, `vol_tercile`, [`sector`], and every method's quantiles per level, calibrated (`q_<level>` the model's, `<method>_q_<level>` each baseline's) and raw (the same with `_raw`)",
    rebuild="python -m flows.backtest",
)
BACKTEST_METRICS = Key(
    "backtests/{backtest_id}/metrics.json",
    "every method scored calibrated alike (and raw) on the same rows, with the figures and tests of a run's `metrics.json`, the monthly track record, the trackers' end states, the refit windows",
    rebuild="python -m flows.backtest",
)
BACKTEST_PLOT = Key(
    "backtests/{backtest_id}/plots/{name}.png",
    "coverage by month with the target band, CRPS ratio to each other candidate by month, width by month",
)
BACKTEST_MANIFEST = Key(
    "backtests/{backtest_id}/manifest.json",
    "backtest id, settings, data fingerprint, refits, sha256 of every file (written last)",
    rebuild="python -m flows.backtest",
)
RUN_DRIFT_REFERENCE = Key(
    f"models/{{run_id}}/{DRIFT_REFERENCE_FILE}",
    "per model feature over the deployed fit's training rows: decile edges and bin shares (PSI), 101 quantiles and the CDF at them (KS); the features' importance",
    rebuild="python -m flows.train (a new run; older runs have none and get no drift figures)",
)
MONITOR_SCORES = Key(
    "monitoring/scores.parquet",
    "every forecast whose outcome is known: `source (live/backtest), run_id, symbol, date, y, q_*, lo, hi, hit, pinball_<q>, pinball, ewma_pinball, vol20`, one row per (source, symbol, date)",
    rebuild="python -m flows.monitor --backfill",
)
MONITOR_SUMMARY = Key(
    "monitoring/summary.json",
    "the latest monitor run: rolling figures per window, feature drift, data health, alerts",
    rebuild="python -m flows.monitor",
)
MONITOR_ALERTS = Key(
    "monitoring/alerts.json",
    "the alert conditions active now (each alerts once until it clears) and their history",
    rebuild="delete it: the conditions that hold alert again",
)
REPORT = Key(
    "reports/{as_of}/index.html",
    "the HTML report for the predictions of `<as_of>` (self-contained: data and JavaScript inlined)",
    rebuild="python -m flows.report",
)
REPORT_META = Key(
    "reports/{as_of}/report.json",
    "which run and backtest a report was drawn from (retention keeps that run)",
    rebuild="python -m flows.report",
)
REPORT_LATEST = Key(
    "reports/latest/index.html", "a copy of the newest report", rebuild="python -m flows.report"
)

KEYS: tuple[Key, ...] = (
    STORE_META,
    LOCK,
    PRICES,
    QUARANTINE,
    INGESTION,
    CORRUPT,
    QUALITY_REPORT,
    FEATURES_MANIFEST,
    FEATURE_PART,
    MARKET,
    RUN_MODEL,
    RUN_MEMBER,
    RUN_HOLDOUT_MODEL,
    RUN_CALIBRATION,
    RUN_METRICS,
    RUN_TEST_PREDICTIONS,
    RUN_DRIFT_REFERENCE,
    RUN_PLOT,
    RUN_MANIFEST,
    RUN_WANDB,
    LATEST_RUN,
    PREDICTIONS,
    TRACKER_STATE,
    ACI_STATE,
    BEST_PARAMS,
    TUNING_PLOT,
    BACKTEST_REFIT,
    BACKTEST_REFIT_CALIBRATION,
    BACKTEST_PREDICTIONS,
    BACKTEST_METRICS,
    BACKTEST_PLOT,
    BACKTEST_MANIFEST,
    MONITOR_SCORES,
    MONITOR_SUMMARY,
    MONITOR_ALERTS,
    REPORT,
    REPORT_META,
    REPORT_LATEST,
)


def rebuild_hint(key: str) -> str:
    """How to rebuild a damaged copy of ``key`` ('' when no pipeline step writes it)."""
    return next((k.rebuild for k in KEYS if k.match(key) is not None), "")


def run_key(run_id: str, rel: str) -> str:
    """The key of a file of run ``run_id`` by its path inside the run folder."""
    return f"models/{run_id}/{rel}"


def store_meta(old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``store.json`` that the first write of this code into a store records
    (a store marked by an older version keeps its ``created_at`` and says since when)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    if old is None:
        return {"layout_version": LAYOUT_VERSION, "created_at": now}
    return old | {"layout_version": LAYOUT_VERSION, "upgraded_at": now}


def check_layout(store: Store) -> int:
    """The store's layout version, read without writing anything. A store without
    ``store.json`` (empty, or written before versions existed) is version 1. A store newer
    than this code is refused; an older one is migrated here once a layout change needs it."""
    key = STORE_META()
    version = int(store.read_json(key).get("layout_version", 1)) if store.exists(key) else 1
    if version > LAYOUT_VERSION:
        raise InputError(
            f"store {store.url} has layout version {version}, newer than this code's "
            f"{LAYOUT_VERSION}: update the code before using it"
        )
    return version
