"""Benchmark: every KPI statement on Apache Spark (local mode) vs embedded DuckDB, same ledger, same SQL.

Usage (needs the Spark venv: ``make spark-check`` builds .venv-spark; Java 17)::

    .venv-spark/bin/python benchmarks/bench_spark.py --invoices 4000
    .venv-spark/bin/python benchmarks/bench_spark.py --invoices 100000 --memory 2g

Generates a seeded ledger into a DuckDB file (``/tmp/ar_spark_bench_<N>/ledger.duckdb``, reused when it
exists), captures every statement the KPI functions send (``tests/kpi_capture.py``), copies the tables to
Parquet and registers them in a local SparkSession (``local[2]``), then runs the statements ``--passes``
times on each engine — DuckDB through SQLAlchemy, Spark as Databricks-dialect SQL via ``spark.sql()`` —
checking on the first pass that both return the same rows. Prints one line per pass and the slowest calls.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import db, generator  # noqa: E402
from tests.kpi_capture import AS_OF, capture_kpi_statements  # noqa: E402
from tests.spark_support import register_ledger, same_rows, spark_dialect, spark_sql, start_spark  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=4000)
    ap.add_argument("--customers", type=int, default=None, help="default: invoices / 50")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--memory", default="1g", help="Spark driver memory")
    ap.add_argument("--shuffle-partitions", default="4")
    args = ap.parse_args(argv)

    work = Path(f"/tmp/ar_spark_bench_{args.invoices}")
    work.mkdir(parents=True, exist_ok=True)
    path = work / "ledger.duckdb"
    fresh = not path.exists()
    engine = db.connect(f"duckdb:///{path}")
    if fresh:
        t0 = time.perf_counter()
        generator.generate(engine, customers=args.customers or max(20, args.invoices // 50),
                           invoices=args.invoices, seed=args.seed, end=AS_OF)
        print(f"generate {args.invoices:,} invoices: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    names, statements = capture_kpi_statements(engine)
    print(f"KPI functions on DuckDB (capture, incl. pandas post-processing): {time.perf_counter() - t0:.2f} s, "
          f"{len(statements)} statements from {len(names)} calls")

    dialect = spark_dialect()
    sqls = [spark_sql(stmt, dialect) for _, stmt in statements]

    t0 = time.perf_counter()
    spark = start_spark("ar-bench-spark", memory=args.memory)
    spark.conf.set("spark.sql.shuffle.partitions", args.shuffle_partitions)
    print(f"Spark session start (JVM): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    register_ledger(spark, engine, work / "parquet")
    print(f"copy tables to Parquet + register views: {time.perf_counter() - t0:.1f} s")

    duck_rows, mismatches = [], []
    per_call: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    with engine.connect() as conn:
        for p in range(args.passes):
            t0 = time.perf_counter()
            for call, stmt in statements:
                t1 = time.perf_counter()
                rows = [tuple(r) for r in conn.execute(stmt).all()]
                per_call[call][0] += time.perf_counter() - t1 if p == args.passes - 1 else 0.0
                if p == 0:
                    duck_rows.append(rows)
            print(f"DuckDB pass {p + 1}: {time.perf_counter() - t0:.2f} s")
    for p in range(args.passes):
        t0 = time.perf_counter()
        for i, ((call, _), sql) in enumerate(zip(statements, sqls)):
            t1 = time.perf_counter()
            rows = [tuple(r) for r in spark.sql(sql).collect()]
            per_call[call][1] += time.perf_counter() - t1 if p == args.passes - 1 else 0.0
            if p == 0 and (diff := same_rows(rows, duck_rows[i])) is not None:
                mismatches.append(f"{call}: {diff}")
        print(f"Spark pass {p + 1}: {time.perf_counter() - t0:.2f} s")
    print(f"rows identical on both engines: {len(statements) - len(mismatches)}/{len(statements)}")
    for m in mismatches:
        print("  MISMATCH", m)
    print("slowest calls, last pass (DuckDB s / Spark s):")
    for call, (d, s) in sorted(per_call.items(), key=lambda kv: -kv[1][1])[:6]:
        print(f"  {call:18s} {d:7.3f} {s:7.2f}")
    spark.sparkContext.setLogLevel("OFF")  # stop() may log rejected late task results: harmless
    spark.stop()
    engine.dispose()
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
