"""Bank statements at volume: 100,000 lines written and parsed back, per format (BAI2, MT940, camt.053).

Usage::

    .venv/bin/python benchmarks/bench_bank.py [--lines 100000]

Prints seconds to write and to parse each format, and checks the round trip is exact (same count and total).
The correctness of the round trip is pinned by tests/test_bank.py at 5,000 lines; this is the figure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    args = ap.parse_args(argv)
    from analytics.bank.parsers import parse
    from analytics.bank.writer import statement_bytes
    from tests.test_bank import synthetic_lines

    lines = synthetic_lines(args.lines)
    total = sum(a.amount_cents for a in lines)
    print(f"| format | lines | write (s) | parse (s) | round trip exact |\n|---|---:|---:|---:|---|")
    for fmt in ("bai2", "mt940", "camt053"):
        t0 = time.perf_counter()
        data = statement_bytes(lines, fmt)
        t1 = time.perf_counter()
        back = parse(data, fmt, "big").lines
        t2 = time.perf_counter()
        exact = len(back) == len(lines) and sum(b.amount_cents for b in back) == total
        print(f"| {fmt} | {len(lines):,} | {t1 - t0:.1f} | {t2 - t1:.1f} | {'yes' if exact else 'NO'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
