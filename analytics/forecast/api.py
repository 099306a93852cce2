"""The forecast API: :func:`forecast`, :func:`backtest`, :func:`backtest_summary`, :func:`choose_method`.

Backtest (rolling origin)
-------------------------
Origins are dates ``end − 7·j`` (``end`` = the ledger's last live date, or the forecast's as-of), the most
recent first, ``step`` weeks apart, each leaving ``weeks`` full weeks of actuals before ``end`` and at
least ``min_train_weeks`` weeks of history before it. At each origin every method is fitted on
:func:`~analytics.forecast.data.load_history` *as of the origin* (nothing dated later is read) and
predicts ``weeks`` weeks; actuals are the receipts of those weeks. Per method and horizon week ``h``:

* ``wape = Σ_origins |F − A| / Σ_origins A``
* ``bias = Σ_origins (F − A) / Σ_origins A`` (positive = forecast too high)
* ``coverage`` = share of origins whose actual fell inside the interval.

Selection rule (``method="auto"``)
----------------------------------
The method with the lowest WAPE over weeks 1–13 together (``Σ|F − A| / ΣA`` over all horizons and
origins) wins, naive baselines included; a tie goes to the simpler method (order of
:data:`PREFERENCE`). Without enough history for a backtest (fewer than ``MIN_ORIGINS`` origins) the
combination is used and the page says so.

Band
----
Each method's own interval (level 80% by default), then made non-narrowing: the distance from the
expected value to each bound at week ``h`` is at least the one at week ``h − 1``. By default
(``band="conformal"``) that band is then rescaled by split-conformal factors computed from the same
method's backtest errors at origins strictly before the forecast origin whose actual weeks had ended
by then (:mod:`analytics.forecast.conformal`), so that on those past origins it covers ``level`` of the
actuals; the point forecast is unchanged. :func:`band_backtest` measures the coverage of the calibrated
band honestly (nested: each test origin is calibrated on earlier origins only).
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from analytics.errors import UserError
from analytics.forecast.bottom_up import BottomUpForecaster, week_starts
from analytics.forecast.conformal import BandCalibration, apply_calibration, band_scores, calibrate
from analytics.forecast.data import cents_to_units, ledger_end, load_history, receipts_by_week, resolve_currency
from analytics.forecast.models import METHODS, NAIVE_METHODS, CombinedForecaster, fit_all
from analytics.forecast.scenario import Scenario
from analytics.ledger import NO_FILTER, LedgerFilter

#: Tie-break order for the selection rule: simpler first.
PREFERENCE = ("naive_mean4", "naive_last", "naive_seasonal", "ets", "holt_winters", "sarimax", "bottom_up",
              "combined")
MIN_ORIGINS = 3
FALLBACK_METHOD = "combined"


class Shared(tuple):
    """An immutable tuple that ``copy.deepcopy`` returns as it is.

    pandas deep-copies a frame's ``attrs`` on every operation; a backtest's ``band_scores`` (hundreds of
    tuples) made each of them cost milliseconds, seconds per Cash forecast page run. Being immutable, it
    can be shared instead of copied.

    Example
    -------
    >>> import copy
    >>> scores = Shared([("2026-01-05", "combined", 1, 0.4)])
    >>> copy.deepcopy(scores) is scores
    True
    """

    def __deepcopy__(self, memo):
        return self


def _monotone_band(expected: np.ndarray, lower: np.ndarray, upper: np.ndarray):
    lo_w = np.maximum.accumulate(np.maximum(expected - lower, 0.0))
    hi_w = np.maximum.accumulate(np.maximum(upper - expected, 0.0))
    return expected, np.maximum(expected - lo_w, 0.0), expected + hi_w


def _predict(fitted, name: str, weeks: int, scenario: Scenario | None = None) -> pd.DataFrame:
    """Prediction of fitted method ``name`` (cents), with the scenario applied and the band made monotone."""
    est = fitted[name]
    if isinstance(est, (BottomUpForecaster, CombinedForecaster)):
        p = est.predict(weeks, scenario=scenario)
    else:
        p = est.predict(weeks)
        if scenario is not None and not scenario.is_base():
            bu = fitted["bottom_up"]
            delta = (bu.predict(weeks, scenario=scenario)["expected"] - bu.predict(weeks)["expected"]).to_numpy()
            p = p.copy()
            for col in ("expected", "lower", "upper"):
                p[col] = np.maximum(p[col].to_numpy() + delta, 0.0)
    e, lo, hi = _monotone_band(p["expected"].to_numpy(float), p["lower"].to_numpy(float),
                               p["upper"].to_numpy(float))
    return pd.DataFrame({"week_start": p["week_start"], "expected": e, "lower": lo, "upper": hi})


def _check_method(method: str) -> None:
    if method != "auto" and method not in METHODS:
        raise UserError(f"unknown forecast method {method!r}; choose auto or one of {', '.join(METHODS)}")


def forecast(conn, as_of: dt.date | None = None, weeks: int = 13, flt: LedgerFilter = NO_FILTER,
             method: str = "auto", scenario: Scenario | None = None, level: float = 0.8,
             selection: pd.DataFrame | None = None, backtest_origins: int = 8, band: str = "conformal",
             calibration: BandCalibration | None = None) -> pd.DataFrame:
    """Weekly cash-receipts forecast for the ``weeks`` weeks after ``as_of``.

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    as_of : datetime.date, optional
        Only ledger data dated on or before it is used. Default: the ledger's last live date.
    weeks : int
        Horizon (1..26); week 1 is ``as_of + 1 .. as_of + 7``.
    flt : LedgerFilter
        One currency: ``flt.currencies`` if it names one, else the ledger's main currency.
    method : str
        ``auto`` (pick by backtest, see module docstring) or a name in :data:`analytics.forecast.models.METHODS`.
    scenario : Scenario, optional
        Levers; for non-bottom-up methods the bottom-up scenario difference is added.
    level : float
        Interval coverage (0.8 = 80%).
    selection : pandas.DataFrame, optional
        A :func:`backtest_summary` already computed (the page passes it to avoid a second backtest).
    backtest_origins : int
        Origins of the backtest run by ``auto`` when no ``selection`` is given (and of the one-method
        backtest run for the band calibration when neither a backtest nor ``calibration`` is at hand).
    band : str
        ``conformal`` (default): the method's band rescaled by split-conformal factors from its past
        backtest errors (see :mod:`analytics.forecast.conformal`); ``model``: the method's own band.
    calibration : BandCalibration, optional
        Factors already computed (the page computes them from its own backtest, so no second backtest
        runs). Used only if its method and level match and its ``as_of`` is not after ``as_of``.

    Returns
    -------
    pandas.DataFrame
        ``week_start`` (date), ``expected``, ``lower``, ``upper`` (currency units, rounded half-up to
        cents), ``method``. ``attrs`` holds ``currency``, ``as_of``, ``level``, ``selection_note``,
        ``band`` (``conformal``, ``partly calibrated`` or ``model`` — the latter when too few past
        origins exist), ``band_note`` and ``band_factors`` (``{"1-4": q, "5+": q}``, None = not calibrated).

    Example
    -------
    >>> forecast(engine, dt.date(2013, 6, 30), weeks=13)   # doctest: +SKIP
    """
    _check_method(method)
    if not 1 <= int(weeks) <= 26:
        raise UserError(f"weeks must be between 1 and 26, got {weeks}")
    currency, flt = resolve_currency(conn, flt)
    as_of = as_of or ledger_end(conn, flt)
    note = ""
    if band not in ("conformal", "model"):
        raise UserError(f"band must be 'conformal' or 'model', got {band!r}")
    scores = selection.attrs.get("band_scores") if selection is not None else None
    if selection is not None and selection.attrs.get("level", level) != level:
        scores = None
    if method == "auto":
        if selection is None:
            try:
                bt = backtest(conn, flt, weeks=weeks, origins=backtest_origins, end=as_of, level=level)
                selection = backtest_summary(bt)
                scores = bt.attrs["band_scores"]
            except UserError as exc:
                selection, note = None, f"no backtest ({exc}); using {FALLBACK_METHOD}"
        if selection is not None and len(selection):
            method = choose_method(selection)
            row = selection.set_index("method").loc[method]
            note = (f"{method} chosen by backtest: WAPE weeks 1-4 {row.wape_1_4:.1%}, "
                    f"weeks 5-13 {row.wape_5_13:.1%} over {int(row.origins)} origins")
        elif not note:
            note = f"no backtest; using {FALLBACK_METHOD}"
        if selection is None or not len(selection):
            method = FALLBACK_METHOD
    history = load_history(conn, as_of, flt)
    if history.receipts.empty and history.open_groups.empty:
        raise UserError(f"nothing to forecast: no receipts and no open invoices in {currency} by {as_of}")
    needed = {method}
    if scenario is not None and not scenario.is_base():
        needed.add("bottom_up")
    fitted = fit_all(history, needed, level=level)
    p = _predict(fitted, method, weeks, scenario)
    cal = None
    if band == "conformal":
        cal = calibration
        if cal is None or cal.method != method or cal.level != float(level) or cal.as_of > as_of:
            cal = _calibration(conn, flt, method, as_of, weeks, level, backtest_origins, scores)
        lo, hi = apply_calibration(p["expected"].to_numpy(), p["lower"].to_numpy(), p["upper"].to_numpy(), cal)
        p = p.assign(lower=lo, upper=hi)
    out = pd.DataFrame({
        "week_start": week_starts(as_of, weeks),
        "expected": [cents_to_units(v) for v in p["expected"]],
        "lower": [cents_to_units(v) for v in p["lower"]],
        "upper": [cents_to_units(v) for v in p["upper"]],
        "method": method,
    })
    out.attrs.update(currency=currency, as_of=as_of, level=level, selection_note=note,
                     band=cal.status if cal is not None else "model",
                     band_note=cal.note if cal is not None else "the method's own band (band='model')",
                     band_factors=cal.as_dict() if cal is not None else {})
    return out


def _calibration(conn, flt, method, as_of, weeks, level, origins, scores) -> BandCalibration:
    """Conformal factors from ``scores`` (a backtest's ``band_scores``) or, lacking them for ``method``,
    from a backtest of that method alone over origins ending at ``as_of``."""
    if scores is None or not any(r[1] == method for r in scores):
        try:
            scores = backtest(conn, flt, weeks=min(int(weeks), 13), origins=origins, end=as_of, level=level,
                              methods=[method]).attrs["band_scores"]
        except UserError:
            scores = None
    return calibrate(scores, method, as_of, level)


def band_calibration(bt: pd.DataFrame, method: str, as_of: dt.date | None = None,
                     level: float | None = None) -> BandCalibration:
    """Conformal band factors for ``method`` from a :func:`backtest` table (no new backtest).

    Parameters
    ----------
    bt : pandas.DataFrame
        A :func:`backtest` result (its ``attrs["band_scores"]``).
    method : str
    as_of : datetime.date, optional
        The forecast origin (default: the backtest's end). Only errors known by then are used.
    level : float, optional
        Default: the backtest's level.

    Returns
    -------
    BandCalibration
        Hashable; pass it to :func:`forecast` as ``calibration=``.

    Example
    -------
    >>> cal = band_calibration(bt, "ets")                       # doctest: +SKIP
    >>> forecast(engine, as_of, method="ets", calibration=cal)  # doctest: +SKIP
    """
    as_of = as_of or dt.date.fromisoformat(bt.attrs["end"])
    level = bt.attrs.get("level", 0.8) if level is None else level
    return calibrate(bt.attrs.get("band_scores"), method, as_of, level)


def eligible_origins(end: dt.date, n_history_weeks: int, weeks: int = 13, origins: int = 12, step: int = 4,
                     min_train_weeks: int = 52) -> list[dt.date]:
    """Backtest origins (ascending) ``end − 7j`` for ``j = weeks, weeks + step, ...``.

    An origin needs ``min_train_weeks`` weeks of history before it; if that leaves fewer than
    :data:`MIN_ORIGINS`, 26 weeks are accepted instead.
    """
    for need in (min_train_weeks, min(26, min_train_weeks)):
        out = []
        j = weeks
        while len(out) < origins and n_history_weeks - j >= need:
            out.append(end - dt.timedelta(days=7 * j))
            j += step
        if len(out) >= MIN_ORIGINS or need == min(26, min_train_weeks):
            return sorted(out)
    return []


def backtest(conn, flt: LedgerFilter = NO_FILTER, weeks: int = 13, origins: int | Iterable[dt.date] = 12,
             step: int = 4, methods: Iterable[str] | None = None, end: dt.date | None = None,
             min_train_weeks: int = 52, level: float = 0.8,
             progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Rolling-origin backtest of every method (see module docstring for the origins and the scores).

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    flt : LedgerFilter
    weeks : int
        Horizon scored.
    origins : int or iterable of datetime.date
        How many origins (the most recent eligible ones, ``step`` weeks apart), or explicit dates.
    step : int
        Weeks between origins.
    methods : iterable of str, optional
        Default: every method.
    end : datetime.date, optional
        No data after it is read (default: the ledger's last live date).
    min_train_weeks : int
    level : float
    progress : callable(done, total), optional
        Called after each origin (the page shows a progress bar).

    Returns
    -------
    pandas.DataFrame
        ``method, horizon_week, wape, bias, coverage, origins, abs_error, error, actual`` (the last three
        summed over origins, currency units). ``attrs``: ``currency``, ``origin_dates``.

    Example
    -------
    >>> bt = backtest(engine, origins=6)      # doctest: +SKIP
    >>> backtest_summary(bt)                  # doctest: +SKIP
    """
    currency, flt = resolve_currency(conn, flt)
    end = end or ledger_end(conn, flt)
    methods = list(methods or METHODS)
    for m in methods:
        _check_method(m)
    if isinstance(origins, int):
        from analytics.forecast.data import weekly_receipts

        n_hist = len(weekly_receipts(conn, end, flt))
        dates = eligible_origins(end, n_hist, weeks, origins, step, min_train_weeks)
    else:
        dates = sorted(origins)
        late = [d for d in dates if d + dt.timedelta(days=7 * weeks) > end]
        if late:
            raise UserError(f"origin {late[0]} leaves fewer than {weeks} weeks of actuals before {end}")
    if len(dates) < 1 or (isinstance(origins, int) and len(dates) < MIN_ORIGINS):
        raise UserError(f"not enough history for a backtest ending {end}: need at least "
                        f"{26 + weeks} weeks of {currency} receipts")
    detail = _backtest_detail(conn, flt, dates, methods, weeks, level, progress)
    detail["err"] = detail["forecast"] - detail["actual"]
    detail["abs_err"] = detail["err"].abs()
    detail["inside"] = (detail["actual"] >= detail["lower"]) & (detail["actual"] <= detail["upper"])
    g = detail.groupby(["method", "horizon_week"], sort=False)
    out = g.agg(abs_error=("abs_err", "sum"), error=("err", "sum"), actual=("actual", "sum"),
                coverage=("inside", "mean"), origins=("origin", "nunique")).reset_index()
    denom = out["actual"].where(out["actual"] > 0)
    out["wape"] = out["abs_error"] / denom
    out["bias"] = out["error"] / denom
    for col in ("abs_error", "error", "actual"):
        out[col] = out[col] / 100.0
    out = out[["method", "horizon_week", "wape", "bias", "coverage", "origins", "abs_error", "error", "actual"]]
    scores = band_scores(detail["forecast"], detail["lower"], detail["upper"], detail["actual"])
    out.attrs.update(currency=currency, origin_dates=[d.isoformat() for d in dates], end=end.isoformat(),
                     level=level, band_scores=Shared(zip((d.isoformat() for d in detail["origin"]), detail["method"],
                                                         detail["horizon_week"].astype(int).tolist(),
                                                         scores.tolist())))
    return out


def _backtest_detail(conn, flt, dates, methods, weeks, level, progress=None) -> pd.DataFrame:
    """One row per origin, method and horizon week: ``forecast, lower, upper, actual`` (cents)."""
    rows = []
    for i, origin in enumerate(dates):
        history = load_history(conn, origin, flt)
        actual = receipts_by_week(conn, origin + dt.timedelta(days=1), origin + dt.timedelta(days=7 * weeks),
                                  flt).to_numpy()
        fitted = fit_all(history, methods, level=level)
        for m in methods:
            p = _predict(fitted, m, weeks)
            for h in range(weeks):
                rows.append((origin, m, h + 1, p["expected"].iat[h], p["lower"].iat[h], p["upper"].iat[h],
                             actual[h]))
        if progress:
            progress(i + 1, len(dates))
    return pd.DataFrame(rows, columns=["origin", "method", "horizon_week", "forecast", "lower", "upper", "actual"])


def band_backtest(conn, flt: LedgerFilter = NO_FILTER, methods: Iterable[str] | None = None, weeks: int = 13,
                  end: dt.date | None = None, level: float = 0.8, calib_origins: int = 8, calib_step: int = 4,
                  min_train_weeks: int = 26, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Nested backtest of the conformal band: how often the calibrated band covered what came in.

    Every week ``T`` with ``min_train_weeks`` of history before it and ``weeks`` weeks of actuals
    after it (up to ``end``) is a test origin. Each method is fitted as of ``T`` (as in
    :func:`backtest`) and its band is calibrated exactly as :func:`forecast` would calibrate it at
    ``T``: from the scores of the origins ``T − 7·(weeks + calib_step·k)``, ``k = 0 .. calib_origins − 1``
    (the origins ``backtest(end=T, origins=calib_origins, step=calib_step)`` uses), all of which lie
    before ``T`` with their actuals known by ``T``. Coverage is then measured on ``T``'s own actuals.

    Returns
    -------
    pandas.DataFrame
        One row per method, test origin and horizon week: ``method, origin, horizon_week, expected,
        lower, upper`` (model band), ``cal_lower, cal_upper`` (calibrated; the model band where
        calibration was not possible), ``actual`` (currency units), ``band`` (the calibration status
        at that origin), ``inside_model``, ``inside_cal``.

    Example
    -------
    >>> band_backtest_summary(band_backtest(engine, methods=["ets"]))   # doctest: +SKIP
    """
    from analytics.forecast.conformal import scores_frame

    currency, flt = resolve_currency(conn, flt)
    end = end or ledger_end(conn, flt)
    methods = list(methods or METHODS)
    for m in methods:
        _check_method(m)
    from analytics.forecast.data import weekly_receipts

    n_hist = len(weekly_receipts(conn, end, flt))
    grid = eligible_origins(end, n_hist, weeks, origins=10 ** 6, step=1, min_train_weeks=min_train_weeks)
    if len(grid) < 2:
        raise UserError(f"not enough history for a nested band backtest ending {end}")
    detail = _backtest_detail(conn, flt, grid, methods, weeks, level, progress)
    detail["score"] = band_scores(detail["forecast"], detail["lower"], detail["upper"], detail["actual"])
    scores = scores_frame(detail[["origin", "method", "horizon_week", "score"]].itertuples(index=False, name=None))
    by_origin = {o: f for o, f in scores.groupby("origin")}
    parts = []
    for (m, origin), f in detail.groupby(["method", "origin"], sort=True):
        past = [origin - dt.timedelta(days=7 * (weeks + calib_step * k)) for k in range(calib_origins)]
        past = [by_origin[o] for o in past if o in by_origin]
        cal = calibrate(pd.concat(past) if past else None, m, origin, level)
        f = f.sort_values("horizon_week")
        lo, hi = apply_calibration(f["forecast"].to_numpy(), f["lower"].to_numpy(), f["upper"].to_numpy(), cal)
        parts.append(f.assign(cal_lower=lo, cal_upper=hi, band=cal.status))
    out = pd.concat(parts, ignore_index=True).rename(columns={"forecast": "expected"})
    for col in ("expected", "lower", "upper", "cal_lower", "cal_upper", "actual"):
        out[col] = out[col] / 100.0
    out["inside_model"] = (out["actual"] >= out["lower"]) & (out["actual"] <= out["upper"])
    out["inside_cal"] = (out["actual"] >= out["cal_lower"]) & (out["actual"] <= out["cal_upper"])
    out = out[["method", "origin", "horizon_week", "expected", "lower", "upper", "cal_lower", "cal_upper", "actual",
               "band", "inside_model", "inside_cal"]]
    out.attrs.update(currency=currency, end=end.isoformat(), level=level)
    return out


def band_backtest_summary(nested: pd.DataFrame, calibrated_only: bool = True) -> pd.DataFrame:
    """Coverage and mean band width, model band vs conformal band, per method and horizon group.

    Parameters
    ----------
    nested : pandas.DataFrame
        A :func:`band_backtest` result.
    calibrated_only : bool
        Score only the test origins where every horizon group could be calibrated (the others show
        the model band in both columns).

    Returns
    -------
    pandas.DataFrame
        ``method, weeks, test_origins, coverage_model, coverage_cal, width_model, width_cal`` (widths in
        currency units: mean of ``upper − lower``), ``weeks`` one of ``1-4``, ``5-13``, ``all``.
    """
    f = nested[nested["band"] == "conformal"] if calibrated_only else nested
    rows = []
    for m, g in f.groupby("method", sort=False):
        for label, lo, hi in (("1-4", 1, 4), ("5-13", 5, 13), ("all", 1, 10 ** 6)):
            x = g[(g["horizon_week"] >= lo) & (g["horizon_week"] <= hi)]
            rows.append(dict(method=m, weeks=label, test_origins=int(x["origin"].nunique()),
                             coverage_model=float(x["inside_model"].mean()), coverage_cal=float(x["inside_cal"].mean()),
                             width_model=float((x["upper"] - x["lower"]).mean()),
                             width_cal=float((x["cal_upper"] - x["cal_lower"]).mean())))
    return pd.DataFrame(rows)


def backtest_summary(bt: pd.DataFrame) -> pd.DataFrame:
    """WAPE and bias for weeks 1–4, 5–13 and 1–13 per method, from a :func:`backtest` table.

    Returns
    -------
    pandas.DataFrame
        ``method, wape_1_4, wape_5_13, wape_all, bias_1_4, bias_5_13, coverage, origins, is_naive``,
        sorted by ``wape_all``.

    Example
    -------
    >>> backtest_summary(backtest(engine, origins=6))   # doctest: +SKIP
    """
    def part(frame, lo, hi):
        f = frame[(frame["horizon_week"] >= lo) & (frame["horizon_week"] <= hi)]
        a = f["actual"].sum()
        return (f["abs_error"].sum() / a if a > 0 else np.nan, f["error"].sum() / a if a > 0 else np.nan)

    rows = []
    for m, f in bt.groupby("method", sort=False):
        w14, b14 = part(f, 1, 4)
        w513, b513 = part(f, 5, 13)
        wall, _ = part(f, 1, 10 ** 6)
        rows.append(dict(method=m, wape_1_4=w14, wape_5_13=w513, wape_all=wall, bias_1_4=b14, bias_5_13=b513,
                         coverage=float(f["coverage"].mean()), origins=int(f["origins"].max()),
                         is_naive=m in NAIVE_METHODS))
    out = pd.DataFrame(rows)
    for key in ("band_scores", "level", "end", "currency"):
        if key in bt.attrs:
            out.attrs[key] = bt.attrs[key]
    if len(out):
        out["_pref"] = out["method"].map({m: i for i, m in enumerate(PREFERENCE)}).fillna(99)
        out = out.sort_values(["wape_all", "_pref"]).drop(columns="_pref").reset_index(drop=True)
    return out


def choose_method(summary: pd.DataFrame) -> str:
    """The method with the lowest WAPE over the whole horizon; ties go to the simpler one (:data:`PREFERENCE`).

    Example
    -------
    >>> choose_method(backtest_summary(bt))   # doctest: +SKIP
    'combined'
    """
    s = summary.dropna(subset=["wape_all"])
    if s.empty:
        return FALLBACK_METHOD
    s = s.assign(_pref=s["method"].map({m: i for i, m in enumerate(PREFERENCE)}).fillna(99))
    return str(s.sort_values(["wape_all", "_pref"]).iloc[0]["method"])


def beats_baselines(summary: pd.DataFrame, method: str | None = None) -> dict:
    """Whether ``method`` (default: the chosen one) has lower WAPE than every naive baseline.

    Returns
    -------
    dict
        ``method``, ``weeks_1_4`` and ``weeks_5_13`` (bool), ``best_naive_1_4``, ``best_naive_5_13`` (float).
    """
    method = method or choose_method(summary)
    s = summary.set_index("method")
    naive = s[s.index.isin(NAIVE_METHODS)]
    me = s.loc[method]
    return dict(method=method, weeks_1_4=bool(me.wape_1_4 < naive.wape_1_4.min()),
                weeks_5_13=bool(me.wape_5_13 < naive.wape_5_13.min()),
                best_naive_1_4=float(naive.wape_1_4.min()), best_naive_5_13=float(naive.wape_5_13.min()))


__all__ = ["forecast", "backtest", "backtest_summary", "choose_method", "beats_baselines", "eligible_origins",
           "band_calibration", "band_backtest", "band_backtest_summary", "Scenario", "PREFERENCE"]
