"""Benchmark the synthetic ledger generator: build (numpy/pandas) and write (one transaction) times, peak memory.

Usage::

    .venv/bin/python benchmarks/bench_generate.py --invoices 1000000
    .venv/bin/python benchmarks/bench_generate.py --invoices 100000 --db sqlite:////tmp/bench.sqlite

Target: 1,000,000 invoices in under 2 minutes on 2 cores into DuckDB.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import db, generator  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--invoices", type=int, default=1_000_000)
    p.add_argument("--customers", type=int, default=None, help="default: invoices / 100 (at least 1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--months", type=int, default=24)
    p.add_argument("--db", default=None, help="target URL (default: a fresh DuckDB file in a temp dir)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    customers = args.customers or max(1, args.invoices // 100)
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        url = args.db or f"duckdb:///{Path(tmp) / 'bench.duckdb'}"
        engine = db.connect(url)
        rss0 = peak_rss_mb()
        c0, t0 = time.process_time(), time.perf_counter()
        frames = generator.build_frames(customers, args.invoices, args.seed, dt.date(2026, 10, 31), args.months)
        frames = generator._finish(frames)
        frames.pop("_receipt_flags")
        c1, t1 = time.process_time(), time.perf_counter()
        rss_build = peak_rss_mb()
        written = generator.write_frames(engine, frames, replace=True)
        c2, t2 = time.process_time(), time.perf_counter()
        engine.dispose()
        size_mb = Path(tmp, "bench.duckdb").stat().st_size / 2**20 if args.db is None else None
    figures = {
        "invoices": args.invoices, "customers": customers, "backend": url.split(":", 1)[0],
        "build_seconds": round(t1 - t0, 2), "write_seconds": round(t2 - t1, 2), "total_seconds": round(t2 - t0, 2),
        "build_cpu_seconds": round(c1 - c0, 2), "write_cpu_seconds": round(c2 - c1, 2),
        "rows_written": sum(written["rows"].values()), "rows": written["rows"],
        "peak_rss_mb_before": round(rss0), "peak_rss_mb_after_build": round(rss_build),
        "peak_rss_mb": round(peak_rss_mb()), "db_file_mb": round(size_mb) if size_mb else None,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"generate {args.invoices:,} invoices / {customers:,} customers into {figures['backend']}: "
              f"build {figures['build_seconds']}s, write {figures['write_seconds']}s, "
              f"total {figures['total_seconds']}s (CPU: build {figures['build_cpu_seconds']}s, "
              f"write {figures['write_cpu_seconds']}s over all threads); {figures['rows_written']:,} rows; "
              f"peak RSS {figures['peak_rss_mb']} MB (after build {figures['peak_rss_mb_after_build']} MB)"
              + (f"; file {figures['db_file_mb']} MB" if figures["db_file_mb"] else ""))
        for name, n in written["rows"].items():
            print(f"  {name:15s} {n:>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
