"""Risk features computed from the ledger strictly BEFORE a scoring date (no leakage).

A *point* is "a customer seen at a date": ``(point_id, customer_id, as_of)``. Account scoring uses one
point per customer at the scoring date; invoice-level training uses one point per invoice at its
invoice date; account-level training uses one point per customer per month-end snapshot. The same
SQL builds the features for every kind of point, so training and scoring see identical definitions.

Everything dated ``>= as_of`` is invisible to a point's *history*: invoices issued before ``as_of``,
settlements (cash, credits, adjustments) dated before ``as_of``, disputes opened before ``as_of``,
promises whose promised date is before ``as_of``. The invoice's *own* attributes
(:func:`invoice_attributes`) are read at the end of the scoring day: a dispute opened on the scoring
date itself (an invoice disputed the day it is issued) counts, nothing dated later does. Adding rows
dated after the scoring point therefore cannot change the features (tested in ``tests/test_risk.py``:
``test_no_leakage_future_rows_do_not_change_features``, ``test_invoice_features_see_nothing_after_the_scoring_point``).

The per-customer aggregates are computed in the database (SQLAlchemy Core, portable across DuckDB,
SQLite and PostgreSQL); only the resulting per-point frame (one row per account or per invoice)
comes into pandas, where ratios are formed.

Feature glossary (all "as of" the point's date, history limited to :data:`HISTORY_DAYS`):

===================  ===========================================================================
n_items              invoices/debit memos issued before the date
n_paid               of those, fully settled by cash/credit before the date
avg_days_late        mean (paid date − due date) over paid items (negative = early)
avg_late_recent      same, items paid in the last 90 days
avg_late_prev        same, items paid 91–180 days before
last3_days_late      mean days late of the last 3 paid items
late_share           share of paid items paid after the due date
severe_share         share of items paid 30+ days late or written off
partial_share        share of items paid in several instalments (or part-paid and still open)
dispute_rate         disputes opened / items issued
open_disputes        disputes open at the end of the day before the date
                     (:func:`analytics.ledger.dispute_is_open`); open_disputed_cents their amount
broken_promises_90   promises due in the last 90 days that are broken before the date
                     (:func:`analytics.ledger.promise_outcomes`, the KPI rule, point-in-time)
promises_90          promises due in the last 90 days
open_cents           open balance (debit items) at the date; overdue_share the part past due
share_31_60, share_61_90, share_90p   aging profile of the open balance
max_dpd              days past due of the oldest item with at least 10 % of its amount open (0 if none)
credit_util          open balance / credit limit (NaN without a limit)
terms_days           customer's payment terms
paperless            1 if the customer bills electronically at the date
tenure_days          days since customer_since (or first invoice)
region               customer's region (categorical)
===================  ===========================================================================
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import days_between, read_frame
from analytics.ledger import (DEFAULT_GRACE_DAYS, NO_FILTER, LedgerFilter, dispute_is_open, promise_outcomes,
                              receivable, settlements)

HISTORY_DAYS = 730
"""Only invoices issued within this many days before a point count towards its history."""

ACCOUNT_NUMERIC = [
    "n_items", "n_paid", "avg_days_late", "avg_late_recent", "avg_late_prev", "last3_days_late",
    "late_share", "severe_share", "partial_share", "dispute_rate", "open_disputes", "open_disputed_cents",
    "broken_promises_90", "promises_90", "open_cents", "overdue_share", "share_31_60", "share_61_90",
    "share_90p", "max_dpd", "credit_util", "terms_days", "paperless", "tenure_days", "avg_amount_cents",
]
CATEGORICAL = ["region"]
ACCOUNT_FEATURES = ACCOUNT_NUMERIC + CATEGORICAL
"""Columns an account-level model sees, in order."""

INVOICE_EXTRA = ["amount_cents", "amount_ratio", "inv_terms_days", "inv_disputed"]
INVOICE_FEATURES = ACCOUNT_NUMERIC + INVOICE_EXTRA + CATEGORICAL
"""Columns an invoice-level model sees, in order (account history + the invoice's own attributes)."""

inv = schema.invoices
cust = schema.customers


def _date(value) -> sa.ColumnElement:
    return sa.literal(value, sa.Date)


def in_ids(column: sa.ColumnElement, ids: Sequence[str]) -> sa.ColumnElement:
    """``column IN (ids)`` with the ids rendered as literals at execution time.

    A training sample can name tens of thousands of customers; bound parameters would hit the
    drivers' parameter limits (SQLite 32,766, PostgreSQL 65,535), literals do not.
    """
    return column.in_(sa.bindparam(None, value=[str(i) for i in ids], type_=sa.String, expanding=True,
                                   literal_execute=True))


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------
def customer_points(as_of: dt.date, flt: LedgerFilter = NO_FILTER, customer_ids: Sequence[str] | None = None):
    """One point per customer (matching ``flt``) at ``as_of``: ``point_id = customer_id``.

    Parameters
    ----------
    as_of : datetime.date
    flt : LedgerFilter, optional
    customer_ids : sequence of str, optional
        Restrict further to these customers.

    Returns
    -------
    sqlalchemy.Subquery
        Columns ``point_id, customer_id, as_of``.

    Example
    -------
    >>> q = customer_points(dt.date(2024, 3, 31))
    """
    stmt = sa.select(cust.c.id.label("point_id"), cust.c.id.label("customer_id"), _date(as_of).label("as_of"))
    clause = flt.customer_clause(cust.c.id)
    if clause is not None:
        stmt = stmt.where(clause)
    if customer_ids is not None:
        stmt = stmt.where(in_ids(cust.c.id, list(customer_ids)))
    return stmt.subquery("points")


def invoice_points(start: dt.date | None = None, end: dt.date | None = None,
                   customer_ids: Sequence[str] | None = None, per_customer: int | None = None, offset: int = 0):
    """One point per invoice/debit memo at its invoice date (for issuance-time training).

    Parameters
    ----------
    start, end : datetime.date, optional
        Keep invoices dated ``start <= invoice_date < end``.
    customer_ids : sequence of str, optional
        Keep only these customers' invoices (a training sample).
    per_customer : int, optional
        Keep at most this many invoices per customer, evenly spread over the customer's invoices in
        date order: with the customer's invoices numbered i = 0..n-1 (by invoice date, then id), keep
        those with ``((i + offset) * per_customer) mod n < per_customer`` — exactly
        ``min(n, per_customer)`` of them, deterministic for a given ``offset`` (a seed).

    Returns
    -------
    sqlalchemy.Subquery
        Columns ``point_id`` (= invoice id), ``customer_id``, ``as_of`` (= invoice date).
    """
    stmt = sa.select(inv.c.id.label("point_id"), inv.c.customer_id, inv.c.invoice_date.label("as_of")).where(
        receivable(inv.c.doc_type))
    if start is not None:
        stmt = stmt.where(inv.c.invoice_date >= _date(start))
    if end is not None:
        stmt = stmt.where(inv.c.invoice_date < _date(end))
    if customer_ids is not None:
        stmt = stmt.where(in_ids(inv.c.customer_id, customer_ids))
    if per_customer is not None:
        k = int(per_customer)
        numbered = stmt.add_columns(
            (sa.func.row_number().over(partition_by=inv.c.customer_id, order_by=(inv.c.invoice_date, inv.c.id))
             - 1).label("i"),
            sa.func.count().over(partition_by=inv.c.customer_id).label("n"),
        ).subquery("numbered")
        keep = ((numbered.c.i + int(offset)) * k) % numbered.c.n < k
        return sa.select(numbered.c.point_id, numbered.c.customer_id, numbered.c.as_of).where(keep).subquery("points")
    return stmt.subquery("points")


def snapshot_points(dates: Iterable[dt.date], horizon_days: int = 90, customer_ids: Sequence[str] | None = None):
    """One point per customer per snapshot date, for customers with at least one invoice before it.

    Parameters
    ----------
    dates : iterable of datetime.date
    horizon_days : int
        Label window length (``horizon_end = as_of + horizon_days``).
    customer_ids : sequence of str, optional
        Keep only these customers (a training sample).

    Returns
    -------
    sqlalchemy.Subquery
        Columns ``point_id`` (``customer_id|YYYY-MM-DD``), ``customer_id``, ``as_of``, ``horizon_end``.
    """
    dates = sorted(set(dates))
    if not dates:
        raise ValueError("snapshot_points needs at least one date")
    rows = [sa.select(_date(d).label("as_of"), _date(d + dt.timedelta(days=horizon_days)).label("horizon_end"))
            for d in dates]
    dv = (sa.union_all(*rows) if len(rows) > 1 else rows[0]).subquery("snapshots")
    first = sa.select(inv.c.customer_id, sa.func.min(inv.c.invoice_date).label("first_date")).group_by(
        inv.c.customer_id)
    if customer_ids is not None:
        first = first.where(in_ids(inv.c.customer_id, customer_ids))
    first = first.subquery("first_inv")
    stmt = (
        sa.select(first.c.customer_id, dv.c.as_of, dv.c.horizon_end)
        .select_from(dv.join(first, first.c.first_date < dv.c.as_of))
    )
    return stmt.subquery("snap")


# --------------------------------------------------------------------------------------------
# History features
# --------------------------------------------------------------------------------------------
def item_states() -> sa.Subquery:
    """Each item's settlement state after each of its movement dates (running totals).

    One row per (item, movement date): ``settled_cents`` / ``n_wo`` / ``n_cash`` = the sums over the
    item's movements dated on or before ``move_date``, and ``next_move`` = the item's next movement
    date (NULL for the last). For a point dated D, the item's state "before D" is the row with
    ``move_date < D <= next_move`` (or ``next_move`` NULL); no row means nothing was settled before D.
    Built once per item (window functions, portable to DuckDB, SQLite >= 3.25 and PostgreSQL), so
    the (point, item) history join needs no per-pair aggregation.

    Returns
    -------
    sqlalchemy.Subquery
        Columns ``item_id, move_date, next_move, settled_cents, n_wo, n_cash``.
    """
    s = settlements()
    daily = (
        sa.select(
            s.c.item_id, s.c.move_date, sa.func.sum(s.c.delta_cents).label("delta_cents"),
            sa.func.sum(sa.case((s.c.kind == "write_off", 1), else_=0)).label("wo"),
            sa.func.sum(sa.case((s.c.kind == "cash", 1), else_=0)).label("cash"),
        )
        .group_by(s.c.item_id, s.c.move_date)
        .subquery("daily_moves")
    )
    running = dict(partition_by=daily.c.item_id, order_by=daily.c.move_date, rows=(None, 0))
    return sa.select(
        daily.c.item_id, daily.c.move_date,
        # a plain Function: once the trino dialect is imported, sa.func.lead resolves to its Lead class,
        # which opts out of SQLAlchemy's statement cache (SAWarning)
        sa.sql.functions.Function("lead", daily.c.move_date, type_=sa.Date())
        .over(partition_by=daily.c.item_id, order_by=daily.c.move_date).label("next_move"),
        sa.func.sum(daily.c.delta_cents).over(**running).label("settled_cents"),
        sa.func.sum(daily.c.wo).over(**running).label("n_wo"),
        sa.func.sum(daily.c.cash).over(**running).label("n_cash"),
    ).subquery("item_states")


def _point_items(points):
    """Per (point, prior debit item): open amount, instalment counts and last move, all before as_of.

    The item's state before the point's date is one row of :func:`item_states` (a range join), so
    this is a plain join with no aggregation over the (point, item) pairs.
    """
    p = points
    j = inv.alias("j")
    st = item_states()
    state_before = sa.and_(st.c.item_id == j.c.id, st.c.move_date < p.c.as_of,
                           sa.or_(st.c.next_move.is_(None), st.c.next_move >= p.c.as_of))
    stmt = (
        sa.select(
            p.c.pk, p.c.as_of, j.c.id.label("item_id"), j.c.amount_cents, j.c.invoice_date, j.c.due_date,
            sa.func.coalesce(st.c.settled_cents, 0).label("settled_cents"),
            sa.func.coalesce(st.c.n_wo, 0).label("n_wo"),
            sa.func.coalesce(st.c.n_cash, 0).label("n_cash"),
            st.c.move_date.label("last_move"),
        )
        .select_from(
            p.join(j, sa.and_(j.c.customer_id == p.c.customer_id, j.c.invoice_date < p.c.as_of,
                              receivable(j.c.doc_type),
                              days_between(j.c.invoice_date, p.c.as_of) <= HISTORY_DAYS))
            .outerjoin(st, state_before)
        )
    )
    return stmt.cte("pitems")


def history_query(points) -> sa.Select:
    """SQL aggregating each point's customer history (see module docstring); one row per point.

    Parameters
    ----------
    points : sqlalchemy.Subquery
        Columns ``point_id, customer_id, as_of``.

    Returns
    -------
    sqlalchemy.Select
        Raw aggregates (counts and sums); :func:`history_frame` turns them into features.
    """
    # Number the points once: the per-(point, item) work groups and partitions on this integer key
    # instead of (point_id, as_of) strings and dates, and the points are computed once (a CTE).
    points = sa.select(points.c.point_id, points.c.customer_id, points.c.as_of,
                       sa.func.row_number().over(order_by=(points.c.point_id, points.c.as_of)).label("pk")).cte(
        "kpoints")
    pi = _point_items(points)
    open_c = pi.c.amount_cents + pi.c.settled_cents
    is_open = open_c > 0
    paid = sa.and_(open_c <= 0, pi.c.n_wo == 0, pi.c.last_move.is_not(None))
    late = days_between(pi.c.due_date, pi.c.last_move)
    since_paid = days_between(pi.c.last_move, pi.c.as_of)
    dpd = days_between(pi.c.due_date, pi.c.as_of)

    def n(cond):
        return sa.func.sum(sa.case((cond, 1), else_=0))

    def open_sum(cond):
        return sa.func.sum(sa.case((sa.and_(is_open, cond), open_c), else_=0))

    items = sa.select(
        pi.c.pk,
        sa.func.count().label("n_items"),
        n(paid).label("n_paid"),
        sa.func.avg(sa.case((paid, late))).label("avg_days_late"),
        sa.func.avg(sa.case((sa.and_(paid, since_paid <= 90), late))).label("avg_late_recent"),
        sa.func.avg(sa.case((sa.and_(paid, since_paid > 90, since_paid <= 180), late))).label("avg_late_prev"),
        n(sa.and_(paid, late > 0)).label("n_late"),
        n(sa.or_(sa.and_(paid, late > 30), pi.c.n_wo > 0)).label("n_severe"),
        n(sa.or_(pi.c.n_cash >= 2, sa.and_(pi.c.n_cash >= 1, is_open))).label("n_partial"),
        open_sum(sa.true()).label("open_cents"),
        open_sum(dpd > 0).label("overdue_cents"),
        open_sum(sa.and_(dpd > 30, dpd <= 60)).label("b31_60_cents"),
        open_sum(sa.and_(dpd > 60, dpd <= 90)).label("b61_90_cents"),
        open_sum(dpd > 90).label("b90p_cents"),
        sa.func.max(sa.case((sa.and_(is_open, open_c * 10 >= pi.c.amount_cents), dpd))).label("max_open_dpd"),
        sa.func.avg(pi.c.amount_cents).label("avg_amount_cents"),
        sa.func.min(pi.c.invoice_date).label("first_invoice"),
    ).group_by(pi.c.pk).subquery("items")

    # Last three paid items per point (window function: portable on all three backends).
    rn = sa.func.row_number().over(partition_by=pi.c.pk,
                                   order_by=(pi.c.last_move.desc(), pi.c.item_id.desc()))
    ranked = sa.select(pi.c.pk, late.label("late"), rn.label("rn")).where(paid).subquery("ranked")
    last3 = sa.select(ranked.c.pk, sa.func.avg(ranked.c.late).label("last3_days_late")).where(
        ranked.c.rn <= 3).group_by(ranked.c.pk).subquery("last3")

    p = points
    d = schema.disputes
    disp = (
        sa.select(
            p.c.pk, sa.func.count().label("n_disputes"),
            n(dispute_is_open(p.c.as_of, d, before=True)).label("open_disputes"),
            sa.func.sum(sa.case((dispute_is_open(p.c.as_of, d, before=True),
                                 d.c.amount_cents), else_=0)).label("open_disputed_cents"),
        )
        .select_from(p.join(d, sa.and_(d.c.customer_id == p.c.customer_id, d.c.opened_date < p.c.as_of)))
        .group_by(p.c.pk)
        .subquery("disp")
    )

    # Promises due in the 90 days before the point, judged by the one "promise kept" rule with only what
    # was known before the point's date (cutoff = as_of): pending ones (still within grace) are not broken.
    pr = schema.promises
    due = (sa.select(p.c.pk, pr.c.id, pr.c.customer_id, pr.c.invoice_id, pr.c.made_on, pr.c.promised_date,
                     pr.c.amount_cents, p.c.as_of.label("cutoff"))
           .select_from(p.join(pr, sa.and_(pr.c.customer_id == p.c.customer_id, pr.c.promised_date < p.c.as_of,
                                           days_between(pr.c.promised_date, p.c.as_of) <= 90)))
           .subquery("promises_due"))
    ps = promise_outcomes(due, DEFAULT_GRACE_DAYS)
    prom = (
        sa.select(ps.c.pk, sa.func.count().label("promises_90"),
                  n(ps.c.status == "broken").label("broken_promises_90"))
        .group_by(ps.c.pk)
        .subquery("prom")
    )

    paperless = sa.case(
        (sa.and_(cust.c.paperless, sa.or_(cust.c.paperless_since.is_(None), cust.c.paperless_since < p.c.as_of)),
         1), else_=0)
    return (
        sa.select(
            p.c.point_id, p.c.customer_id, p.c.as_of,
            items.c.n_items, items.c.n_paid, items.c.avg_days_late, items.c.avg_late_recent, items.c.avg_late_prev,
            items.c.n_late, items.c.n_severe, items.c.n_partial, items.c.open_cents, items.c.overdue_cents,
            items.c.b31_60_cents, items.c.b61_90_cents, items.c.b90p_cents, items.c.max_open_dpd,
            items.c.avg_amount_cents, items.c.first_invoice, last3.c.last3_days_late,
            disp.c.n_disputes, disp.c.open_disputes, disp.c.open_disputed_cents,
            prom.c.promises_90, prom.c.broken_promises_90,
            cust.c.credit_limit_cents, cust.c.payment_terms_days.label("terms_days"), paperless.label("paperless"),
            sa.case((cust.c.customer_since.is_not(None), days_between(cust.c.customer_since, p.c.as_of))).label(
                "tenure_since_days"),
            sa.func.coalesce(cust.c.region, cust.c.country, sa.literal("unknown")).label("region"),
        )
        .select_from(
            p.join(cust, cust.c.id == p.c.customer_id)
            .outerjoin(items, items.c.pk == p.c.pk)
            .outerjoin(last3, last3.c.pk == p.c.pk)
            .outerjoin(disp, disp.c.pk == p.c.pk)
            .outerjoin(prom, prom.c.pk == p.c.pk)
        )
    )


def _fetch(conn: sa.Connection, stmt, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run ``stmt`` into a DataFrame (:func:`analytics.db.read_frame`), optionally keeping ``columns``."""
    frame = read_frame(conn, stmt)
    return frame if columns is None else frame[list(columns)]


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(frame[col], errors="coerce").astype("float64")


def history_frame(conn: sa.Connection, points) -> pd.DataFrame:
    """Account features for each point, as a DataFrame indexed by ``point_id``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    points : sqlalchemy.Subquery
        Columns ``point_id, customer_id, as_of``.

    Returns
    -------
    pandas.DataFrame
        ``point_id``, ``customer_id``, ``as_of`` and every column of :data:`ACCOUNT_FEATURES`, one row
        per point, sorted by ``as_of, point_id``.

    Example
    -------
    >>> with engine.connect() as conn:                                  # doctest: +SKIP
    ...     feats = history_frame(conn, customer_points(dt.date(2024, 3, 31)))
    """
    raw = _fetch(conn, history_query(points))
    if raw.empty:
        return pd.DataFrame(columns=["point_id", "customer_id", "as_of"] + ACCOUNT_FEATURES)
    raw["as_of"] = pd.to_datetime(raw["as_of"]).dt.date
    raw = raw.sort_values(["as_of", "point_id"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"point_id": raw["point_id"].astype(str), "customer_id": raw["customer_id"].astype(str),
                        "as_of": raw["as_of"]})
    n_items = _num(raw, "n_items").fillna(0.0)
    n_paid = _num(raw, "n_paid").fillna(0.0)
    out["n_items"] = n_items
    out["n_paid"] = n_paid
    for col in ("avg_days_late", "avg_late_recent", "avg_late_prev", "last3_days_late"):
        out[col] = _num(raw, col)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["late_share"] = (_num(raw, "n_late").fillna(0) / n_paid).where(n_paid > 0)
        out["severe_share"] = (_num(raw, "n_severe").fillna(0) / n_items).where(n_items > 0)
        out["partial_share"] = (_num(raw, "n_partial").fillna(0) / n_items).where(n_items > 0)
        out["dispute_rate"] = (_num(raw, "n_disputes").fillna(0) / n_items).where(n_items > 0)
    out["open_disputes"] = _num(raw, "open_disputes").fillna(0.0)
    out["open_disputed_cents"] = _num(raw, "open_disputed_cents").fillna(0.0)
    out["broken_promises_90"] = _num(raw, "broken_promises_90").fillna(0.0)
    out["promises_90"] = _num(raw, "promises_90").fillna(0.0)
    open_c = _num(raw, "open_cents").fillna(0.0)
    out["open_cents"] = open_c
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, col in (("overdue_share", "overdue_cents"), ("share_31_60", "b31_60_cents"),
                          ("share_61_90", "b61_90_cents"), ("share_90p", "b90p_cents")):
            out[name] = (_num(raw, col).fillna(0) / open_c).where(open_c > 0, 0.0)
        limit = _num(raw, "credit_limit_cents")
        out["credit_util"] = (open_c / limit).where(limit > 0)
    out["max_dpd"] = _num(raw, "max_open_dpd").fillna(0.0).clip(lower=0)
    out["terms_days"] = _num(raw, "terms_days")
    out["paperless"] = _num(raw, "paperless").fillna(0.0)
    first = pd.to_datetime(raw["first_invoice"])
    asof = pd.to_datetime(raw["as_of"])
    tenure_first = (asof - first).dt.days.astype("float64")
    out["tenure_days"] = _num(raw, "tenure_since_days").fillna(tenure_first).fillna(0.0)
    out["avg_amount_cents"] = _num(raw, "avg_amount_cents")
    out["region"] = raw["region"].astype(str)
    return out


# --------------------------------------------------------------------------------------------
# Invoice attributes, outcomes and labels
# --------------------------------------------------------------------------------------------
def invoice_attributes(conn: sa.Connection, invoice_ids_points, as_of_col: str = "as_of") -> pd.DataFrame:
    """The invoice's own attributes known at the end of the point's date: amount, terms, dispute flag, age.

    ``inv_disputed`` is 1 when a dispute on the invoice was opened on or before the point's date (a
    dispute raised the day the invoice is issued is known when it is scored at its invoice date);
    disputes opened later are invisible.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    invoice_ids_points : sqlalchemy.Subquery
        Columns ``point_id`` (an invoice id), ``customer_id``, ``as_of``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``point_id``: ``customer_id, invoice_date, due_date, amount_cents, inv_terms_days,
        inv_disputed, days_open``.
    """
    p = invoice_ids_points
    d = schema.disputes
    disputed = sa.exists().where(d.c.invoice_id == inv.c.id, d.c.opened_date <= p.c.as_of)
    stmt = sa.select(
        p.c.point_id, inv.c.customer_id, inv.c.invoice_date, inv.c.due_date, inv.c.amount_cents,
        days_between(inv.c.invoice_date, inv.c.due_date).label("inv_terms_days"),
        sa.case((disputed, 1), else_=0).label("inv_disputed"),
        days_between(inv.c.invoice_date, p.c.as_of).label("days_open"),
    ).select_from(p.join(inv, inv.c.id == p.c.point_id))
    frame = _fetch(conn, stmt, columns=["point_id", "customer_id", "invoice_date", "due_date", "amount_cents", "inv_terms_days",
                                  "inv_disputed", "days_open"])
    for c in ("amount_cents", "inv_terms_days", "inv_disputed", "days_open"):
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    frame["point_id"] = frame["point_id"].astype(str)
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame.set_index("point_id")


def add_invoice_features(hist: pd.DataFrame, attrs: pd.DataFrame, on: str = "point_id") -> pd.DataFrame:
    """Combine account history with invoice attributes into the :data:`INVOICE_FEATURES` frame.

    Parameters
    ----------
    hist : pandas.DataFrame
        From :func:`history_frame`.
    attrs : pandas.DataFrame
        From :func:`invoice_attributes` (indexed by invoice id, with ``customer_id``).
    on : {"point_id", "customer_id"}
        ``point_id`` when the history points are the invoices themselves (training at the invoice
        date); ``customer_id`` when they are customers at a scoring date (open invoices).

    Returns
    -------
    pandas.DataFrame
        One row per invoice, indexed by invoice id.
    """
    a = attrs.reset_index().rename(columns={"point_id": "invoice_id"})
    h = hist.drop(columns=["as_of"])
    if on == "point_id":
        out = a.drop(columns=["customer_id"]).merge(h, left_on="invoice_id", right_on="point_id", how="inner")
    else:
        out = a.merge(h.drop(columns=["point_id"]), on="customer_id", how="inner")
    out = out.set_index("invoice_id")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["amount_ratio"] = (out["amount_cents"] / out["avg_amount_cents"]).where(out["avg_amount_cents"] > 0)
    return out


def invoice_outcomes(conn: sa.Connection, cutoff: dt.date, ids=None, points=None) -> pd.DataFrame:
    """How each invoice/debit memo ended, seen with the settlements dated before ``cutoff``.

    ``ids`` (a list) or ``points`` (a subquery with ``point_id`` = invoice id, e.g. from
    :func:`invoice_points`) restrict it to some invoices; by default every invoice dated before ``cutoff``.

    Returns
    -------
    pandas.DataFrame
        Indexed by invoice id: ``customer_id, invoice_date, due_date, amount_cents, open_cents, paid``
        (fully settled by cash/credit), ``written_off``, ``paid_date``, ``days_to_pay`` (paid date −
        invoice date), ``days_late`` (paid date − due date), ``days_due_to_cutoff``.
    """
    s = settlements()
    c = _date(cutoff)
    settled = sa.select(
        s.c.item_id, sa.func.sum(s.c.delta_cents).label("settled_cents"),
        sa.func.sum(sa.case((s.c.kind == "write_off", 1), else_=0)).label("n_wo"),
        sa.func.max(s.c.move_date).label("last_move"),
    ).where(s.c.move_date < c).group_by(s.c.item_id).subquery("settled")
    open_c = inv.c.amount_cents + sa.func.coalesce(settled.c.settled_cents, 0)
    stmt = sa.select(
        inv.c.id, inv.c.customer_id, inv.c.invoice_date, inv.c.due_date, inv.c.amount_cents,
        open_c.label("open_cents"), sa.func.coalesce(settled.c.n_wo, 0).label("n_wo"), settled.c.last_move,
        days_between(inv.c.invoice_date, settled.c.last_move).label("days_to_move"),
        days_between(inv.c.due_date, settled.c.last_move).label("late_move"),
        days_between(inv.c.due_date, c).label("days_due_to_cutoff"),
    ).select_from(inv.outerjoin(settled, settled.c.item_id == inv.c.id)).where(
        receivable(inv.c.doc_type), inv.c.invoice_date < c)
    if ids is not None:
        stmt = stmt.where(inv.c.id.in_(ids))
    if points is not None:
        stmt = stmt.where(inv.c.id.in_(sa.select(points.c.point_id)))
    f = _fetch(conn, stmt, columns=["id", "customer_id", "invoice_date", "due_date", "amount_cents", "open_cents", "n_wo",
                              "last_move", "days_to_move", "late_move", "days_due_to_cutoff"])
    f["id"] = f["id"].astype(str)
    f = f.set_index("id")
    for col in ("amount_cents", "open_cents", "n_wo", "days_to_move", "late_move", "days_due_to_cutoff"):
        f[col] = pd.to_numeric(f[col]).astype("float64")
    f["written_off"] = f["n_wo"] > 0
    f["paid"] = (f["open_cents"] <= 0) & ~f["written_off"] & f["last_move"].notna()
    f["paid_date"] = f["last_move"].where(f["paid"])
    f["days_to_pay"] = f["days_to_move"].where(f["paid"])
    f["days_late"] = f["late_move"].where(f["paid"])
    return f.drop(columns=["n_wo", "last_move", "days_to_move", "late_move"])


def late_label(outcomes: pd.DataFrame, late_days: int) -> tuple[pd.Series, pd.Series]:
    """Label "paid more than ``late_days`` days late or not at all", and whether it is known yet.

    Returns
    -------
    (label, known) : pandas.Series of bool
        ``known`` is False for an invoice still open and not yet ``late_days`` past due at the cutoff.
    """
    paid = outcomes["paid"]
    bad = (paid & (outcomes["days_late"] > late_days)) | (~paid & (outcomes["days_due_to_cutoff"] > late_days))
    known = paid | (outcomes["days_due_to_cutoff"] > late_days)
    return bad.astype(bool), known.astype(bool)


def account_labels(conn: sa.Connection, snaps) -> pd.DataFrame:
    """For each snapshot point: did the customer have a balance more than 60 days past due at any
    day in ``(as_of, horizon_end]``?

    An item counts when, at the first day t of the window on which it is more than 60 days past due
    (``t = max(as_of, due_date + 61)``, ``t <= horizon_end``), at least 10 % of its amount is still open
    (so a few cents of short payment do not count), or when it is written off inside the window.
    Settlements up to ``horizon_end`` are used (labels look forward by design; features never do).

    Parameters
    ----------
    snaps : sqlalchemy.Subquery
        From :func:`snapshot_points` (``customer_id, as_of, horizon_end``).

    Returns
    -------
    pandas.DataFrame
        ``customer_id, as_of, label`` (0/1).
    """
    p = snaps
    j = inv.alias("j")
    s = settlements()
    # The first day in the window at which the item is more than 60 days past due:
    # t = max(as_of, due + 61). Its open amount at t = amount + moves dated <= t.
    late_at_start = days_between(j.c.due_date, p.c.as_of) >= 61
    by_t = sa.or_(sa.and_(late_at_start, s.c.move_date <= p.c.as_of),
                  sa.and_(sa.not_(late_at_start), days_between(j.c.due_date, s.c.move_date) <= 61))
    wo_in_window = sa.and_(s.c.kind == "write_off", s.c.move_date > p.c.as_of)
    pj = (
        sa.select(
            p.c.customer_id, p.c.as_of, j.c.id, j.c.amount_cents,
            sa.func.coalesce(sa.func.sum(sa.case((by_t, s.c.delta_cents), else_=0)), 0).label("settled_t"),
            sa.func.coalesce(sa.func.sum(sa.case((wo_in_window, 1), else_=0)), 0).label("n_wo"),
        )
        .select_from(
            p.join(j, sa.and_(j.c.customer_id == p.c.customer_id, receivable(j.c.doc_type),
                              j.c.invoice_date <= p.c.horizon_end,
                              days_between(j.c.due_date, p.c.horizon_end) >= 61))
            .outerjoin(s, sa.and_(s.c.item_id == j.c.id, s.c.move_date <= p.c.horizon_end))
        )
        .group_by(p.c.customer_id, p.c.as_of, j.c.id, j.c.amount_cents)
        .subquery("pj")
    )
    open_t = pj.c.amount_cents + pj.c.settled_t
    # Material: at least 10 % of the item still open (a few cents of short payment do not count).
    bad = sa.or_(sa.and_(open_t > 0, open_t * 10 >= pj.c.amount_cents), pj.c.n_wo > 0)
    lab = sa.select(pj.c.customer_id, pj.c.as_of, sa.func.max(sa.case((bad, 1), else_=0)).label("label")).group_by(
        pj.c.customer_id, pj.c.as_of)
    frame = _fetch(conn, lab, columns=["customer_id", "as_of", "label"])
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["label"] = pd.to_numeric(frame["label"]).astype(int)
    return frame


def snapshot_features(conn: sa.Connection, dates: Sequence[dt.date], horizon_days: int = 90,
                      customer_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Account features and 60+-dpd-in-90-days labels for every customer at every snapshot date.

    One query for the features of all (customer, date) points and one for their labels.
    ``customer_ids`` restricts both to a sample of customers (see ``scoring.training_sample``).

    Returns
    -------
    pandas.DataFrame
        ``point_id`` (= customer id), ``customer_id, as_of``, :data:`ACCOUNT_FEATURES` and ``label``.
    """
    snaps = snapshot_points(dates, horizon_days, customer_ids)
    pts = sa.select(snaps.c.customer_id.label("point_id"), snaps.c.customer_id, snaps.c.as_of).subquery("points")
    frame = history_frame(conn, pts)
    if frame.empty:
        return frame.assign(label=pd.Series(dtype=int))
    labels = account_labels(conn, snaps)
    frame = frame.merge(labels, on=["customer_id", "as_of"], how="left")
    frame["label"] = frame["label"].fillna(0).astype(int)
    return frame
