"""The deployed method chosen by evidence (``model.name = auto``): the candidate with the lowest
mean CRPS on train's held-out period, every candidate calibrated alike (the learner, each
baseline, their online aggregation), and why, in words the model card prints."""

from __future__ import annotations

from typing import Any


def choose(card: dict[str, Any]) -> str:
    """The candidate with the lowest calibrated CRPS (the first listed on a tie)."""
    return min(card["methods"], key=lambda name: card["calibrated"][name]["crps"])


def reasons(card: dict[str, Any], chosen: str, auto: bool) -> str:
    """Why ``chosen`` is deployed: the rule, every candidate's CRPS, the Model Confidence Set
    and the Diebold-Mariano p-values of the chosen against each other candidate."""
    crps = {name: card["calibrated"][name]["crps"] for name in card["methods"]}
    ranked = ", ".join(f"{n} {v:.6f}" for n, v in sorted(crps.items(), key=lambda kv: kv[1]))
    rule = (
        "Chosen by `auto`: the lowest mean CRPS on the held-out test period among the candidates, "
        "each calibrated alike."
        if auto
        else "Named by model.name."
    )
    lines = [f"{rule} Mean CRPS: {ranked}."]
    mcs = card["tests"].get("mcs")
    if mcs:
        lines.append(
            f"The {1 - mcs['size']:.0%} Model Confidence Set holds {', '.join(mcs['included'])}."
        )
    dm = card["tests"]["diebold_mariano"]["calibrated"].get(chosen, {})
    if dm:
        lines.append(
            f"Diebold-Mariano p-values of {chosen} against each: "
            + ", ".join(f"{n} {t['p_value']:.3g}" for n, t in dm.items())
            + "."
        )
    return " ".join(lines)
