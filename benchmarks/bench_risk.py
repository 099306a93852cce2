"""Risk scoring speed: 100,000 open invoices (plus 100,000 paid ones as history) in an embedded DuckDB.

Builds a synthetic ledger directly with bulk inserts (2,000 customers; each invoice paid with a
customer-specific delay, the last 50 per customer left open), trains the models on its history, then
times ``score_invoices`` (all open invoices: features, probability, payment-date interval) and
``score_accounts`` (with explanations). Prints the figures.

Usage: ``.venv/bin/python benchmarks/bench_risk.py [--open 100000] [--customers 2000]``
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import db, schema  # noqa: E402
from analytics.risk import score_accounts, score_invoices, train  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{Path(tmp) / 'bench.duckdb'}"
        t = time.perf_counter()
        build(url, args.open, args.customers)
        print(f"built ledger: {args.open:,} open + {args.open:,} paid invoices, {args.customers:,} customers "
              f"in {time.perf_counter() - t:.1f} s")
        engine = db.make_engine(url)
        t = time.perf_counter()
        model = train(engine, AS_OF, max_iter=100)
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
