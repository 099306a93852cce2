"""Risk scoring speed: 100,000 open invoices (plus 100,000 paid ones as history) in an embedded DuckDB.

Builds a synthetic ledger directly with bulk inserts (2,000 customers; each invoice paid with a
customer-specific delay, the last 50 per customer left open), trains the models on its history, then
times ``score_invoices`` (all open invoices: features, probability, payment-date interval) and
``score_accounts`` (with explanations). Prints the figures.

Training at a given size: ``--ledger PATH`` trains on an existing DuckDB ledger instead (copied to a
temporary file first, so the original is never written) in a child process and prints the training
time and that process's peak RSS, e.g. on the 1,000,000-invoice benchmark ledger::

    .venv/bin/python benchmarks/bench_risk.py --ledger /tmp/ar_bench_1000000/ledger.duckdb
    .venv/bin/python benchmarks/bench_risk.py --ledger ... --max-training-rows 50000 --as-of 2026-11-01

Usage: ``.venv/bin/python benchmarks/bench_risk.py [--open 100000] [--customers 2000] [--max-training-rows N]``
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import db, schema  # noqa: E402
from analytics.risk import score_accounts, score_invoices, train  # noqa: E402
from analytics.risk.scoring import MAX_TRAINING_ROWS  # noqa: E402

AS_OF = dt.date(2026, 1, 1)


def build(url: str, n_open: int, n_customers: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    engine = db.connect(url)
    cust_ids = [f"C{i:05d}" for i in range(n_customers)]
    mean_late = rng.gamma(1.5, 6.0, n_customers) - 3  # customer behaviour
    n_paid = n_open
    per_open = n_open // n_customers
    rows = []
    # paid history: invoice dates spread over the 18 months before AS_OF - 60
    cust_paid = rng.integers(0, n_customers, n_paid)
    inv_date = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(60, 540, n_paid), unit="D")
    late = np.round(mean_late[cust_paid] + rng.normal(0, 5, n_paid)).astype(int)
    paid = pd.DataFrame({"id": [f"P{i:07d}" for i in range(n_paid)], "customer_id": np.array(cust_ids)[cust_paid],
                         "invoice_date": inv_date.date, "due_date": (inv_date + pd.Timedelta(days=30)).date,
                         "amount_cents": rng.integers(5_000, 500_000, n_paid)})
    pay = pd.to_datetime(paid["due_date"]) + pd.to_timedelta(late, unit="D")
    pay = pay.clip(lower=pd.to_datetime(paid["invoice_date"]), upper=pd.Timestamp(AS_OF - dt.timedelta(days=1)))
    pay = pay.dt.date
    cust_open = np.repeat(np.arange(n_customers), per_open)[:n_open]
    cust_open = np.concatenate([cust_open, rng.integers(0, n_customers, n_open - len(cust_open))])
    odate = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(1, 150, n_open), unit="D")
    open_ = pd.DataFrame({"id": [f"O{i:07d}" for i in range(n_open)], "customer_id": np.array(cust_ids)[cust_open],
                          "invoice_date": odate.date, "due_date": (odate + pd.Timedelta(days=30)).date,
                          "amount_cents": rng.integers(5_000, 500_000, n_open)})
    with engine.begin() as conn:
        db.bulk_insert(conn, schema.collectors, pd.DataFrame({"id": ["K1", "K2"], "name": ["A", "B"]}))
        db.bulk_insert(conn, schema.customers, pd.DataFrame({
            "id": cust_ids, "name": cust_ids, "region": rng.choice(["EMEA", "AMER", "APAC"], n_customers),
            "currency": "USD", "credit_limit_cents": rng.integers(1, 20, n_customers) * 1_000_000,
            "payment_terms_days": 30, "collector_id": rng.choice(["K1", "K2"], n_customers),
            "paperless": rng.random(n_customers) < 0.5, "customer_since": dt.date(2022, 1, 1)}))
        db.bulk_insert(conn, schema.invoices, pd.concat([paid, open_], ignore_index=True))
        db.bulk_insert(conn, schema.receipts, pd.DataFrame({
            "id": ["R" + i[1:] for i in paid["id"]], "customer_id": paid["customer_id"], "receipt_date": pay,
            "amount_cents": paid["amount_cents"], "currency": "USD", "method": "eft"}))
        db.bulk_insert(conn, schema.applications, pd.DataFrame({
            "receipt_id": ["R" + i[1:] for i in paid["id"]], "invoice_id": paid["id"],
            "amount_cents": paid["amount_cents"], "applied_date": pay, "source": "import"}))
        db.bump_ledger_version(conn)
    engine.dispose()


def _train_child(url: str, as_of: str | None, max_rows: int | None, queue) -> None:
    from analytics import kpis

    engine = db.make_engine(url)
    if as_of is None:
        with engine.connect() as conn:
            day = kpis.latest_date(conn)
    else:
        day = dt.date.fromisoformat(as_of)
    t = time.perf_counter()
    model = train(engine, day, max_training_rows=max_rows)
    secs = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_accounts(engine, day, model=model)
    score_secs = time.perf_counter() - t
    queue.put({"as_of": day.isoformat(), "train_seconds": secs, "score_seconds": score_secs, "accounts": len(scores),
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "method": model.method,
               "n_train": model.n_train})


def train_figures(ledger: Path, as_of: str | None, max_rows: int | None) -> dict:
    """Train on a copy of ``ledger`` in a fresh child process; its peak RSS is the training's own."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ledger.duckdb"
        shutil.copyfile(ledger, copy)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_train_child, args=(f"duckdb:///{copy}", as_of, max_rows, queue))
        proc.start()
        result = queue.get()
        proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--ledger", type=Path, default=None,
                    help="train on this existing DuckDB ledger (a copy) and print training time and peak RSS")
    ap.add_argument("--as-of", default=None, help="training/scoring date for --ledger (default: latest ledger date)")
    ap.add_argument("--max-training-rows", type=lambda v: None if v.lower() == "none" else int(v),
                    default=MAX_TRAINING_ROWS, help=f"bound per model (default {MAX_TRAINING_ROWS:,}; 'none' = all)")
    args = ap.parse_args()
    if args.ledger is not None:
        r = train_figures(args.ledger, args.as_of, args.max_training_rows)
        n = r["n_train"]
        print(f"train on {args.ledger} as of {r['as_of']} (max_training_rows={args.max_training_rows}): "
              f"{r['train_seconds']:.1f} s, peak RSS {r['peak_mb']:,.0f} MB (training child process)")
        print(f"  account: {n['account_rows']:,} rows of {n['account_candidates'] or 0:,} candidate snapshots "
              f"({n['account_sampled_customers'] or 'all'} customers); invoice: {n['invoice_rows']:,} labelled of "
              f"{n['invoice_candidates']:,} candidate invoices ({n['invoice_sampled_customers'] or 'all'} customers)")
        print(f"  method {r['method']}; then score_accounts: {r['accounts']:,} accounts in {r['score_seconds']:.1f} s")
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{Path(tmp) / 'bench.duckdb'}"
        t = time.perf_counter()
        build(url, args.open, args.customers)
        print(f"built ledger: {args.open:,} open + {args.open:,} paid invoices, {args.customers:,} customers "
              f"in {time.perf_counter() - t:.1f} s")
        engine = db.make_engine(url)
        t = time.perf_counter()
        model = train(engine, AS_OF, max_iter=100, max_training_rows=args.max_training_rows)
        print(f"train (history before {AS_OF}): {time.perf_counter() - t:.1f} s  {model.method}  {model.n_train}")
        t = time.perf_counter()
        inv = score_invoices(engine, AS_OF, model=model)
        secs = time.perf_counter() - t
        print(f"score_invoices: {len(inv):,} open invoices in {secs:.1f} s ({len(inv) / secs:,.0f} invoices/s)")
        t = time.perf_counter()
        acc = score_accounts(engine, AS_OF, model=model)
        print(f"score_accounts: {len(acc):,} accounts with reasons in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
