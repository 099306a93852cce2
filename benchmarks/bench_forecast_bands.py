"""Conformal band calibration: coverage and width of the 80 % band before vs after, nested backtest.

    .venv/bin/python benchmarks/bench_forecast_bands.py [--ledgers gen42,gen7,ibm] [--methods all|chosen]

For each ledger: the method ``auto`` picks (8-origin backtest at the ledger end, as :func:`forecast`
does), then :func:`band_backtest` over every weekly test origin — each calibrated only on the origins
``forecast`` would use at that date (8 origins, 4 weeks apart, the latest 13 weeks back) — and the
coverage / mean width of the model band vs the calibrated band on the test origins where every horizon
group could be calibrated. Also times ``forecast(...)`` on the first ledger with ``band="model"`` vs
``band="conformal"``. Ledgers are generated / loaded into a temp directory.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import db, generator, loaders  # noqa: E402
from analytics.forecast import (METHODS, backtest, backtest_summary, band_backtest, band_backtest_summary,  # noqa: E402
                                band_calibration, choose_method, forecast)

IBM = ROOT.parent / "shared" / "datasets" / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"
LEDGERS = {"gen42": ("generated seed 42, 400 customers / 40,000 invoices", dict(customers=400, invoices=40_000, seed=42)),
           "gen7": ("generated seed 7, 80 customers / 4,000 invoices", dict(customers=80, invoices=4_000, seed=7)),
           "ibm": ("IBM sample", None)}


def _timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def timings(engine) -> None:
    forecast(engine, method="naive_last")  # warm-up
    print("\nforecast(...) timings (13 weeks, ledger end):")
    for method in ("auto", "bottom_up", "ets", "combined"):
        _, before = _timed(forecast, engine, method=method, band="model")
        _, after = _timed(forecast, engine, method=method)
        print(f"  method={method:10s} band=model {before:5.1f}s   band=conformal {after:5.1f}s")
    bt, secs = _timed(backtest, engine, origins=8)
    m = choose_method(backtest_summary(bt))
    cal = band_calibration(bt, m)
    _, with_cal = _timed(forecast, engine, method=m, calibration=cal)
    print(f"  page path (backtest {secs:.1f}s already run, calibration passed): forecast {with_cal:.1f}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledgers", default="gen42,gen7,ibm")
    ap.add_argument("--methods", default="all", help="all or chosen")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, key in enumerate(args.ledgers.split(",")):
            label, kw = LEDGERS[key]
            eng = db.connect(f"duckdb:///{tmp}/{key}.duckdb")
            if kw is None:
                if not IBM.exists():
                    continue
                loaders.load(eng, "ibm", IBM)
            else:
                generator.generate(eng, **kw)
            chosen = choose_method(backtest_summary(backtest(eng, origins=8)))
            methods = list(METHODS) if args.methods == "all" else [chosen]
            nb, secs = _timed(band_backtest, eng, methods=methods)
            s = band_backtest_summary(nb)
            s.insert(0, "ledger", key)
            s["chosen"] = s["method"] == chosen
            rows.append(s)
            print(f"\n== {label}: chosen {chosen}; nested band backtest {nb['origin'].nunique()} weekly test origins "
                  f"{min(nb['origin'])}..{max(nb['origin'])}, {secs:.0f}s")
            show = s[s["weeks"] == "all"].drop(columns=["ledger", "weeks"])
            print(show.round(3).to_string(index=False))
            print(s[s["chosen"]].drop(columns=["ledger", "chosen"]).round(3).to_string(index=False))
            if i == 0 and not args.no_timing:
                timings(eng)
            eng.dispose()
    if rows:
        out = pd.concat(rows, ignore_index=True)
        path = Path(tempfile.gettempdir()) / "bench_forecast_bands.csv"
        out.to_csv(path, index=False)
        print(f"\nall figures: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
