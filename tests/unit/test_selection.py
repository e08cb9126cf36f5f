"""``auto``'s choice (core.modeling.selection): the lowest calibrated CRPS, with its reasons."""

from __future__ import annotations

from core.modeling.selection import choose, reasons


def card(crps: dict[str, float]) -> dict:
    dm = {a: {b: {"p_value": 0.01 if a < b else 0.2} for b in crps if b != a} for a in crps}
    return {
        "methods": list(crps),
        "calibrated": {name: {"crps": value} for name, value in crps.items()},
        "tests": {
            "diebold_mariano": {"calibrated": dm},
            "mcs": {"size": 0.1, "included": ["boa", "har"]},
        },
    }


def test_auto_chooses_the_lowest_crps_and_says_why():
    scores = card({"lightgbm": 0.0071, "har": 0.0069, "ewma": 0.0072, "boa": 0.0068})
    assert choose(scores) == "boa"
    text = reasons(scores, "boa", auto=True)
    assert text.startswith("Chosen by `auto`")
    assert "boa 0.006800, har 0.006900, lightgbm 0.007100, ewma 0.007200" in text
    assert "Model Confidence Set holds boa, har" in text
    assert (
        "Diebold-Mariano p-values of boa against each: lightgbm 0.01, har 0.01, ewma 0.01" in text
    )
    assert reasons(scores, "lightgbm", auto=False).startswith("Named by model.name. Mean CRPS")


def test_a_tie_goes_to_the_first_listed():
    assert choose(card({"catboost": 0.01, "ewma": 0.01})) == "catboost"
