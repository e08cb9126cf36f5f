import datetime as dt
from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from core.modeling.distribution_scores import interval_score, pinball_rows
from core.modeling.metrics import crossing_rate, rank_ic
from core.modeling.timeline import holdout_window, segment_expr


def test_metrics_against_hand_computed_values():
    y = np.array([0.0, 1.0, -1.0, 2.0])
    preds = np.array([[-1.0, 0.0, 1.0], [0.0, 0.5, 1.5], [-0.5, 0.0, 0.5], [0.0, 1.0, 1.0]])
    q = [0.1, 0.5, 0.9]
    loss = pinball_rows(y, preds, q).mean(axis=0)
    # q=0.1: diffs 1, 1, -0.5, 2 -> 0.1, 0.1, 0.45, 0.2 -> mean 0.2125
    assert loss[0] == pytest.approx(0.2125)
    # q=0.5: diffs 0, 0.5, -1, 1 -> 0, 0.25, 0.5, 0.5 -> 0.3125
    assert loss[1] == pytest.approx(0.3125)
    lo, hi = preds[:, 0], preds[:, 2]
    # misses: row 2 by 0.5 below, row 3 by 1 above; alpha 0.2 -> penalty 10 x miss
    assert interval_score(y, lo, hi, 0.2).mean() == pytest.approx((5.5 + 10 * 0.5 + 10 * 1.0) / 4)
    assert crossing_rate(np.array([[0, 1, 2], [0, 2, 1], [1, 1, 1]])) == pytest.approx(1 / 3)


def test_rank_ic():
    dates = np.array([1, 1, 1, 2, 2, 2])
    y = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    perfect = rank_ic(dates, y, y)
    assert perfect["rank_ic_mean"] == pytest.approx(1.0)
    mixed = rank_ic(dates, y, np.array([1.0, 2.0, 3.0, 3.0, 2.0, 1.0]))
    assert mixed["rank_ic_mean"] == pytest.approx(0.0)


def test_splits_fractions_order_and_embargo():
    days = pl.date_range(dt.date(2015, 1, 1), dt.date(2020, 12, 31), eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    splits = holdout_window(days, embargo=3, lookback_days=1960)
    trading = days.to_list()
    order = [splits.train, splits.val, splits.cal, splits.test]
    assert splits.test[1] == trading[-1]
    assert splits.train[0] >= trading[-1] - dt.timedelta(days=1960)
    for (_, end), (start, _) in pairwise(order):
        gap = trading.index(start) - trading.index(end)
        assert gap == 4  # 3 embargoed dates between: no h-day target reaches the next segment
    sizes = [trading.index(b) - trading.index(a) + 1 for a, b in order]
    total = sum(sizes) + 9
    assert [round(s / total, 1) for s in sizes] == [0.6, 0.1, 0.2, 0.1]
    frame = pl.DataFrame({"date": trading}).with_columns(segment_expr(splits))
    assert frame["segment"].null_count() == 9 + (len(trading) - total)
    with pytest.raises(ValueError, match="too few dates"):
        holdout_window(days.head(20), embargo=5)


def test_no_labelled_dates_is_insufficient_data_not_a_crash():
    from core.errors import InsufficientDataError

    with pytest.raises(InsufficientDataError, match="no labelled rows"):
        holdout_window(pl.Series("date", [None, None], dtype=pl.Date), embargo=3)


def test_risk_tests_against_hand_computed_values():
    from core.modeling.metrics import christoffersen, diebold_mariano, kupiec, newey_west_variance

    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert newey_west_variance(x, 0) == pytest.approx(5 / 4 / 4)
    assert newey_west_variance(x, 1) == pytest.approx((1.25 + 2 * 0.5 * 1.25 / 4) / 4)
    dm = diebold_mariano(np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0]), 0)
    assert dm["mean_diff"] == -0.5 and dm["statistic"] == pytest.approx(-2.0)
    assert dm["p_value"] == pytest.approx(0.0455, abs=1e-4)
    assert dm["p_a_better"] == pytest.approx(0.02275, abs=1e-5)
    # Jorion's classic case: 5 exceedances of a 99 % VaR in 250 days, LR = 1.96.
    pof = kupiec(np.array([True] * 5 + [False] * 245), 0.01)
    assert pof["lr"] == pytest.approx(1.9568, abs=1e-4)
    assert pof["p_value"] == pytest.approx(0.1619, abs=1e-3)
    assert kupiec(np.zeros(100, dtype=bool), 0.1)["lr"] == pytest.approx(-2 * 100 * np.log(0.9))
    spread = christoffersen(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool))
    assert spread["lr"] == pytest.approx(0.0, abs=1e-12) and spread["p_value"] == pytest.approx(1.0)
    clustered = christoffersen(np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], dtype=bool))
    assert clustered["lr"] == pytest.approx(2.231436, abs=1e-5)
