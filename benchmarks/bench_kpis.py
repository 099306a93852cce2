"""Benchmark: the full core KPI set (snapshot + 24-month trends) on a generated ledger.

Usage::

    .venv/bin/python benchmarks/bench_kpis.py --invoices 1000000 [--customers 10000] [--db URL] [--reuse]

Generates a seeded ledger with :func:`analytics.generator.generate` into ``--db`` (default a DuckDB
file under /tmp named after the size; ``--reuse`` skips generation when that file already holds a
ledger), then times each KPI call and the whole set, printing one line per step and a total.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from analytics import db, kpis, schema  # noqa: E402


def _timed(label: str, fn, results: list):
    t0 = time.perf_counter()
    value = fn()
    secs = time.perf_counter() - t0
    results.append((label, secs))
    print(f"  {label:<34} {secs:8.2f} s", flush=True)
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=None, help="default: invoices / 100")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: DuckDB file under /tmp)")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing generated ledger at --db")
    ap.add_argument("--months", type=int, default=24, help="trend length in month ends (default 24)")
    args = ap.parse_args(argv)
    customers = args.customers or max(10, args.invoices // 100)
    url = args.db or f"duckdb:////tmp/bench_kpis_{args.invoices}.duckdb"

    engine = db.connect(url)
    with engine.connect() as c:
        have = c.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar()
    if have and args.reuse:
        print(f"reusing {url}: {have:,} items")
    else:
        from analytics.generator import generate

        print(f"generating {args.invoices:,} invoices / {customers:,} customers into {url} ...", flush=True)
        t0 = time.perf_counter()
        summary = generate(engine, customers=customers, invoices=args.invoices, seed=args.seed, replace=bool(have))
        print(f"  generated in {time.perf_counter() - t0:.1f} s: "
              f"{ {k: v for k, v in summary.items() if isinstance(v, (int, float))} }", flush=True)

    with engine.connect() as c:
        n_items = c.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar()
        n_moves = sum(c.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                      for t in (schema.applications, schema.adjustments))
        as_of = kpis.latest_date(c)
        dates = kpis.last_month_ends(as_of, args.months)
        start_q = as_of.replace(day=1) - dt.timedelta(days=1)
        start_q = (start_q.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        print(f"ledger: {n_items:,} items, {n_moves:,} settlements; as of {as_of}; trend {dates[0]}..{dates[-1]}")
        res: list = []
        t0 = time.perf_counter()
        cur = _timed("main_currency", lambda: kpis.main_currency(c), res)
        flt = kpis.LedgerFilter(currencies=(cur,))
        snap = _timed("snapshot", lambda: kpis.snapshot(c, as_of, flt), res)
        _timed(f"kpi_trend ({len(dates)} month ends)", lambda: kpis.kpi_trend(c, dates, flt), res)
        _timed(f"aging_trend ({len(dates)} month ends)", lambda: kpis.aging_trend(c, dates, flt), res)
        _timed(f"roll_rates ({len(dates)} month ends)", lambda: kpis.roll_rates(c, dates, flt), res)
        _timed("provision_matrix (12-month history)", lambda: kpis.provision_matrix(c, as_of, flt), res)
        _timed("aging_detail (top 500)", lambda: kpis.aging_detail(c, as_of, flt, limit=500), res)
        _timed("cei (last quarter)", lambda: kpis.cei(c, start_q, as_of, flt), res)
        _timed("payment_days (last quarter)", lambda: kpis.payment_days(c, start_q, as_of, flt), res)
        _timed("write_off_ratio (last quarter)", lambda: kpis.write_off_ratio(c, start_q, as_of, flt), res)
        total = time.perf_counter() - t0
    engine.dispose()
    print(f"  {'TOTAL full KPI set':<34} {total:8.2f} s")
    print(f"snapshot: AR {snap['ar_total']:,.2f} {snap['currency']}, DSO {snap['dso_standard']}, "
          f"countback {snap['dso_countback']}, CEI {snap['cei_month']}")
    print(f"RESULT bench_kpis dialect={engine.dialect.name} items={n_items} total_seconds={total:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
