"""Scale benchmark: a generated ledger of N invoices, the product's KPI code against hand-written references.

Usage::

    .venv/bin/python benchmarks/run.py --invoices 1000000            # ~6 min on 2 quiet cores
    .venv/bin/python benchmarks/run.py --invoices 5000000 --no-sqlite  # ~20 min (make bench runs both)
    .venv/bin/python benchmarks/run.py --invoices 1000000 --reuse    # keep the generated ledger

Steps (each printed as it runs; a markdown table at the end, also written to benchmarks/out/):

1. **load**: :func:`analytics.generator.generate` into a DuckDB file (generation + write), in a child
   process so its memory peak is reported apart from the analytics process.
2. export of the ledger tables to Parquet (the references read these).
3. **KPI set at one as-of date**: ``kpis.snapshot`` + ``kpis.aging`` (+ ops KPIs, timed apart);
   **24-month trend** of DSO (``kpi_trend``) and aging (``aging_trend``); roll rates and provision matrix;
   the **worklist** (``analytics.worklist``, which trains the risk model the first time, then from cache);
   the **Overview page** through Streamlit ``AppTest`` (cold, then warm second run).
4. References, each in its own child process: one DuckDB SQL query per figure over the Parquet files,
   and the same in plain pandas (:mod:`benchmarks.references`). The numbers are checked to agree.
5. SQLite vs DuckDB through SQLAlchemy for ``aging`` and ``snapshot`` (the embedded default choice);
   each SQLite query is interrupted after ``--sqlite-limit`` seconds.

Peak memory is ``ru_maxrss`` of each process (psutil is not installed): the analytics process (KPIs,
worklist, dashboard), the generator child and the reference children.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

OUT = ROOT / "benchmarks" / "out"
TABLES = ("customers", "invoices", "receipts", "applications", "adjustments")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# Child processes (so each memory peak is its own)
# ----------------------------------------------------------------------------------------------
def child(kind: str, payload: dict, timeout: float | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--payload", json.dumps(payload)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_generate(p: dict) -> dict:
    from analytics import db
    from analytics.generator import generate

    engine = db.connect(p["url"])
    t0 = time.perf_counter()
    summary = generate(engine, customers=p["customers"], invoices=p["invoices"], seed=p["seed"], replace=True)
    secs = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": secs, "peak_mb": peak_mb(),
            "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float))}}


def _jsonable(x):
    if isinstance(x, dict):
        return [[_jsonable(k), _jsonable(v)] for k, v in x.items()]
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dt.date):
        return x.isoformat()
    if hasattr(x, "item"):
        return x.item()
    return x


def child_duckdb_ref(p: dict) -> dict:
    import duckdb

    import references as R

    as_of = dt.date.fromisoformat(p["as_of"])
    trend_dates = [dt.date.fromisoformat(d) for d in p["trend_dates"]]
    roll_dates = [dt.date.fromisoformat(d) for d in p["roll_dates"]]
    con = duckdb.connect()
    R.duckdb_views(con, Path(p["parquet"]), p["currency"])
    snap, t_snap = R.timed(R.duckdb_snapshot, con, as_of, p["currency"])
    trend, t_trend = R.timed(R.duckdb_trend, con, trend_dates)
    roll, t_roll = R.timed(R.duckdb_roll_rates, con, roll_dates)
    return {"snapshot": [t_snap, _jsonable(snap)], "trend": [t_trend, _jsonable(trend)],
            "roll": [t_roll, _jsonable(roll)], "peak_mb": peak_mb()}


def child_pandas_ref(p: dict) -> dict:
    import references as R

    as_of = dt.date.fromisoformat(p["as_of"])
    trend_dates = [dt.date.fromisoformat(d) for d in p["trend_dates"]]
    roll_dates = [dt.date.fromisoformat(d) for d in p["roll_dates"]]
    frames, t_load = R.timed(R.pandas_load, Path(p["parquet"]), p["currency"])
    snap, t_snap = R.timed(R.pandas_snapshot, frames, as_of)
    trend, t_trend = R.timed(R.pandas_trend, frames, trend_dates)
    roll, t_roll = R.timed(R.pandas_roll_rates, frames, roll_dates)
    return {"load": t_load, "snapshot": [t_snap, _jsonable(snap)], "trend": [t_trend, _jsonable(trend)],
            "roll": [t_roll, _jsonable(roll)], "peak_mb": peak_mb()}


def child_worklist(p: dict) -> dict:
    from analytics import db
    from analytics.ledger import LedgerFilter
    from analytics.worklist import worklist

    engine = db.make_engine(p["url"])
    as_of, flt = dt.date.fromisoformat(p["as_of"]), LedgerFilter(currencies=(p["currency"],))
    t0 = time.perf_counter()
    wl = worklist(engine, as_of, flt)
    t1 = time.perf_counter()
    worklist(engine, as_of, flt)
    t2 = time.perf_counter()
    return {"first": t1 - t0, "second": t2 - t1, "accounts": len(wl), "peak_mb": peak_mb()}


def child_cli_kpis(p: dict) -> dict:
    """``python -m analytics kpis --json`` as a user runs it (whole command, Python start included)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analytics", "kpis", "--json", "--db", p["url"]], cwd=ROOT,
                          capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    return {"seconds": secs, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "ar_total": out["ar_total"], "output": out}


def child_backend(p: dict) -> dict:
    """The KPI set, the full set with the operations KPIs and the hand-written SQL reference on one database."""
    from analytics import db, kpis
    from analytics.kpis import operations as ops
    from analytics.ledger import LedgerFilter

    import references as R

    engine = db.make_engine(p["url"])
    as_of, cur = dt.date.fromisoformat(p["as_of"]), p["currency"]
    flt = LedgerFilter(currencies=(cur,))
    start_q = (as_of.replace(day=1) - dt.timedelta(days=62)).replace(day=1)
    out = {}
    with engine.connect() as conn:
        ref, out["reference"] = timed(R.sql_snapshot, conn, as_of, cur)
        t0 = time.perf_counter()
        snap = kpis.snapshot(conn, as_of, flt)
        ag = kpis.aging(conn, as_of, flt)
        out["kpi_set"] = time.perf_counter() - t0
        ops.dispute_stats(conn, start_q, as_of, flt)
        ops.promise_stats(conn, start_q, as_of, flt)
        ops.contact_coverage(conn, as_of, flt)
        ops.collector_kpis(conn, start_q, as_of, flt)
        kpis.aging_detail(conn, as_of, flt, None, 500)
        kpis.cei(conn, start_q, as_of, flt)
        kpis.payment_days(conn, start_q, as_of, flt)
        kpis.write_off_ratio(conn, start_q, as_of, flt)
        out["full_set"] = time.perf_counter() - t0
    engine.dispose()
    agree = (ref["ar_cents"] == round(snap["ar_total"] * 100) and ref["open_items"] == snap["open_items"]
             and ref["customers_with_balance"] == snap["customers_with_balance"]
             and ref["unapplied_cents"] == round(snap["unapplied_cash"] * 100)
             and ref["aging"] == {int(r.bucket_order): int(r.open_cents) for r in ag.itertuples() if r.open_cents})
    return {**out, "agree": bool(agree), "ar_total": snap["ar_total"], "peak_mb": peak_mb()}


def child_overview(p: dict) -> dict:
    cold, warm, errors = overview_apptest(p["url"], timeout=1800)
    return {"cold": cold, "warm": warm, "errors": errors, "peak_mb": peak_mb()}


CHILDREN = {"worklist": child_worklist, "generate": child_generate, "duckdb_ref": child_duckdb_ref,
            "pandas_ref": child_pandas_ref, "cli_kpis": child_cli_kpis, "backend": child_backend,
            "overview": child_overview}


# ----------------------------------------------------------------------------------------------
# Helpers for the main process
# ----------------------------------------------------------------------------------------------
class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, step, secs, duck=None, pand=None, note="", mem=None):
        row = {"step": step, "analytics_s": secs, "duckdb_ref_s": duck, "pandas_ref_s": pand,
               "peak_mb": round(mem if mem is not None else peak_mb()), "note": note}
        self.rows.append(row)
        ratio = f" ({secs / duck:.1f}x DuckDB ref)" if (secs is not None and duck) else ""
        log(f"  {step:<46} {_s(secs):>9}{ratio}  duckdb-ref {_s(duck)}  pandas-ref {_s(pand)}  "
            f"peak {row['peak_mb']} MB  {note}")

    def markdown(self) -> str:
        out = ["| step | analytics (s) | DuckDB SQL ref (s) | pandas ref (s) | vs DuckDB ref | peak RSS (MB) | note |",
               "|---|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            ratio = f"{r['analytics_s'] / r['duckdb_ref_s']:.1f}x" if (
                r["analytics_s"] is not None and r["duckdb_ref_s"]) else ""
            out.append(f"| {r['step']} | {_s(r['analytics_s'])} | {_s(r['duckdb_ref_s'])} | {_s(r['pandas_ref_s'])} "
                       f"| {ratio} | {r['peak_mb']} | {r['note']} |")
        return "\n".join(out)


def _s(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:.2f}"


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    v = fn(*a, **k)
    return v, time.perf_counter() - t0


def export_parquet(engine, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for t in TABLES:
            raw.execute(f"COPY (SELECT * FROM \"{t}\") TO '{folder / (t + '.parquet')}' (FORMAT parquet)")


def build_sqlite(parquet: Path, path: Path) -> None:
    """A SQLite copy of the ledger tables the aging and snapshot read (schema by migration, rows by sqlite3)."""
    import pyarrow.parquet as pq

    from analytics import db, schema

    if path.exists():
        path.unlink()
    db.connect(f"sqlite:///{path}").dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    for t in TABLES:
        cols = [c.name for c in schema.metadata.tables[t].c]
        pf = pq.ParquetFile(parquet / f"{t}.parquet")
        cols = [c for c in cols if c in pf.schema_arrow.names]
        sql = f'INSERT INTO "{t}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
        for batch in pf.iter_batches(batch_size=200_000, columns=cols):
            data = batch.to_pydict()
            for c in cols:
                v = data[c]
                if v and any(isinstance(x, (dt.date, dt.datetime)) for x in v[:50]):
                    data[c] = [None if x is None else (x.isoformat(sep=" ") if isinstance(x, dt.datetime)
                                                       else x.isoformat()) for x in v]
            con.executemany(sql, zip(*(data[c] for c in cols)))
    con.commit()
    con.execute("ANALYZE")
    con.close()


def bounded_sqlite(engine, limit: float, fn, *args):
    """Run fn(conn, *args) on SQLite, interrupted after ``limit`` seconds; returns (value, secs) or (None, '>limit')."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        deadline = time.perf_counter() + limit
        raw.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 100_000)
        t0 = time.perf_counter()
        try:
            value = fn(conn, *args)
        except Exception as exc:  # interrupted
            if "interrupt" in str(exc).lower():
                return None, f">{limit:.0f}"
            raise
        finally:
            raw.set_progress_handler(None, 0)
        return value, time.perf_counter() - t0


def overview_apptest(url: str, timeout: float) -> tuple[float, float, list]:
    """Overview page through the real entry point: (cold seconds, warm seconds, exceptions)."""
    from streamlit.testing.v1 import AppTest

    from analytics.auth import User

    os.environ["AR_DB_URL"] = url
    os.environ["AR_DASHBOARD_RAISE"] = "1"
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=timeout)
    at.session_state["user"] = User("admin", "admin", None)
    at.session_state["_last_seen"] = time.time()
    t0 = time.perf_counter()
    at.run()  # the first page of an admin's navigation is the Overview
    cold = time.perf_counter() - t0
    if "Overview" not in [t.value for t in at.title]:
        at.switch_page("../pages/overview.py")
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
    at.session_state["_last_seen"] = time.time()
    t0 = time.perf_counter()
    at.run()
    warm = time.perf_counter() - t0
    if "Overview" not in [t.value for t in at.title]:
        raise RuntimeError(f"Overview not rendered: titles {[t.value for t in at.title]}")
    metrics = len(at.metric)
    if metrics < 8:
        raise RuntimeError(f"Overview shows {metrics} KPI cards, expected 8")
    errors = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
    return cold, warm, errors


def _agree(a, b, tol=0) -> bool:
    return abs(int(a) - int(b)) <= tol


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def postgres_ledger(work: Path, n: int, customers: int, seed: int, reuse: bool):
    """A kept PostgreSQL server under ``work/postgres`` with the same generated ledger (same seed): (server, url)."""
    from scripts.postgres_local import PostgresServer

    work.chmod(0o755)  # the server runs as the postgres user under root
    server = PostgresServer(work / "postgres", port=None).start()
    url = server.create_database("ar", keep=reuse)
    import sqlalchemy as sa

    from analytics import db, schema
    engine = db.connect(url)
    with engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar()
    engine.dispose()
    if not have:
        log(f"  generating the same ledger on PostgreSQL (child) ...")
        g = child("generate", {"url": url, "customers": customers, "invoices": n, "seed": seed})
        log(f"  PostgreSQL load: {g['seconds']:.0f} s, generator peak {g['peak_mb']:.0f} MB")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # fresh statistics, as after any bulk load (the planner needs them)
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return server, url


def compare_backends(args, work: Path, duck_url: str, n: int, customers: int) -> str:
    """DuckDB and PostgreSQL side by side in the same run, each figure in its own child process
    (its own peak memory): ratio PostgreSQL ÷ DuckDB, and the hand-written SQL reference on each."""
    from analytics import db, kpis

    if args.pg_url:  # an existing server holding the same generated ledger
        server, pg_url = None, args.pg_url
        import sqlalchemy as sa
        eng = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
        eng.dispose()
    else:
        server, pg_url = postgres_ledger(work, n, customers, args.seed, args.reuse)
    engine = db.make_engine(duck_url)
    with engine.connect() as conn:
        as_of, cur = kpis.latest_date(conn), kpis.main_currency(conn)
    engine.dispose()
    rows = []

    def row(label, d, p, ref_d=None, ref_p=None, mem_d=None, mem_p=None, note=""):
        ratio = f"{p / d:.1f}x" if isinstance(d, float) and isinstance(p, float) and d else ""
        mem = lambda m: f"{m:,.0f}" if isinstance(m, (int, float)) else "–"  # noqa: E731
        rows.append(f"| {label} | {_s(d)} | {_s(p)} | {ratio} | {_s(ref_d)} / {_s(ref_p)} | "
                    f"{mem(mem_d)} / {mem(mem_p)} | {note} |")
        log(f"  {label:<44} DuckDB {_s(d):>7}  PostgreSQL {_s(p):>7}  {ratio:>6}  refs {_s(ref_d)} / {_s(ref_p)}  {note}")

    payload = lambda url: {"url": url, "as_of": as_of.isoformat(), "currency": cur}  # noqa: E731
    try:
        for rep in range(args.repeat):
            d, p = child("cli_kpis", payload(duck_url)), child("cli_kpis", payload(pg_url))
            row(f"`kpis --json` (whole command){' #' + str(rep + 1) if args.repeat > 1 else ''}", d["seconds"],
                p["seconds"], mem_d=d["peak_mb"], mem_p=p["peak_mb"],
                note="same output" if d["output"] == p["output"] else "OUTPUT DIFFERS")
        d, p = child("backend", payload(duck_url)), child("backend", payload(pg_url))
        row("KPI set at one date (snapshot + aging)", d["kpi_set"], p["kpi_set"], d["reference"], p["reference"],
            d["peak_mb"], p["peak_mb"], note=f"reference agrees: DuckDB {'yes' if d['agree'] else 'NO'}, "
                                              f"PostgreSQL {'yes' if p['agree'] else 'NO'}")
        row("full KPI set incl. operations KPIs", d["full_set"], p["full_set"], mem_d=d["peak_mb"], mem_p=p["peak_mb"])
        if not args.no_apptest:
            d, p = child("overview", {"url": duck_url}), child("overview", {"url": pg_url})
            row("Overview page, AppTest cold", d["cold"], p["cold"], mem_d=d["peak_mb"], mem_p=p["peak_mb"])
            row("Overview page, AppTest warm", d["warm"], p["warm"], mem_d=d["peak_mb"], mem_p=p["peak_mb"])
        if not args.no_worklist:
            w = {}
            for name, url in (("d", duck_url), ("p", pg_url)):
                try:
                    w[name] = child("worklist", payload(url), timeout=args.worklist_limit)
                except subprocess.TimeoutExpired:
                    w[name] = None
            get = lambda k, f: w[k][f] if w[k] else f">{args.worklist_limit:.0f}"  # noqa: E731
            row("Worklist, first call (trains the model)", get("d", "first"), get("p", "first"),
                mem_d=w["d"] and w["d"]["peak_mb"], mem_p=w["p"] and w["p"]["peak_mb"])
            row("Worklist, model cached", get("d", "second"), get("p", "second"))
    finally:
        if server is not None and not args.keep_postgres:
            server.stop()
    head = ["| figure | DuckDB (s) | PostgreSQL (s) | PostgreSQL ÷ DuckDB | hand-written SQL reference DuckDB / "
            "PostgreSQL (s) | peak RSS DuckDB / PostgreSQL (MB) | note |", "|---|---:|---:|---:|---:|---:|---|"]
    return "\n".join(head + rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=None, help="default: invoices / 100")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--workdir", default=None, help="default /tmp/ar_bench_<invoices>")
    ap.add_argument("--reuse", action="store_true", help="reuse the ledger already generated in --workdir")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite vs DuckDB comparison")
    ap.add_argument("--sqlite-limit", type=float, default=180, help="seconds before a SQLite query is interrupted")
    ap.add_argument("--no-apptest", action="store_true")
    ap.add_argument("--no-worklist", action="store_true",
                    help="skip the worklist (its first call trains the risk model: 26 s at 1M, 66 s at 5M)")
    ap.add_argument("--worklist-limit", type=float, default=1200, help="seconds before the worklist is interrupted")
    ap.add_argument("--postgres", action="store_true",
                    help="also load the same ledger into a local PostgreSQL (scripts/postgres_local.py) and time "
                         "both backends side by side")
    ap.add_argument("--backends-only", action="store_true",
                    help="with --postgres: only the DuckDB / PostgreSQL comparison (no Parquet, references, SQLite)")
    ap.add_argument("--pg-url", help="with --postgres: an existing PostgreSQL database already holding the same "
                                     "generated ledger (same --invoices, --customers, --seed) instead of a local server")
    ap.add_argument("--keep-postgres", action="store_true", help="leave the benchmark's PostgreSQL server running")
    ap.add_argument("--repeat", type=int, default=1, help="times `kpis --json` is run on each backend")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--payload", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.payload))), flush=True)
        # Leave without interpreter teardown: DuckDB's binding has aborted there (exit 134) after a
        # 1M-invoice generation whose data was already committed, which failed the whole benchmark.
        sys.stderr.flush()
        os._exit(0)

    import sqlalchemy as sa

    from analytics import db, kpis, schema
    from analytics.kpis import operations as ops

    n = args.invoices
    customers = args.customers or max(10, n // 100)
    work = Path(args.workdir or f"/tmp/ar_bench_{n}")
    work.mkdir(parents=True, exist_ok=True)
    dbfile, parquet = work / "ledger.duckdb", work / "parquet"
    url = f"duckdb:///{dbfile}"
    table = Table()
    facts: dict = {"invoices": n, "customers": customers, "started": dt.datetime.now().isoformat(timespec="seconds"),
                   "cpus": os.cpu_count()}
    log(f"scale benchmark: {n:,} invoices / {customers:,} customers in {work} ({os.cpu_count()} CPUs)")

    # 1. load
    if args.reuse and dbfile.exists():
        log("  reusing the generated ledger")
        table.add("load: generate + write (reused)", None, note="--reuse")
    else:
        for f in (dbfile, Path(str(dbfile) + ".wal")):
            if f.exists():
                f.unlink()
        g = child("generate", {"url": url, "customers": customers, "invoices": n, "seed": args.seed})
        facts["generated"] = g["summary"]
        table.add("load: generate + write (child process)", g["seconds"], mem=g["peak_mb"],
                  note=f"build {g['summary'].get('build_seconds', 0):.0f} s + write "
                       f"{g['summary'].get('write_seconds', 0):.0f} s; peak is the generator's")
    facts["db_file_mb"] = round(dbfile.stat().st_size / 2**20)
    if args.postgres and args.backends_only:
        log(f"  load average {os.getloadavg()[0]:.1f} (the machine is shared: ratios are from this one run)")
        text = (f"# DuckDB vs PostgreSQL: {n:,} invoices\n\n{facts['started']} · {os.cpu_count()} CPUs · load "
                f"average {os.getloadavg()[0]:.1f} at the start\n\n" + compare_backends(args, work, url, n, customers))
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"backends_{n}.md").write_text(text + "\n")
        print()
        print(text)
        return 0

    engine = db.connect(url)
    _, secs = timed(export_parquet, engine, parquet)
    table.add("export ledger tables to Parquet (for the references)", secs)

    with engine.connect() as conn:
        counts = {t: conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[t])).scalar()
                  for t in TABLES}
        as_of = kpis.latest_date(conn)
    facts["rows"] = counts
    dates = kpis.last_month_ends(as_of, args.months)
    prior = sorted({d.replace(day=1) - dt.timedelta(days=1) for d in dates})
    trend_dates = sorted(set(dates) | set(prior))
    roll_dates = dates
    start_q = (as_of.replace(day=1) - dt.timedelta(days=62)).replace(day=1)
    log(f"  ledger {counts}; as of {as_of}; trend {dates[0]}..{dates[-1]}")

    # 3. analytics (this process)
    with engine.connect() as conn:
        cur, t_cur = timed(kpis.main_currency, conn)
        flt = kpis.LedgerFilter(currencies=(cur,))
        table.add("main_currency", t_cur)
        snap, t_snap = timed(kpis.snapshot, conn, as_of, flt)
        ag, t_ag = timed(kpis.aging, conn, as_of, flt)
    payload = {"parquet": str(parquet), "currency": cur, "as_of": as_of.isoformat(),
               "trend_dates": [d.isoformat() for d in trend_dates], "roll_dates": [d.isoformat() for d in roll_dates]}
    log("  running the DuckDB SQL reference (child) ...")
    dref = child("duckdb_ref", payload)
    log("  running the pandas reference (child) ...")
    try:
        pref = child("pandas_ref", payload, timeout=3600)
    except Exception as exc:  # e.g. out of memory at 5M
        log(f"  pandas reference failed: {str(exc)[-300:]}")
        pref = None
    facts["ref_peak_mb"] = {"duckdb": round(dref["peak_mb"]), "pandas": round(pref["peak_mb"]) if pref else None}

    # agreement checks
    d_snap = dict((k, v) for k, v in dref["snapshot"][1])
    ok_snap = _agree(d_snap["ar_cents"], round(snap["ar_total"] * 100)) and d_snap["open_items"] == snap["open_items"] \
        and d_snap["customers_with_balance"] == snap["customers_with_balance"]
    if pref:
        p_snap = dict((k, v) for k, v in pref["snapshot"][1])
        ok_snap = ok_snap and p_snap["ar_cents"] == d_snap["ar_cents"] and p_snap["open_items"] == d_snap["open_items"]
    ref_d, ref_p = dref["snapshot"][0], (pref["snapshot"][0] if pref else None)
    table.add("snapshot (kpis.snapshot)", t_snap)
    table.add("aging (kpis.aging)", t_ag)
    table.add("KPI set at one date: snapshot + aging", t_snap + t_ag, ref_d, ref_p,
              note=f"AR {snap['ar_total']:,.2f} {cur}; references agree: {'yes' if ok_snap else 'NO'}")

    with engine.connect() as conn:
        ops_total = 0.0
        for label, fn, a in [
            ("dispute_stats (last quarter)", ops.dispute_stats, (start_q, as_of, flt)),
            ("promise_stats (last quarter)", ops.promise_stats, (start_q, as_of, flt)),
            ("contact_coverage", ops.contact_coverage, (as_of, flt)),
            ("collector_kpis (last quarter)", ops.collector_kpis, (start_q, as_of, flt)),
            ("aging_detail (top 500)", kpis.aging_detail, (as_of, flt, None, 500)),
            ("cei + payment_days + write_off_ratio", None, None),
        ]:
            if fn is None:
                t0 = time.perf_counter()
                kpis.cei(conn, start_q, as_of, flt)
                kpis.payment_days(conn, start_q, as_of, flt)
                kpis.write_off_ratio(conn, start_q, as_of, flt)
                secs = time.perf_counter() - t0
            else:
                _, secs = timed(fn, conn, *a)
            ops_total += secs
            table.add(f"  ops: {label}", secs)
        table.add("full KPI set at one date (core + ops above)", t_snap + t_ag + ops_total,
                  note="the references cover the core set (row above) only")

        kt, t_kt = timed(kpis.kpi_trend, conn, dates, flt)
        at_, t_at = timed(kpis.aging_trend, conn, dates, flt)
        d_tr = dict((k, v) for k, v in dref["trend"][1])
        d_bal = {d: sum(v for _, v in bs) for d, bs in d_tr["balances"]}
        ok_tr = all(_agree(d_bal.get(r.as_of.isoformat(), 0), r.ar_cents) for r in kt.itertuples())
        if pref:
            p_bal = {d: sum(v for _, v in bs) for d, bs in dict((k, v) for k, v in pref["trend"][1])["balances"]}
            ok_tr = ok_tr and all(_agree(p_bal[d], d_bal.get(d, 0)) for d in p_bal)
        table.add(f"trend: kpi_trend ({len(dates)} month ends)", t_kt)
        table.add(f"trend: aging_trend ({len(dates)} month ends)", t_at)
        table.add(f"{len(dates)}-month DSO + aging trend", t_kt + t_at, dref["trend"][0],
                  pref["trend"][0] if pref else None, note=f"AR per date agrees: {'yes' if ok_tr else 'NO'}")

        rr, t_rr = timed(kpis.roll_rates, conn, roll_dates, flt)
        d_roll = {(k[0], k[1]): v for k, v in dref["roll"][1]}
        ok_rr = all(d_roll.get((r.as_of.isoformat(), r.bucket_order), [0, 0])[0] == r.balance_cents
                    for r in rr.itertuples())
        table.add(f"roll_rates ({len(roll_dates)} month ends)", t_rr, dref["roll"][0],
                  pref["roll"][0] if pref else None, note=f"balances agree: {'yes' if ok_rr else 'NO'}")
        _, t_pm = timed(kpis.provision_matrix, conn, as_of, flt)
        table.add("provision_matrix (13 month ends)", t_pm)

    engine.dispose()  # a DuckDB file is opened by one process at a time
    if args.no_worklist:
        table.add("worklist", None, note="skipped (--no-worklist)")
    else:
        log("  worklist (child process) ...")
        try:
            w = child("worklist", {"url": url, "as_of": as_of.isoformat(), "currency": cur},
                      timeout=args.worklist_limit)
            table.add("worklist (first call: trains the risk model)", w["first"], mem=w["peak_mb"],
                      note=f"{w['accounts']:,} accounts; peak is the worklist child's")
            table.add("worklist (model cached: features + scoring)", w["second"], mem=w["peak_mb"])
        except subprocess.TimeoutExpired:
            table.add("worklist (first call: trains the risk model)", f">{args.worklist_limit:.0f}",
                      note="interrupted")
    if pref:
        table.add("pandas: read Parquet into frames", None, pand=pref["load"], note="not in the pandas figures above")

    if not args.no_apptest:
        try:
            cold, warm, errors = overview_apptest(url, timeout=1800)
            table.add("Overview page, AppTest cold (empty cache)", cold, note="; ".join(errors)[:120])
            table.add("Overview page, AppTest warm (second run)", warm, note="target < 2 s")
        except Exception as exc:
            table.add("Overview page, AppTest", None, note=f"failed: {exc}"[:200])
        engine = db.make_engine(url)

    facts["analytics_peak_mb"] = round(peak_mb())

    if not args.no_sqlite:
        sqlite_path = work / "ledger.sqlite"
        _, secs = timed(build_sqlite, parquet, sqlite_path)
        table.add("SQLite: copy ledger tables from Parquet", secs)
        se = db.make_engine(f"sqlite:///{sqlite_path}")
        for label, fn in [("aging", kpis.aging), ("snapshot", kpis.snapshot)]:
            _, t_duck = timed(lambda: _with(engine, fn, as_of, flt))
            _, t_sql = bounded_sqlite(se, args.sqlite_limit, fn, as_of, flt)
            table.add(f"{label}: DuckDB via SQLAlchemy", t_duck)
            table.add(f"{label}: SQLite via SQLAlchemy", t_sql, note=f"bounded at {args.sqlite_limit:.0f} s")
        se.dispose()
    engine.dispose()

    facts["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    md = [f"# Scale benchmark: {n:,} invoices", "",
          f"{facts['started']} · {os.cpu_count()} CPUs · DuckDB file {facts['db_file_mb']} MB · rows "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()), "",
          table.markdown(), "",
          f"Peak RSS: analytics + dashboard process {facts['analytics_peak_mb']} MB (before the SQLite step); "
          f"DuckDB reference {facts['ref_peak_mb']['duckdb']} MB; "
          f"pandas reference {facts['ref_peak_mb']['pandas']} MB."]
    if args.postgres:
        md += ["", "## DuckDB vs PostgreSQL (same run)", "", compare_backends(args, work, url, n, customers)]
    text = "\n".join(md)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"run_{n}.md").write_text(text + "\n")
    (OUT / f"run_{n}.json").write_text(json.dumps({"facts": facts, "rows": table.rows}, indent=2, default=str))
    print()
    print(text)
    return 0


def _with(engine, fn, *args):
    with engine.connect() as conn:
        return fn(conn, *args)


if __name__ == "__main__":
    raise SystemExit(main())
