"""Hand-written references for benchmarks/run.py: the same figures from Parquet exports of the ledger.

Two references per figure, written the way an analyst would by hand:

* ``duckdb_*``: one DuckDB SQL query (or a few) over ``read_parquet`` views, no SQLAlchemy;
* ``pandas_*``: plain pandas on frames read from the same Parquet files.

They compute the same quantities as :mod:`analytics.kpis` (open amount at D = amount + settlements
dated <= D; buckets Current/1-30/31-60/61-90/91-120/120+ on D − due date; one currency), so the
benchmark can also check that the numbers agree.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

EDGES = (0, 30, 60, 90, 120)
SALES = ("invoice", "debit_memo")


def _bucket_sql(dpd: str) -> str:
    whens = " ".join(f"WHEN {dpd} <= {e} THEN {i}" for i, e in enumerate(EDGES))
    return f"CASE {whens} ELSE {len(EDGES)} END"


def _dates_sql(dates) -> str:
    return "(VALUES " + ", ".join(f"(DATE '{d.isoformat()}')" for d in dates) + ") AS d(as_of)"


def duckdb_views(con, folder: Path, currency: str) -> None:
    """Register Parquet views (invoices limited to one currency) and the settlements view."""
    for t in ("customers", "invoices", "receipts", "applications", "adjustments"):
        con.execute(f"CREATE OR REPLACE VIEW p_{t} AS SELECT * FROM read_parquet('{folder / (t + '.parquet')}')")
    con.execute(f"CREATE OR REPLACE VIEW inv AS SELECT * FROM p_invoices WHERE currency = '{currency}'")
    con.execute("""CREATE OR REPLACE VIEW s AS
        SELECT invoice_id AS item, applied_date AS d, -amount_cents AS c FROM p_applications
        UNION ALL SELECT credit_memo_id, applied_date, amount_cents FROM p_applications
                  WHERE credit_memo_id IS NOT NULL
        UNION ALL SELECT invoice_id, adj_date, amount_cents FROM p_adjustments""")


def duckdb_snapshot(con, as_of: dt.date, currency: str, window: int = 90) -> dict:
    """AR, aging (amount, items, customers per bucket) at D and at the previous month end, credit
    sales (window, month to date, per month), customers with a balance, unapplied cash."""
    prev = as_of.replace(day=1) - dt.timedelta(days=1)
    aging = con.execute(f"""
        WITH o AS (
            SELECT d.as_of, i.id, i.customer_id, i.due_date, i.amount_cents + coalesce(sum(s.c), 0) AS open
            FROM {_dates_sql([prev, as_of])} JOIN inv i ON i.invoice_date <= d.as_of
            LEFT JOIN s ON s.item = i.id AND s.d <= d.as_of
            GROUP BY d.as_of, i.id, i.customer_id, i.due_date, i.amount_cents HAVING open <> 0)
        SELECT as_of, {_bucket_sql('(as_of - due_date)')} AS b, sum(open)::BIGINT AS cents, count(*) AS items,
               count(DISTINCT customer_id) AS customers
        FROM o GROUP BY ALL ORDER BY ALL""").fetchall()
    with_balance = con.execute(f"""
        WITH o AS (
            SELECT i.customer_id, i.amount_cents + coalesce(sum(s.c), 0) AS open
            FROM inv i LEFT JOIN s ON s.item = i.id AND s.d <= DATE '{as_of}'
            WHERE i.invoice_date <= DATE '{as_of}' GROUP BY i.id, i.customer_id, i.amount_cents)
        SELECT count(*) FROM (SELECT customer_id FROM o GROUP BY 1 HAVING sum(open) <> 0)""").fetchone()[0]
    lo = as_of - dt.timedelta(days=window)
    sales = con.execute(f"""
        SELECT sum(amount_cents) FILTER (WHERE invoice_date > DATE '{lo}')::BIGINT,
               sum(amount_cents) FILTER (WHERE invoice_date >= DATE '{as_of.replace(day=1)}')::BIGINT
        FROM inv WHERE doc_type IN {SALES} AND invoice_date <= DATE '{as_of}'""").fetchone()
    monthly = con.execute(f"""
        SELECT year(invoice_date), month(invoice_date), sum(amount_cents)::BIGINT FROM inv
        WHERE doc_type IN {SALES} AND invoice_date <= DATE '{as_of}' GROUP BY ALL""").fetchall()
    unapplied = con.execute(f"""
        SELECT sum(r.amount_cents - coalesce(a.applied, 0))::BIGINT FROM p_receipts r
        LEFT JOIN (SELECT receipt_id, sum(amount_cents) AS applied FROM p_applications
                   WHERE receipt_id IS NOT NULL AND applied_date <= DATE '{as_of}' GROUP BY 1) a
               ON a.receipt_id = r.id
        WHERE r.receipt_date <= DATE '{as_of}' AND r.currency = '{currency}'""").fetchone()[0]
    ar = sum(r[2] for r in aging if r[0] == as_of)
    return {"ar_cents": ar, "aging": {r[1]: r[2] for r in aging if r[0] == as_of},
            "open_items": sum(r[3] for r in aging if r[0] == as_of), "customers_with_balance": with_balance,
            "sales": sales, "months": len(monthly), "unapplied_cents": unapplied}


def duckdb_trend(con, dates, window: int = 90) -> dict:
    """AR per (date, bucket) for every date (open amount = Σ amounts issued by D + Σ settlements dated <= D
    of items issued by D, grouped by D and the item's bucket at D), plus credit sales in each window."""
    bal = con.execute(f"""
        WITH d AS (SELECT * FROM {_dates_sql(dates)}),
        m AS (
            SELECT d.as_of, i.due_date, i.amount_cents AS c FROM d JOIN inv i ON i.invoice_date <= d.as_of
            UNION ALL
            SELECT d.as_of, i.due_date, s.c FROM d JOIN s ON s.d <= d.as_of
            JOIN inv i ON i.id = s.item AND i.invoice_date <= d.as_of)
        SELECT as_of, {_bucket_sql('(as_of - due_date)')} AS b, sum(c)::BIGINT FROM m GROUP BY ALL""").fetchall()
    sales = con.execute(f"""
        SELECT d.as_of, sum(i.amount_cents)::BIGINT FROM {_dates_sql(dates)}
        JOIN inv i ON i.invoice_date > d.as_of - INTERVAL {int(window)} DAY AND i.invoice_date <= d.as_of
        WHERE i.doc_type IN {SALES} GROUP BY ALL""").fetchall()
    out: dict = {}
    for d, b, c in bal:
        out.setdefault(d, {})[b] = c
    return {"balances": out, "sales": dict(sales)}


def duckdb_roll_rates(con, dates) -> dict:
    """Receivables per (date, invoice, bucket), then consecutive dates joined per invoice."""
    rows = con.execute(f"""
        WITH o AS (
            SELECT d.as_of, i.id, {_bucket_sql('(d.as_of - i.due_date)')} AS b,
                   i.amount_cents + coalesce(sum(s.c), 0) AS open
            FROM {_dates_sql(dates)} JOIN inv i ON i.invoice_date <= d.as_of AND i.doc_type IN {SALES}
            LEFT JOIN s ON s.item = i.id AND s.d <= d.as_of
            GROUP BY d.as_of, i.id, i.due_date, i.amount_cents HAVING open <> 0),
        pairs AS (SELECT as_of AS m0, lead(as_of) OVER (ORDER BY as_of) AS m1 FROM {_dates_sql(dates)})
        SELECT p.m0, a.b, sum(a.open)::BIGINT, sum(CASE WHEN n.b = a.b + 1 THEN n.open ELSE 0 END)::BIGINT
        FROM pairs p JOIN o a ON a.as_of = p.m0 LEFT JOIN o n ON n.as_of = p.m1 AND n.id = a.id
        WHERE p.m1 IS NOT NULL GROUP BY ALL""").fetchall()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


# ----------------------------------------------------------------------------------------------
# pandas
# ----------------------------------------------------------------------------------------------
def pandas_load(folder: Path, currency: str) -> dict:
    """Frames from Parquet, dates as datetime64, invoices of one currency, one settlements frame."""
    inv = pd.read_parquet(folder / "invoices.parquet",
                          columns=["id", "customer_id", "doc_type", "invoice_date", "due_date", "amount_cents",
                                   "currency"])
    inv = inv[inv.currency == currency].reset_index(drop=True)
    for c in ("invoice_date", "due_date"):
        inv[c] = pd.to_datetime(inv[c])
    ap = pd.read_parquet(folder / "applications.parquet",
                         columns=["receipt_id", "credit_memo_id", "invoice_id", "amount_cents", "applied_date"])
    ad = pd.read_parquet(folder / "adjustments.parquet", columns=["invoice_id", "adj_date", "amount_cents"])
    rc = pd.read_parquet(folder / "receipts.parquet", columns=["id", "receipt_date", "amount_cents", "currency"])
    ap["applied_date"] = pd.to_datetime(ap["applied_date"])
    ad["adj_date"] = pd.to_datetime(ad["adj_date"])
    rc["receipt_date"] = pd.to_datetime(rc["receipt_date"])
    cm = ap[ap.credit_memo_id.notna()]
    s = pd.concat([
        pd.DataFrame({"item": ap.invoice_id, "d": ap.applied_date, "c": -ap.amount_cents}),
        pd.DataFrame({"item": cm.credit_memo_id, "d": cm.applied_date, "c": cm.amount_cents}),
        pd.DataFrame({"item": ad.invoice_id, "d": ad.adj_date, "c": ad.amount_cents}),
    ], ignore_index=True)
    return {"inv": inv, "s": s, "apps": ap, "receipts": rc[rc.currency == currency]}


def _bucket(dpd: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array(EDGES), dpd, side="left")


def pandas_open_at(f: dict, as_of: dt.date, receivables_only: bool = False) -> pd.DataFrame:
    d = pd.Timestamp(as_of)
    inv, s = f["inv"], f["s"]
    settled = s[s.d <= d].groupby("item").c.sum()
    i = inv[inv.invoice_date <= d]
    if receivables_only:
        i = i[i.doc_type.isin(SALES)]
    open_ = i.amount_cents.to_numpy() + i.id.map(settled).fillna(0).to_numpy().astype("int64")
    out = pd.DataFrame({"id": i.id.to_numpy(), "customer_id": i.customer_id.to_numpy(), "open": open_,
                        "b": _bucket((d - i.due_date).dt.days.to_numpy())})
    return out[out.open != 0]


def pandas_snapshot(f: dict, as_of: dt.date, window: int = 90) -> dict:
    prev = as_of.replace(day=1) - dt.timedelta(days=1)
    o = pandas_open_at(f, as_of)
    o_prev = pandas_open_at(f, prev)
    aging = o.groupby("b").agg(cents=("open", "sum"), items=("open", "size"), customers=("customer_id", "nunique"))
    _ = o_prev.open.sum()
    per_cust = o.groupby("customer_id").open.sum()
    inv = f["inv"]
    d = pd.Timestamp(as_of)
    sales = inv[inv.doc_type.isin(SALES) & (inv.invoice_date <= d)]
    win = int(sales.amount_cents[sales.invoice_date > d - pd.Timedelta(days=window)].sum())
    mtd = int(sales.amount_cents[sales.invoice_date >= pd.Timestamp(as_of.replace(day=1))].sum())
    monthly = sales.groupby([sales.invoice_date.dt.year, sales.invoice_date.dt.month]).amount_cents.sum()
    ap, rc = f["apps"], f["receipts"]
    applied = ap[ap.receipt_id.notna() & (ap.applied_date <= d)].groupby("receipt_id").amount_cents.sum()
    r = rc[rc.receipt_date <= d]
    unapplied = int((r.amount_cents - r.id.map(applied).fillna(0)).sum())
    return {"ar_cents": int(o.open.sum()), "aging": {int(k): int(v) for k, v in aging.cents.items()},
            "open_items": int(len(o)), "customers_with_balance": int((per_cust != 0).sum()),
            "sales": (win, mtd), "months": int(len(monthly)), "unapplied_cents": unapplied}


def pandas_trend(f: dict, dates, window: int = 90) -> dict:
    out, sales = {}, {}
    inv = f["inv"]
    inv_s = inv[inv.doc_type.isin(SALES)]
    for d in dates:
        o = pandas_open_at(f, d)
        out[d] = {int(k): int(v) for k, v in o.groupby("b").open.sum().items()}
        t = pd.Timestamp(d)
        sales[d] = int(inv_s.amount_cents[(inv_s.invoice_date > t - pd.Timedelta(days=window))
                                          & (inv_s.invoice_date <= t)].sum())
    return {"balances": out, "sales": sales}


def pandas_roll_rates(f: dict, dates) -> dict:
    out = {}
    prev = None
    for d in dates:
        o = pandas_open_at(f, d, receivables_only=True)[["id", "open", "b"]]
        if prev is not None:
            m = prev[1].merge(o, on="id", how="left", suffixes=("", "_n"))
            rolled = m.open_n.where(m.b_n == m.b + 1, 0).fillna(0)
            for b, g in m.assign(rolled=rolled).groupby("b"):
                out[(prev[0], int(b))] = (int(g.open.sum()), int(g.rolled.sum()))
        prev = (d, o)
    return out


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------
# The same hand-written reference over the ledger's own tables, in SQL that DuckDB and PostgreSQL both run
# (no GROUP BY ALL, no aliases in HAVING): what a person would write against either database.
# ----------------------------------------------------------------------------------------------
def _ledger_settlements() -> str:
    return """(SELECT invoice_id AS item, applied_date AS d, -amount_cents AS c FROM applications
               UNION ALL SELECT credit_memo_id, applied_date, amount_cents FROM applications
                         WHERE credit_memo_id IS NOT NULL
               UNION ALL SELECT invoice_id, adj_date, amount_cents FROM adjustments)"""


def sql_snapshot(conn, as_of: dt.date, currency: str, window: int = 90) -> dict:
    """:func:`duckdb_snapshot`'s figures from the ledger tables of a DuckDB or PostgreSQL database.

    ``conn`` is a SQLAlchemy connection. Returns the same keys as :func:`duckdb_snapshot`.
    """
    import sqlalchemy as sa

    q = lambda sql: conn.execute(sa.text(sql)).all()  # noqa: E731
    prev = as_of.replace(day=1) - dt.timedelta(days=1)
    s = _ledger_settlements()
    aging = q(f"""
        WITH o AS (
            SELECT d.as_of, i.id, i.customer_id, i.due_date, i.amount_cents + coalesce(sum(s.c), 0) AS open
            FROM {_dates_sql([prev, as_of])} JOIN invoices i ON i.invoice_date <= d.as_of AND i.currency = '{currency}'
            LEFT JOIN {s} s ON s.item = i.id AND s.d <= d.as_of
            GROUP BY d.as_of, i.id, i.customer_id, i.due_date, i.amount_cents
            HAVING i.amount_cents + coalesce(sum(s.c), 0) <> 0)
        SELECT as_of, {_bucket_sql('(as_of - due_date)')} AS b, CAST(sum(open) AS BIGINT) AS cents,
               count(*) AS items, count(DISTINCT customer_id) AS customers
        FROM o GROUP BY 1, 2 ORDER BY 1, 2""")
    with_balance = q(f"""
        WITH o AS (
            SELECT i.customer_id, i.amount_cents + coalesce(sum(s.c), 0) AS open
            FROM invoices i LEFT JOIN {s} s ON s.item = i.id AND s.d <= DATE '{as_of}'
            WHERE i.invoice_date <= DATE '{as_of}' AND i.currency = '{currency}'
            GROUP BY i.id, i.customer_id, i.amount_cents)
        SELECT count(*) FROM (SELECT customer_id FROM o GROUP BY 1 HAVING sum(open) <> 0) x""")[0][0]
    lo = as_of - dt.timedelta(days=window)
    sales = q(f"""
        SELECT CAST(sum(amount_cents) FILTER (WHERE invoice_date > DATE '{lo}') AS BIGINT),
               CAST(sum(amount_cents) FILTER (WHERE invoice_date >= DATE '{as_of.replace(day=1)}') AS BIGINT)
        FROM invoices WHERE doc_type IN {SALES} AND invoice_date <= DATE '{as_of}'
          AND currency = '{currency}'""")[0]
    monthly = q(f"""
        SELECT extract(year FROM invoice_date), extract(month FROM invoice_date), CAST(sum(amount_cents) AS BIGINT)
        FROM invoices WHERE doc_type IN {SALES} AND invoice_date <= DATE '{as_of}' AND currency = '{currency}'
        GROUP BY 1, 2""")
    unapplied = q(f"""
        SELECT CAST(sum(r.amount_cents - coalesce(a.applied, 0)) AS BIGINT) FROM receipts r
        LEFT JOIN (SELECT receipt_id, sum(amount_cents) AS applied FROM applications
                   WHERE receipt_id IS NOT NULL AND applied_date <= DATE '{as_of}' GROUP BY 1) a
               ON a.receipt_id = r.id
        WHERE r.receipt_date <= DATE '{as_of}' AND r.currency = '{currency}'""")[0][0]
    day = lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])  # noqa: E731
    now = [r for r in aging if day(r[0]) == as_of]
    return {"ar_cents": int(sum(r[2] for r in now)), "aging": {int(r[1]): int(r[2]) for r in now},
            "open_items": int(sum(r[3] for r in now)), "customers_with_balance": int(with_balance),
            "sales": [int(x or 0) for x in sales], "months": len(monthly), "unapplied_cents": int(unapplied or 0)}
