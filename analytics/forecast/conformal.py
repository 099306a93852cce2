"""Split-conformal calibration of the forecast band: make the 80 % band cover 80 % of past actuals.

Why
---
Each method's own interval rests on its model assumptions (normal errors, independent payments...),
and in backtests the 80 % bands covered anywhere from 61 % to 92 % of actual weeks. Split conformal
prediction (Vovk et al. 2005; Angelopoulos & Bates, *A Gentle Introduction to Conformal Prediction
and Distribution-Free Uncertainty Quantification*, 2021, §1 and §2.3 "conformalizing scalar
uncertainty estimates") rescales the band with the method's own past errors.

Score (scaled residual relative to the method's own band)
--------------------------------------------------------
For a past forecast from origin ``o`` at horizon week ``h`` with point ``F``, band ``[L, U]`` and
actual receipts ``A``::

    s = (A − F) / max(U − F, 1 cent)   if A ≥ F
    s = (F − A) / max(F − L, 1 cent)   if A < F

so ``s ≤ 1`` exactly when the model band covered the actual, and ``s ≤ q`` when the band stretched
by ``q`` on both sides does.

Calibration factor
------------------
Per horizon group ``g`` (weeks 1–4 and weeks 5 and later: with 8 past origins there are 32 and 72
scores, too few per single week), from the ``n`` scores available at the forecast origin ``T``::

    q_g = the ⌈(n + 1)·level⌉-th smallest score          (the conformal quantile)

Only errors fully known at ``T`` are used: origin ``o < T`` and ``o + 7·h ≤ T`` (the actual week
has ended) — no look-ahead. The calibrated band is ``F − q_g·(F − L)`` (floored at 0) to
``F + q_g·(U − F)``, then made non-narrowing over the horizon like the model band; the point
forecast ``F`` is unchanged. ``q_g > 1`` widens, ``q_g < 1`` narrows.

Too few past errors
-------------------
A group needs at least :data:`MIN_SCORES` scores from at least :data:`MIN_ORIGINS` origins (and
``⌈(n + 1)·level⌉ ≤ n``); otherwise that group keeps the method's own band and the forecast says so
(``attrs["band"] == "model"`` or ``"partly calibrated"`` with ``attrs["band_note"]``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Iterable

import numpy as np
import pandas as pd

#: Horizon groups calibrated together (the last one is open-ended).
GROUPS: tuple[tuple[int, int], ...] = ((1, 4), (5, 10 ** 6))
MIN_SCORES = 8
MIN_ORIGINS = 3


def band_scores(forecast, lower, upper, actual) -> np.ndarray:
    """Scaled residuals ``s`` of past forecasts (see module docstring); arrays in cents.

    Example
    -------
    >>> band_scores([100.0], [80.0], [150.0], [200.0])   # 100 above F, half-width above 50
    array([2.])
    """
    f, lo, hi, a = (np.asarray(x, dtype=float) for x in (forecast, lower, upper, actual))
    up = np.maximum(hi - f, 1.0)
    dn = np.maximum(f - lo, 1.0)
    return np.where(a >= f, (a - f) / up, (f - a) / dn)


def conformal_quantile(scores: Iterable[float], level: float) -> float | None:
    """The ``⌈(n + 1)·level⌉``-th smallest of ``n`` scores, or None when that rank exceeds ``n``.

    Example
    -------
    >>> conformal_quantile([0.5, 1.0, 1.5, 2.0, 3.0], 0.8)   # ⌈6 · 0.8⌉ = 5th smallest
    3.0
    """
    s = np.sort(np.asarray(list(scores), dtype=float))
    n = len(s)
    k = math.ceil((n + 1) * level - 1e-9)
    if n == 0 or k > n:
        return None
    return float(s[max(k, 1) - 1])


def _label(g: tuple[int, int]) -> str:
    return f"{g[0]}-{g[1]}" if g[1] < 10 ** 6 else f"{g[0]}+"


@dataclasses.dataclass(frozen=True)
class BandCalibration:
    """Conformal factors of one method at one forecast origin (hashable: the page caches on it).

    Attributes
    ----------
    method : str
    level : float
    as_of : datetime.date
        The forecast origin; only errors known by then were used.
    groups : tuple of (first_week, last_week)
    factors : tuple of float or None
        ``q_g`` per group; None = too few past errors, the model band is kept there.
    n_scores, n_origins : tuple of int
        Scores and distinct past origins behind each factor.
    """

    method: str
    level: float
    as_of: dt.date
    groups: tuple
    factors: tuple
    n_scores: tuple
    n_origins: tuple

    def factor(self, h: int) -> float | None:
        """``q`` for horizon week ``h`` (None: keep the model band)."""
        for g, q in zip(self.groups, self.factors):
            if g[0] <= h <= g[1]:
                return q
        return None

    @property
    def status(self) -> str:
        """``conformal`` (every group calibrated), ``partly calibrated`` or ``model``."""
        done = [q is not None for q in self.factors]
        return "conformal" if all(done) else ("partly calibrated" if any(done) else "model")

    @property
    def note(self) -> str:
        parts = []
        for g, q, n, k in zip(self.groups, self.factors, self.n_scores, self.n_origins):
            if q is None:
                parts.append(f"weeks {_label(g)}: model band kept (only {n} past errors from {k} origins)")
            else:
                parts.append(f"weeks {_label(g)}: ×{q:.2f} ({n} past errors, {k} origins)")
        return f"{int(round(self.level * 100))}% band conformal-calibrated on past {self.method} errors: " + \
            "; ".join(parts)

    def as_dict(self) -> dict:
        return {_label(g): (None if q is None else round(q, 4)) for g, q in zip(self.groups, self.factors)}


def calibrate(scores: pd.DataFrame | None, method: str, as_of: dt.date, level: float = 0.8,
              groups: tuple = GROUPS, min_scores: int = MIN_SCORES,
              min_origins: int = MIN_ORIGINS) -> BandCalibration:
    """Conformal factors for ``method`` at forecast origin ``as_of`` from past backtest scores.

    Parameters
    ----------
    scores : pandas.DataFrame or None
        ``origin`` (date), ``method``, ``horizon_week``, ``score`` (:func:`band_scores`), e.g.
        ``backtest(...).attrs["band_scores"]``. Rows whose actual week ends after ``as_of``
        (``origin + 7·horizon_week > as_of``) are ignored: no look-ahead.
    method : str
    as_of : datetime.date
    level : float
        Target coverage (the same level the scored bands were computed at).
    groups, min_scores, min_origins
        See the module docstring.

    Returns
    -------
    BandCalibration

    Example
    -------
    >>> cal = calibrate(bt.attrs["band_scores"], "ets", dt.date(2026, 10, 31))   # doctest: +SKIP
    >>> cal.factors                                                             # doctest: +SKIP
    (1.31, 1.18)
    """
    if scores is None or not len(scores):
        f = scores_frame([])
    else:
        f = scores if isinstance(scores, pd.DataFrame) else scores_frame(scores)
    f = f[f["method"] == method]
    if len(f):
        org = pd.to_datetime(f["origin"])
        known = org + pd.to_timedelta(7 * f["horizon_week"].astype(int), unit="D") <= pd.Timestamp(as_of)
        f = f[known.to_numpy() & (org < pd.Timestamp(as_of)).to_numpy()]
    factors, ns, ks = [], [], []
    for g in groups:
        part = f[(f["horizon_week"] >= g[0]) & (f["horizon_week"] <= g[1])]
        n, k = len(part), int(part["origin"].nunique()) if len(part) else 0
        q = conformal_quantile(part["score"], level) if n >= min_scores and k >= min_origins else None
        factors.append(q)
        ns.append(n)
        ks.append(k)
    return BandCalibration(method=method, level=float(level), as_of=as_of, groups=tuple(groups),
                           factors=tuple(factors), n_scores=tuple(ns), n_origins=tuple(ks))


def scores_frame(records) -> pd.DataFrame:
    """``DataFrame[origin, method, horizon_week, score]`` from ``(origin_iso, method, h, score)`` tuples."""
    f = pd.DataFrame(list(records), columns=["origin", "method", "horizon_week", "score"])
    f["origin"] = pd.to_datetime(f["origin"]).dt.date if len(f) else f["origin"]
    return f


def apply_calibration(expected: np.ndarray, lower: np.ndarray, upper: np.ndarray, cal: BandCalibration | None):
    """The calibrated band ``(lower, upper)`` for horizon weeks 1..len(expected) (see module docstring).

    Groups without a factor keep the model band. The result never narrows further out.
    """
    e = np.asarray(expected, dtype=float)
    lo = np.asarray(lower, dtype=float).copy()
    hi = np.asarray(upper, dtype=float).copy()
    if cal is None:
        return lo, hi
    for i in range(len(e)):
        q = cal.factor(i + 1)
        if q is not None:
            lo[i] = e[i] - q * (e[i] - lo[i])
            hi[i] = e[i] + q * (hi[i] - e[i])
    lo_w = np.maximum.accumulate(np.maximum(e - lo, 0.0))
    hi_w = np.maximum.accumulate(np.maximum(hi - e, 0.0))
    return np.maximum(e - lo_w, 0.0), e + hi_w


__all__ = ["BandCalibration", "band_scores", "conformal_quantile", "calibrate", "apply_calibration",
           "scores_frame", "GROUPS", "MIN_SCORES", "MIN_ORIGINS"]
