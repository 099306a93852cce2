"""Top-down (statsmodels) forecasters, naive baselines and the combination, all fit/predict style.

Every estimator takes a :class:`~analytics.forecast.data.History` in ``fit`` and returns
``DataFrame[week_start, expected, lower, upper]`` in cents from ``predict(weeks)``. Top-down models see
only the weekly receipts series (which already contains the receipts of invoices issued later, so new
sales are in them by construction).

Methods (names used everywhere: API, CLI, backtest)
---------------------------------------------------
``naive_last``      last week's receipts repeated; interval ``σ√h`` (σ = sd of one-step changes).
``naive_seasonal``  the same week a year (52 weeks) earlier; interval ``σ√(⌊(h−1)/52⌋+1)``; with less than
                    52 weeks of history it falls back to ``naive_last``.
``naive_mean4``     average of the last 4 weeks; interval ``σ√(1 + 1/4)``.
``ets``             statsmodels ETSModel, additive error, damped additive trend (Holt's damped method, the
                    non-seasonal member of the Holt–Winters family); analytic prediction interval.
``holt_winters``    statsmodels ExponentialSmoothing with additive damped trend and additive 52-week
                    seasonality when there are at least two full years of weekly history, else the same
                    without seasonality; interval from 500 simulated paths.
``sarimax``         statsmodels SARIMAX(1,1,1); analytic prediction interval.
``bottom_up``       :class:`~analytics.forecast.bottom_up.BottomUpForecaster`.
``combined``        ½ bottom-up + ½ mean(ets, sarimax): point and both bounds averaged.

Series are scaled by their mean before fitting (numerical stability) and the predictions scaled back;
lower bounds are floored at zero.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from analytics.forecast.bottom_up import BottomUpForecaster, week_starts
from analytics.forecast.data import History

SEASON = 52


def _frame(history: History, weeks: int, mean, lower, upper) -> pd.DataFrame:
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    return pd.DataFrame({
        "week_start": week_starts(history.as_of, weeks),
        "expected": mean,
        "lower": np.maximum(np.minimum(np.asarray(lower, dtype=float), mean), 0.0),
        "upper": np.maximum(np.asarray(upper, dtype=float), mean),
    })


class _SeriesForecaster:
    """Base: stores the weekly receipts series at fit."""

    name = "series"
    min_weeks = 2

    def __init__(self, level: float = 0.8):
        self.level = level

    def fit(self, history: History):
        self.history_ = history
        self.y_ = history.receipts.to_numpy(dtype=float)
        if len(self.y_) < self.min_weeks:
            # too short for the model: fall back to the mean of what there is
            self.fallback_ = True
        else:
            self.fallback_ = False
            with threadpool_limits(1):  # tiny matrices: BLAS threads only add contention
                self._fit(self.y_)
        return self

    def _fit(self, y: np.ndarray) -> None:  # pragma: no cover - overridden
        pass

    @property
    def z(self) -> float:
        return float(norm.ppf(0.5 + self.level / 2))

    def predict(self, weeks: int = 13) -> pd.DataFrame:
        """Weekly expected receipts with interval (cents). Returns ``week_start, expected, lower, upper``."""
        if self.fallback_:
            y = self.y_
            m = float(y.mean()) if len(y) else 0.0
            sd = float(y.std(ddof=1)) if len(y) > 1 else m
            mean = np.full(weeks, m)
            return _frame(self.history_, weeks, mean, mean - self.z * sd, mean + self.z * sd)
        with threadpool_limits(1):
            mean, lower, upper = self._predict(weeks)
        return _frame(self.history_, weeks, mean, lower, upper)


class NaiveLast(_SeriesForecaster):
    """Last week's receipts repeated. Example: ``NaiveLast().fit(history).predict(13)``."""

    name = "naive_last"

    def _fit(self, y):
        d = np.diff(y)
        self.sigma_ = float(np.sqrt(np.mean(d ** 2))) if len(d) else 0.0

    def _predict(self, weeks):
        h = np.arange(1, weeks + 1)
        mean = np.full(weeks, self.y_[-1])
        half = self.z * self.sigma_ * np.sqrt(h)
        return mean, mean - half, mean + half


class NaiveSeasonal(_SeriesForecaster):
    """Receipts of the same week 52 weeks earlier (``naive_last`` with less than a year of history)."""

    name = "naive_seasonal"

    def _fit(self, y):
        self.seasonal_ = len(y) >= SEASON + 1
        if self.seasonal_:
            d = y[SEASON:] - y[:-SEASON]
        else:
            d = np.diff(y)
        self.sigma_ = float(np.sqrt(np.mean(d ** 2))) if len(d) else 0.0

    def _predict(self, weeks):
        h = np.arange(1, weeks + 1)
        y = self.y_
        if self.seasonal_:
            idx = len(y) - SEASON + (h - 1) % SEASON
            mean = y[idx]
            half = self.z * self.sigma_ * np.sqrt((h - 1) // SEASON + 1)
        else:
            mean = np.full(weeks, y[-1])
            half = self.z * self.sigma_ * np.sqrt(h)
        return mean, mean - half, mean + half


class NaiveMean4(_SeriesForecaster):
    """Average of the last 4 weeks, repeated."""

    name = "naive_mean4"
    window = 4

    def _fit(self, y):
        w = self.window
        if len(y) > w:
            fitted = np.convolve(y, np.ones(w) / w, mode="valid")[:-1]
            resid = y[w:] - fitted
            self.sigma_ = float(np.sqrt(np.mean(resid ** 2)))
        else:
            self.sigma_ = float(np.std(y))

    def _predict(self, weeks):
        m = float(self.y_[-self.window:].mean())
        mean = np.full(weeks, m)
        half = self.z * self.sigma_ * np.sqrt(1 + 1 / self.window)
        return mean, mean - half, mean + half


class ETSForecaster(_SeriesForecaster):
    """statsmodels ETSModel(error="add", trend="add", damped_trend=True) on weekly receipts."""

    name = "ets"
    min_weeks = 10

    def _fit(self, y):
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        self.scale_ = float(np.mean(np.abs(y))) or 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.res_ = ETSModel(pd.Series(y / self.scale_), error="add", trend="add",
                                 damped_trend=True).fit(disp=False)

    def _predict(self, weeks):
        n = len(self.y_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fr = self.res_.get_prediction(start=n, end=n + weeks - 1).summary_frame(alpha=1 - self.level)
        s = self.scale_
        return fr["mean"].to_numpy() * s, fr["pi_lower"].to_numpy() * s, fr["pi_upper"].to_numpy() * s


class HoltWintersForecaster(_SeriesForecaster):
    """statsmodels ExponentialSmoothing, damped additive trend, additive 52-week season when 2+ years."""

    name = "holt_winters"
    min_weeks = 10

    def __init__(self, level: float = 0.8, repetitions: int = 500, seed: int = 0):
        super().__init__(level)
        self.repetitions = repetitions
        self.seed = seed

    def _fit(self, y):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        self.scale_ = float(np.mean(np.abs(y))) or 1.0
        seasonal = "add" if len(y) >= 2 * SEASON else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.res_ = ExponentialSmoothing(
                y / self.scale_, trend="add", damped_trend=True, seasonal=seasonal,
                seasonal_periods=SEASON if seasonal else None, initialization_method="estimated",
            ).fit()

    def _predict(self, weeks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = np.asarray(self.res_.forecast(weeks))
            sims = np.asarray(self.res_.simulate(weeks, repetitions=self.repetitions, error="add", anchor="end",
                                                 random_state=np.random.default_rng(self.seed)))
        q = (1 - self.level) / 2
        lo, hi = np.quantile(sims, [q, 1 - q], axis=1)
        s = self.scale_
        return mean * s, lo * s, hi * s


class SarimaxForecaster(_SeriesForecaster):
    """statsmodels SARIMAX with ``order`` (default (1,1,1)) on weekly receipts."""

    name = "sarimax"
    min_weeks = 10

    def __init__(self, level: float = 0.8, order: tuple[int, int, int] = (1, 1, 1)):
        super().__init__(level)
        self.order = order

    def _fit(self, y):
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        self.scale_ = float(np.mean(np.abs(y))) or 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.res_ = SARIMAX(y / self.scale_, order=self.order).fit(disp=False)

    def _predict(self, weeks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self.res_.get_forecast(weeks)
            ci = np.asarray(f.conf_int(alpha=1 - self.level))
        s = self.scale_
        return np.asarray(f.predicted_mean) * s, ci[:, 0] * s, ci[:, 1] * s


class CombinedForecaster:
    """Weighted average of other forecasters' point forecasts and bounds.

    Parameters
    ----------
    members : list of (estimator, weight)
        Default: ½ bottom-up, ¼ ETS, ¼ SARIMAX.

    Example
    -------
    >>> CombinedForecaster().fit(history).predict(13)   # doctest: +SKIP
    """

    name = "combined"

    def __init__(self, members=None, level: float = 0.8):
        self.level = level
        self.members = members

    def fit(self, history: History, fitted: dict | None = None):
        """Fit the members; ``fitted`` may hold already-fitted members by name (reused, not refitted)."""
        members = self.members or [(BottomUpForecaster(level=self.level), 0.5),
                                   (ETSForecaster(level=self.level), 0.25),
                                   (SarimaxForecaster(level=self.level), 0.25)]
        fitted = fitted or {}
        self.members_ = [(fitted.get(m.name) or m.fit(history), w) for m, w in members]
        self.history_ = history
        return self

    def predict(self, weeks: int = 13, scenario=None) -> pd.DataFrame:
        total = sum(w for _, w in self.members_)
        out = None
        for m, w in self.members_:
            p = m.predict(weeks, scenario=scenario) if isinstance(m, BottomUpForecaster) else m.predict(weeks)
            part = p[["expected", "lower", "upper"]] * (w / total)
            out = part if out is None else out + part
        return pd.concat([pd.DataFrame({"week_start": week_starts(self.history_.as_of, weeks)}), out], axis=1)


#: Every method name and a factory making a fresh estimator for it.
METHODS = {
    "naive_last": NaiveLast,
    "naive_seasonal": NaiveSeasonal,
    "naive_mean4": NaiveMean4,
    "ets": ETSForecaster,
    "holt_winters": HoltWintersForecaster,
    "sarimax": SarimaxForecaster,
    "bottom_up": BottomUpForecaster,
    "combined": CombinedForecaster,
}
NAIVE_METHODS = ("naive_last", "naive_seasonal", "naive_mean4")


def fit_all(history: History, methods=None, level: float = 0.8) -> dict:
    """Fit every method in ``methods`` (default all) on ``history``; the combination reuses fitted members.

    Returns
    -------
    dict
        name -> fitted estimator.
    """
    methods = list(methods or METHODS)
    fitted: dict = {}
    for name in methods:
        if name == "combined":
            continue
        fitted[name] = METHODS[name](level=level).fit(history)
    if "combined" in methods:
        fitted["combined"] = CombinedForecaster(level=level).fit(history, fitted=fitted)
    return fitted
