"""Forecast backtest figures on a generated 2-year ledger and on the IBM sample.

    .venv/bin/python benchmarks/bench_forecast.py [--origins 20] [--step 2] [--customers 80 --invoices 4000]

Prints, per ledger, the WAPE/bias summary of every method, the method ``auto`` picks, and whether it
beats every naive baseline at weeks 1-4 and 5-13. Temporary databases go to a temp directory.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import db, generator, loaders  # noqa: E402
from analytics.forecast import backtest, backtest_summary, beats_baselines, choose_method, forecast  # noqa: E402

IBM = ROOT.parent / "shared" / "datasets" / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"


def report(name, engine, origins, step, end=None, as_of=None):
    t = time.perf_counter()
    bt = backtest(engine, origins=origins, step=step, end=end)
    secs = time.perf_counter() - t
    s = backtest_summary(bt)
    chosen = choose_method(s)
    v = beats_baselines(s, chosen)
    print(f"\n== {name}: {bt.attrs['currency']}, {len(bt.attrs['origin_dates'])} origins "
          f"{bt.attrs['origin_dates'][0]}..{bt.attrs['origin_dates'][-1]} (end {bt.attrs['end']}), {secs:.1f}s")
    print(s.drop(columns=["is_naive"]).round(3).to_string(index=False))
    print(f"chosen: {chosen}; WAPE 1-4 {s.set_index('method').loc[chosen, 'wape_1_4']:.3f} vs best naive "
          f"{v['best_naive_1_4']:.3f} -> {'beats' if v['weeks_1_4'] else 'does NOT beat'}; WAPE 5-13 "
          f"{s.set_index('method').loc[chosen, 'wape_5_13']:.3f} vs best naive {v['best_naive_5_13']:.3f} -> "
          f"{'beats' if v['weeks_5_13'] else 'does NOT beat'}")
    if as_of:
        t = time.perf_counter()
        fc = forecast(engine, as_of, weeks=13, selection=s)
        print(f"forecast as of {as_of} ({time.perf_counter() - t:.1f}s):")
        print(fc.to_string(index=False))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=20)
    ap.add_argument("--step", type=int, default=2)
    ap.add_argument("--customers", type=int, default=80)
    ap.add_argument("--invoices", type=int, default=4000)
    ap.add_argument("--seeds", default="7,11")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            eng = db.connect(f"duckdb:///{tmp}/gen{seed}.duckdb")
            generator.generate(eng, customers=args.customers, invoices=args.invoices, seed=seed)
            report(f"generated ledger seed {seed} ({args.customers} customers, {args.invoices} invoices, 24 months)",
                   eng, args.origins, args.step)
            eng.dispose()
        if IBM.exists():
            eng = db.connect(f"duckdb:///{tmp}/ibm.duckdb")
            loaders.load(eng, "ibm", IBM)
            report("IBM sample, full history", eng, args.origins, args.step, as_of=None)
            report("IBM sample, backtest ending 2013-06-30 and forecast as of it", eng, 8, 2,
                   end=dt.date(2013, 6, 30), as_of=dt.date(2013, 6, 30))
            eng.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
