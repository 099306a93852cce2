"""Audit chain figures: concurrent appends, `audit verify`, and migration 0004 hashing an existing log.

    python benchmarks/bench_audit.py [--rows 100000] [--threads 8] [--appends 25]

Prints one line per backend (DuckDB, SQLite, and PostgreSQL when tests/pg_server.py can start one).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import audit, db  # noqa: E402


def _upgrade(engine, target):
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "analytics" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


def bench(url: str, rows: int, threads: int, appends: int) -> dict:
    engine = db.make_engine(url)
    _upgrade(engine, "0003")
    log = sa.table("audit_log", *[sa.column(c) for c in ("logged_at", "actor", "action", "table_name", "row_id",
                                                         "before", "after")])
    t0 = dt.datetime(2025, 1, 1)
    with engine.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(log.insert(), [dict(logged_at=t0 + dt.timedelta(seconds=i), actor="ann", action="log_activity",
                                             table_name="activities", row_id=str(i), before=None,
                                             after='{"id": %d, "note": "called, no answer"}' % i)
                                        for i in range(start, min(rows, start + 10_000))])
    t = time.perf_counter()
    _upgrade(engine, "head")
    migrate = time.perf_counter() - t

    def work(k):
        for i in range(appends):
            audit.run_write(engine, lambda c: audit.append_audit(c, f"u{k}", "note", "customers", str(i)))

    t = time.perf_counter()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    concurrent = time.perf_counter() - t
    t = time.perf_counter()
    report = audit.verify_chain(engine)
    verify = time.perf_counter() - t
    engine.dispose()
    assert report.ok and report.rows == rows + threads * appends, report
    return {"migrate_s": round(migrate, 2), "appends_per_s": round(threads * appends / concurrent),
            "verify_s": round(verify, 2), "rows": report.rows}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--appends", type=int, default=25)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    urls = {"duckdb": f"duckdb:///{tmp / 'a.duckdb'}", "sqlite": f"sqlite:///{tmp / 'a.sqlite'}"}
    server = None
    try:
        from tests.pg_server import PostgresServer

        server = PostgresServer()
        server.start()
        urls["postgresql"] = server.create_database("bench_audit")
    except Exception as exc:  # no PostgreSQL here
        print(f"postgresql skipped: {exc}")
        server = None
    try:
        for name, url in urls.items():
            print(name, bench(url, a.rows, a.threads, a.appends), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
