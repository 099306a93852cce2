"""Split-conformal calibration of the forecast band, worked out by hand, plus no look-ahead.

Hand case (level 0.8). Scores are scaled residuals relative to the model band:
  F = 100, band [80, 150]: actual 200 -> (200 - 100) / (150 - 100) = 2.0; actual 90 -> (100 - 90) / 20 = 0.5.
Group weeks 1-4 from 3 origins x 4 weeks = 12 scores 0.1, 0.2, ..., 1.2: rank ⌈(12 + 1) · 0.8⌉ = ⌈10.4⌉ = 11
  -> q = 1.1, so a band [80, 150] around 100 becomes [100 - 1.1 · 20, 100 + 1.1 · 50] = [78, 155].
Group weeks 5+ from the same 3 origins x 9 weeks = 27 scores all 0.5 -> q = 0.5 (the band narrows):
  [100 - 10, 100 + 25] = [90, 125], then the band is made non-narrowing: weeks 5+ keep [78, 155].
"""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from analytics.forecast import (apply_calibration, backtest, band_backtest, band_backtest_summary, band_calibration,
                                band_scores, calibrate, forecast)
from analytics.forecast.conformal import conformal_quantile
from tests.test_forecast import _grow_ledger

D = dt.date
AS_OF = D(2024, 6, 30)


def _hand_scores():
    rows = []
    origins = [AS_OF - dt.timedelta(days=7 * j) for j in (13, 17, 21)]  # every actual week ended by AS_OF
    s = iter(np.arange(1, 13) / 10)
    for o in origins:
        for h in range(1, 14):
            rows.append((o.isoformat(), "ets", h, float(next(s)) if h <= 4 else 0.5))
    return tuple(rows)


def test_scores_and_quantile_by_hand():
    assert band_scores([100.0, 100.0, 100.0], [80.0, 80.0, 80.0], [150.0, 150.0, 150.0],
                       [200.0, 90.0, 100.0]).tolist() == [2.0, 0.5, 0.0]
    assert conformal_quantile(np.arange(1, 13) / 10, 0.8) == pytest.approx(1.1)
    assert conformal_quantile([1.0, 2.0, 3.0], 0.8) is None  # ⌈4 · 0.8⌉ = 4 > 3: not enough scores


def test_calibration_factor_by_hand():
    cal = calibrate(_hand_scores(), "ets", AS_OF, level=0.8)
    assert cal.factors == pytest.approx((1.1, 0.5))
    assert cal.n_scores == (12, 27) and cal.n_origins == (3, 3) and cal.status == "conformal"
    e = np.full(6, 100.0)
    lo, hi = apply_calibration(e, np.full(6, 80.0), np.full(6, 150.0), cal)
    assert lo.tolist() == pytest.approx([78.0] * 6) and hi.tolist() == pytest.approx([155.0] * 6)
    # weeks 5+ alone would narrow to [90, 125]; with a wider model band there it shows
    lo, hi = apply_calibration(e, np.array([80, 80, 80, 80, 0, 0.0]), np.array([150, 150, 150, 150, 300, 300.0]), cal)
    assert lo.tolist() == pytest.approx([78, 78, 78, 78, 50, 50]) and hi.tolist() == pytest.approx(
        [155, 155, 155, 155, 200, 200])
    # another method has no scores: the model band is kept and the calibration says so
    none = calibrate(_hand_scores(), "sarimax", AS_OF)
    assert none.status == "model" and "model band kept" in none.note
    assert apply_calibration(e, np.full(6, 80.0), np.full(6, 150.0), none)[0].tolist() == [80.0] * 6


def test_calibration_never_looks_ahead():
    base = calibrate(_hand_scores(), "ets", AS_OF)
    # errors whose actual week ends after AS_OF (origin + 7h > AS_OF) must be ignored
    late = [(D(2024, 6, 2).isoformat(), "ets", h, 99.0) for h in range(5, 14)]          # ends 07-07 .. 09-01
    after = [(D(2024, 7, 7).isoformat(), "ets", h, 99.0) for h in range(1, 14)]          # origin after AS_OF
    cal = calibrate(_hand_scores() + tuple(late + after), "ets", AS_OF)
    assert cal.factors == base.factors and cal.n_scores == base.n_scores
    # with too few past origins the model band is kept
    few = calibrate(_hand_scores()[:26], "ets", AS_OF)  # two origins
    assert few.status == "model"


def test_forecast_band_is_calibrated_and_the_point_unchanged(duckdb_engine):
    _grow_ledger(duckdb_engine)
    bt = backtest(duckdb_engine, weeks=13, origins=8, end=AS_OF, methods=["naive_mean4"])
    cal = band_calibration(bt, "naive_mean4")
    assert cal.status == "conformal" and cal.as_of == AS_OF
    own = forecast(duckdb_engine, AS_OF, weeks=13, method="naive_mean4")  # runs its own one-method backtest
    given = forecast(duckdb_engine, AS_OF, weeks=13, method="naive_mean4", calibration=cal)
    model = forecast(duckdb_engine, AS_OF, weeks=13, method="naive_mean4", band="model")
    pd.testing.assert_frame_equal(own, given)
    assert own.attrs["band"] == "conformal" and own.attrs["band_factors"] == cal.as_dict()
    assert model.attrs["band"] == "model"
    assert own["expected"].tolist() == model["expected"].tolist()
    q = cal.factors[0]
    want_hi = model["expected"] + q * (model["upper"] - model["expected"])
    assert np.allclose(own["upper"].head(4), want_hi.head(4), atol=0.011)
    width = (own["upper"] - own["lower"]).to_numpy()
    assert (np.diff(width) >= -0.011).all()


def test_adding_future_rows_does_not_change_a_past_band(duckdb_engine, tmp_path):
    from analytics import db

    as_of = D(2024, 3, 31)
    _grow_ledger(duckdb_engine, end=D(2024, 9, 30))
    short = db.connect(f"duckdb:///{tmp_path / 'short.duckdb'}")
    _grow_ledger(short, end=D(2024, 9, 30), cut=as_of)  # the same ledger without anything dated later
    a = forecast(duckdb_engine, as_of, weeks=13, method="naive_mean4")
    b = forecast(short, as_of, weeks=13, method="naive_mean4")
    short.dispose()
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["band_factors"] == b.attrs["band_factors"] and a.attrs["band"] == "conformal"


def test_too_little_history_keeps_the_model_band(duckdb_engine):
    _grow_ledger(duckdb_engine, end=D(2023, 9, 30))  # 39 weeks: no backtest origin with 13 weeks of actuals
    fc = forecast(duckdb_engine, D(2023, 9, 30), weeks=13, method="naive_mean4")
    model = forecast(duckdb_engine, D(2023, 9, 30), weeks=13, method="naive_mean4", band="model")
    assert fc.attrs["band"] == "model" and "model band kept" in fc.attrs["band_note"]
    assert fc[["expected", "lower", "upper"]].equals(model[["expected", "lower", "upper"]])


def test_nested_band_backtest_calibrates_each_origin_on_earlier_ones_only(duckdb_engine):
    _grow_ledger(duckdb_engine)
    nb = band_backtest(duckdb_engine, methods=["naive_mean4"], weeks=13, calib_origins=4)
    origins = sorted(nb["origin"].unique())
    # the first test origins have no calibration origin 13+ weeks earlier: model band there
    first = nb[nb["origin"] == origins[0]]
    assert (first["band"] == "model").all() and (first["cal_upper"] == first["upper"]).all()
    # an origin's calibrated band equals calibrating on its four past origins alone (nothing later)
    t = origins[-1]
    past = [t - dt.timedelta(days=7 * (13 + 4 * k)) for k in range(4)]
    bt = backtest(duckdb_engine, weeks=13, origins=past, end=t, methods=["naive_mean4"])
    cal = band_calibration(bt, "naive_mean4", t)
    row = nb[(nb["origin"] == t)].sort_values("horizon_week")
    lo, hi = apply_calibration(row["expected"].to_numpy() * 100, row["lower"].to_numpy() * 100,
                               row["upper"].to_numpy() * 100, cal)
    assert np.allclose(hi / 100, row["cal_upper"]) and np.allclose(lo / 100, row["cal_lower"])
    s = band_backtest_summary(nb)
    assert set(s["weeks"]) == {"1-4", "5-13", "all"} and s["coverage_cal"].between(0, 1).all()
