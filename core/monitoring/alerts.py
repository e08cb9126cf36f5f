"""Alert conditions and their memory: a condition alerts once when it starts, not every day
it persists, and again only after it has cleared and come back (state in
``monitoring/alerts.json``)."""

from __future__ import annotations

from typing import Any

import polars as pl

from core.config import MonitorSettings


def kind(key: str) -> str:
    """A condition key's kind: ``coverage_60`` -> coverage, ``psi:vol_ewm`` -> psi."""
    return key.split(":")[0].split("_")[0]


def conditions(
    rolling: dict[str, Any],
    drift: pl.DataFrame | None,
    fresh: dict[str, Any] | None,
    cfg: MonitorSettings,
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """(the conditions that hold now, by key; the kinds that could be checked): the longest
    window's coverage outside the band (once that window is full), a watched feature's PSI
    above the line, too few fresh bars. A kind not checked (no full window, no drift
    reference, no ingestion table) neither starts nor clears a condition."""
    now: dict[str, dict[str, Any]] = {}
    longest = str(max(cfg.windows))
    figures = rolling.get(longest) or {}
    low, high = cfg.coverage_band
    checked = {"coverage"} if figures.get("days") == max(cfg.windows) else set()
    checked |= ({"psi"} if drift is not None else set()) | (
        {"fresh"} if fresh is not None else set()
    )
    if "coverage" in checked and not low <= figures["coverage"] <= high:
        now[f"coverage_{longest}"] = {
            "reason": f"{longest}-day coverage {figures['coverage']:.3f} is outside "
            f"[{low:.2f}, {high:.2f}] ({figures['dates'][0]} .. {figures['dates'][1]})",
            "coverage": figures["coverage"],
        }
    for row in (drift if drift is not None else pl.DataFrame()).iter_rows(named=True):
        if row["alerting"]:
            now[f"psi:{row['feature']}"] = {
                "reason": f"feature {row['feature']} (importance rank {row['rank']}) drifted: "
                f"PSI {row['psi']:.2f} > {cfg.psi_alert:.2f}, KS {row['ks']:.2f}",
                "psi": row["psi"],
                "ks": row["ks"],
            }
    if fresh is not None and fresh["fresh_share"] < cfg.fresh_share:
        now["fresh_bars"] = {
            "reason": f"only {fresh['fresh']} of {fresh['symbols']} symbols "
            f"({fresh['fresh_share']:.1%}) have a bar for {fresh['session']} "
            f"(alert below {cfg.fresh_share:.0%})",
            "fresh_share": fresh["fresh_share"],
        }
    return now, checked


def advance(
    state: dict[str, Any] | None,
    now: dict[str, dict[str, Any]],
    as_of: str,
    checked: set[str] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the new state, the conditions that start today and so alert). A condition already
    active stays silent; one that cleared (its kind checked, the condition gone) is
    forgotten, so its return alerts again. A pass as of a day before the state's leaves it
    as it is: replaying the past neither alerts nor forgets."""
    if state and str(state.get("as_of", "")) > as_of:
        return state, {}
    active = dict((state or {}).get("active", {}))
    checked = {kind(k) for k in (*active, *now)} if checked is None else checked
    fired = {k: v for k, v in now.items() if k not in active}
    cleared = sorted(k for k in set(active) - set(now) if kind(k) in checked)
    kept = {k: v for k, v in active.items() if k not in now and k not in cleared}
    new_active = kept | {k: active.get(k, {"since": as_of}) | v for k, v in now.items()}
    history = list((state or {}).get("history", []))
    history += [{"date": as_of, "started": k} for k in sorted(fired)]
    history += [{"date": as_of, "cleared": k} for k in cleared]
    return {"as_of": as_of, "active": new_active, "history": history[-200:]}, fired
