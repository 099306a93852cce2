"""13-week cash-receipts forecast: bottom-up from open invoices, top-down time series, their combination,
naive baselines, an honest rolling-origin backtest and scenario levers.

Public API
----------
:func:`forecast`, :func:`backtest`, :func:`backtest_summary`, :func:`choose_method`, :func:`actual_receipts`,
:class:`Scenario` and the levers (:mod:`analytics.forecast.scenario`), the estimators
(:class:`BottomUpForecaster`, :mod:`analytics.forecast.models`) and :func:`load_history`.

CLI
---
``python -m analytics forecast --as-of 2013-06-30 --weeks 13 --json`` prints the weekly forecast;
``python -m analytics forecast backtest --json`` prints the WAPE table.

Example
-------
>>> from analytics import db
>>> from analytics.forecast import forecast
>>> fc = forecast(db.connect(), dt.date(2013, 6, 30))   # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
import json

from analytics.cli_support import date_arg
from analytics.forecast.api import (PREFERENCE, backtest, backtest_summary, band_backtest, band_backtest_summary,
                                    band_calibration, beats_baselines, choose_method, eligible_origins, forecast)
from analytics.forecast.conformal import BandCalibration, apply_calibration, band_scores, calibrate
from analytics.forecast.bottom_up import BottomUpForecaster, build_inputs, expected_by_week
from analytics.forecast.inputs import BottomUpInputs
from analytics.forecast.data import (History, actual_receipts, ledger_end, load_history, open_by_customer,
                                     resolve_currency)
from analytics.forecast.models import METHODS, NAIVE_METHODS, CombinedForecaster, fit_all
from analytics.forecast.scenario import (Scenario, apply_scenario, change_collection_rate, delay_customer,
                                         largest_customers, shift_days)

__all__ = [
    "forecast", "backtest", "backtest_summary", "band_backtest", "band_backtest_summary", "band_calibration",
    "BandCalibration", "calibrate", "apply_calibration", "band_scores", "choose_method", "beats_baselines", "eligible_origins",
    "actual_receipts", "open_by_customer", "load_history", "ledger_end", "resolve_currency", "History", "BottomUpForecaster",
    "BottomUpInputs", "build_inputs", "expected_by_week", "CombinedForecaster", "fit_all", "METHODS",
    "NAIVE_METHODS", "PREFERENCE", "Scenario", "apply_scenario", "shift_days", "change_collection_rate",
    "delay_customer", "largest_customers", "configure_cli",
]


def configure_cli(parser) -> None:
    """Arguments of ``python -m analytics forecast [backtest]``."""
    parser.add_argument("action", nargs="?", default="run", choices=["run", "backtest"],
                        help="run (default): the weekly forecast; backtest: WAPE/bias per method and horizon")
    parser.add_argument("--as-of", type=date_arg, default=None,
                        help="forecast date (default: the ledger's last date); backtest: its end date")
    parser.add_argument("--weeks", type=int, default=13, help="horizon in weeks (default 13)")
    parser.add_argument("--method", default="auto", help=f"auto or one of {', '.join(METHODS)}")
    parser.add_argument("--currency", default=None, help="currency (default: the ledger's main currency)")
    parser.add_argument("--level", type=float, default=0.8, help="interval coverage (default 0.8)")
    parser.add_argument("--band", default="conformal", choices=["conformal", "model"],
                        help="conformal (default): the band calibrated on past backtest errors; model: the method's own")
    parser.add_argument("--shift-days", type=int, default=0, help="scenario: everyone pays N days later")
    parser.add_argument("--collection-pct", type=float, default=0.0, help="scenario: collected share +/- pct")
    parser.add_argument("--delay-customer", default=None, help="scenario: customer id paying late")
    parser.add_argument("--delay-weeks", type=int, default=0, help="scenario: weeks the customer is late")
    parser.add_argument("--origins", type=int, default=12, help="backtest origins (default 12)")
    parser.add_argument("--step", type=int, default=4, help="weeks between backtest origins (default 4)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_run)


def _run(args) -> int:
    from analytics import db
    from analytics.ledger import LedgerFilter

    engine = db.connect(args.db)
    flt = LedgerFilter(currencies=(args.currency,)) if args.currency else LedgerFilter()
    if args.action == "backtest":
        bt = backtest(engine, flt, weeks=args.weeks, origins=args.origins, step=args.step, end=args.as_of,
                      level=args.level)
        summary = backtest_summary(bt)
        chosen = choose_method(summary)
        if args.json:
            print(json.dumps({
                "currency": bt.attrs["currency"], "end": bt.attrs["end"], "origins": bt.attrs["origin_dates"],
                "chosen_method": chosen,
                "summary": _records(summary),
                "table": _records(bt[["method", "horizon_week", "wape", "bias", "coverage", "origins"]]),
            }, indent=1))
        else:
            print(f"Backtest ({bt.attrs['currency']}, {len(bt.attrs['origin_dates'])} origins up to "
                  f"{bt.attrs['end']}); chosen: {chosen} (lowest WAPE over weeks 1-{args.weeks})")
            show = summary.copy()
            for c in ("wape_1_4", "wape_5_13", "wape_all", "bias_1_4", "bias_5_13", "coverage"):
                show[c] = show[c].map(lambda v: f"{v:.1%}")
            print(show.drop(columns=["is_naive"]).to_string(index=False))
        return 0
    scenario = Scenario(shift_days=args.shift_days, collection_rate_pct=args.collection_pct,
                        delayed_customer=args.delay_customer, delay_weeks=args.delay_weeks)
    fc = forecast(engine, args.as_of, weeks=args.weeks, flt=flt, method=args.method,
                  scenario=None if scenario.is_base() else scenario, level=args.level, band=args.band)
    if args.json:
        print(json.dumps(_records(fc), indent=1))
    else:
        print(f"Cash receipts forecast in {fc.attrs['currency']} as of {fc.attrs['as_of']} "
              f"({int(fc.attrs['level'] * 100)}% band). {fc.attrs['selection_note']}")
        print(f"Band: {fc.attrs['band']}. {fc.attrs['band_note']}")
        print(fc.to_string(index=False))
    return 0


def _records(frame) -> list[dict]:
    out = []
    for rec in frame.to_dict(orient="records"):
        row = {}
        for k, v in rec.items():
            if isinstance(v, (dt.date, dt.datetime)):
                v = v.isoformat()[:10]
            elif hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and v != v:
                v = None
            row[k] = round(v, 6) if isinstance(v, float) and k not in ("expected", "lower", "upper") else v
        out.append(row)
    return out
