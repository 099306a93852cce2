"""Dispute KPIs: open, opened, resolved, days to resolve and the resolution-time target.

Source: ``disputes`` (``opened_date``, ``resolved_date``, ``amount_cents``), scoped by a
:class:`~analytics.ledger.LedgerFilter` through the dispute's customer and its invoice's currency, one
currency per figure (:func:`analytics.ledger.resolve_currency`). "Open at D" is
:func:`analytics.ledger.dispute_is_open`: opened on or before D and not resolved by D (a dispute resolved
on D is closed at D). A dispute is **resolved in time** when resolved within ``target_days`` (default 30)
of opening; one still open past the target counts as a miss.

Example
-------
>>> dispute_stats(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))["open_count"][0]  # doctest: +SKIP
2
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import days_between
from analytics.kpis.common import check_period, count_if, customer_where, day, frame, isum, pct, ratio, scope, sum_if
from analytics.ledger import NO_FILTER, LedgerFilter, dispute_is_open

disp = schema.disputes
inv = schema.invoices
cust = schema.customers

DEFAULT_DISPUTE_TARGET_DAYS = 30


_DISPUTE_COLS = {
    "open_count": "int", "open_cents": "int", "opened_count": "int", "opened_cents": "int",
    "resolved_count": "int", "resolved_cents": "int", "avg_days_to_resolve": "float",
    "median_days_to_resolve": "float", "resolved_within_target": "int", "open_over_target": "int",
    "within_target_pct": "float",
}


def _dispute_base(start: dt.date, end: dt.date, flt: LedgerFilter) -> sa.Subquery:
    """Disputes alive during [start, end]: opened by ``end`` and not resolved before ``start``."""
    s, e = day(start), day(end)
    stmt = (
        sa.select(
            disp.c.id, disp.c.reason_code, disp.c.amount_cents, disp.c.opened_date, disp.c.resolved_date,
            days_between(disp.c.opened_date, disp.c.resolved_date).label("days_to_resolve"),
            days_between(disp.c.opened_date, e).label("age_end"),
        )
        .select_from(disp.join(inv, inv.c.id == disp.c.invoice_id))
        .where(disp.c.opened_date <= e, sa.or_(disp.c.resolved_date.is_(None), disp.c.resolved_date >= s),
               *customer_where(flt, disp.c.customer_id, inv.c.currency))
    )
    return stmt.subquery("dispute_base")


def _dispute_table(conn, start, end, flt, target_days, by_reason: bool) -> pd.DataFrame:
    check_period(start, end)
    flt, currency = scope(conn, flt)
    b = _dispute_base(start, end, flt)
    e, s = day(end), day(start)
    open_end = dispute_is_open(e, b)
    opened_in = b.c.opened_date >= s
    resolved_in = sa.and_(b.c.resolved_date.is_not(None), b.c.resolved_date <= e)
    within = sa.and_(resolved_in, b.c.days_to_resolve <= target_days)
    over = sa.and_(open_end, b.c.age_end > target_days)
    keys = [b.c.reason_code] if by_reason else []
    agg = sa.select(
        *keys,
        count_if(open_end).label("open_count"), sum_if(open_end, b.c.amount_cents).label("open_cents"),
        count_if(opened_in).label("opened_count"), sum_if(opened_in, b.c.amount_cents).label("opened_cents"),
        count_if(resolved_in).label("resolved_count"),
        sum_if(resolved_in, b.c.amount_cents).label("resolved_cents"),
        sum_if(resolved_in, b.c.days_to_resolve).label("days_sum"),
        count_if(within).label("resolved_within_target"), count_if(over).label("open_over_target"),
    )
    if by_reason:
        agg = agg.group_by(b.c.reason_code)
    agg = agg.subquery("agg")
    # Portable median: rank the resolved disputes by days; the middle one (odd n) or two (even n)
    # are the rows with n <= 2*rn <= n + 2. No percentile function needed (SQLite has none).
    part = dict(partition_by=b.c.reason_code) if by_reason else {}
    ranked = (
        sa.select(*keys, b.c.days_to_resolve.label("days"),
                  sa.func.row_number().over(order_by=(b.c.days_to_resolve, b.c.id), **part).label("rn"),
                  sa.func.count().over(**part).label("n"))
        .where(resolved_in)
        .subquery("ranked")
    )
    med = sa.select(*([ranked.c.reason_code] if by_reason else []), isum(ranked.c.days).label("mid_sum"),
                    sa.cast(sa.func.count(), sa.BigInteger).label("mid_n")).where(
        2 * ranked.c.rn >= ranked.c.n, 2 * ranked.c.rn <= ranked.c.n + 2)
    if by_reason:
        med = med.group_by(ranked.c.reason_code)
    med = med.subquery("med")
    onclause = (med.c.reason_code == agg.c.reason_code) if by_reason else sa.true()
    cols = [agg.c[k] for k in ("open_count", "open_cents", "opened_count", "opened_cents", "resolved_count",
                               "resolved_cents", "days_sum", "resolved_within_target", "open_over_target")]
    stmt = sa.select(*([agg.c.reason_code] if by_reason else []), *cols, med.c.mid_sum, med.c.mid_n).select_from(
        agg.outerjoin(med, onclause))
    if by_reason:
        stmt = stmt.order_by(agg.c.reason_code)
    out = []
    for r in conn.execute(stmt).mappings():
        out.append({
            **({"reason_code": r["reason_code"]} if by_reason else {}),
            "open_count": r["open_count"], "open_cents": r["open_cents"], "opened_count": r["opened_count"],
            "opened_cents": r["opened_cents"], "resolved_count": r["resolved_count"],
            "resolved_cents": r["resolved_cents"],
            "avg_days_to_resolve": ratio(r["days_sum"], r["resolved_count"]),
            "median_days_to_resolve": ratio(r["mid_sum"], r["mid_n"]),
            "resolved_within_target": r["resolved_within_target"], "open_over_target": r["open_over_target"],
            "within_target_pct": pct(r["resolved_within_target"],
                                      (r["resolved_count"] or 0) + (r["open_over_target"] or 0)),
        })
    spec = ({"reason_code": "str"} if by_reason else {}) | _DISPUTE_COLS
    df = frame([tuple(o.values()) for o in out], spec)
    df.attrs["currency"] = currency
    return df


def dispute_stats(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                  target_days: int = DEFAULT_DISPUTE_TARGET_DAYS) -> pd.DataFrame:
    """Dispute KPIs for the period ``[start, end]``, all reason codes together (one row).

    Source: ``disputes`` (``opened_date``, ``resolved_date``, ``amount_cents``), scoped by the
    filter through the dispute's customer and its invoice's currency.

    * ``open_count`` / ``open_cents``: disputes open at ``end`` — ``opened_date <= end`` and
      (``resolved_date`` is NULL or ``> end``).
    * ``opened_count`` / ``opened_cents``: ``start <= opened_date <= end``.
    * ``resolved_count`` / ``resolved_cents``: ``start <= resolved_date <= end``.
    * ``avg_days_to_resolve`` = Σ(resolved_date − opened_date) / resolved_count over disputes resolved
      in the period; ``median_days_to_resolve`` the median of the same days (mean of the two middle
      values when the count is even). NaN when nothing was resolved.
    * ``resolved_within_target``: resolved in the period with ``resolved_date − opened_date <=
      target_days``; ``open_over_target``: open at ``end`` and older than ``target_days``
      (``end − opened_date > target_days``) — those have already missed the target.
    * ``within_target_pct`` = 100 × resolved_within_target / (resolved_count + open_over_target),
      NaN when the denominator is 0. A stale open dispute counts as a miss, so leaving disputes open
      cannot improve the rate.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    start, end : datetime.date
        Period, both days included.
    flt : LedgerFilter, optional
    target_days : int, default 30
        SLA target for days to resolve.

    Returns
    -------
    pandas.DataFrame
        One row with the columns above (counts and cents int64, days and percentage float64).

    Example
    -------
    >>> dispute_stats(conn, dt.date(2024, 1, 1), dt.date(2024, 3, 31))  # doctest: +SKIP
       open_count  open_cents  opened_count  ...  within_target_pct
    0           1       20000             4  ...           66.666667
    """
    return _dispute_table(conn, start, end, flt, target_days, by_reason=False)


def disputes_by_reason(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                       target_days: int = DEFAULT_DISPUTE_TARGET_DAYS) -> pd.DataFrame:
    """Dispute KPIs for ``[start, end]`` per ``reason_code`` (same columns and formulas as
    :func:`dispute_stats`, plus ``reason_code``).

    Only reason codes with a dispute alive during the period (opened by ``end`` and not resolved
    before ``start``) appear; an empty frame when there is none.

    Example
    -------
    >>> disputes_by_reason(conn, dt.date(2024, 1, 1), dt.date(2024, 3, 31))  # doctest: +SKIP
      reason_code  open_count  ...  median_days_to_resolve  within_target_pct
    0     pricing           0  ...                    15.0              100.0
    """
    return _dispute_table(conn, start, end, flt, target_days, by_reason=True)


def open_disputes(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Disputes open at ``as_of`` (opened on or before, not resolved by then), oldest first.

    ``age_days`` = as_of − opened_date. Source: ``disputes`` joined to its customer and invoice.

    Returns
    -------
    pandas.DataFrame
        Columns ``dispute_id, customer_id, customer_name, collector_id, invoice_id, reason_code,
        opened_date, amount_cents, age_days``.

    Example
    -------
    >>> open_disputes(conn, dt.date(2024, 3, 31)).head(1)  # doctest: +SKIP
       dispute_id customer_id customer_name collector_id invoice_id reason_code opened_date  amount_cents  age_days
    0           4          K2        Lambda           C2         J1     damaged  2024-02-15         20000        45
    """
    flt, currency = scope(conn, flt)
    d = day(as_of)
    age = days_between(disp.c.opened_date, d)
    stmt = (
        sa.select(disp.c.id, disp.c.customer_id, cust.c.name, cust.c.collector_id, disp.c.invoice_id,
                  disp.c.reason_code, disp.c.opened_date, disp.c.amount_cents, age)
        .select_from(disp.join(cust, cust.c.id == disp.c.customer_id).join(inv, inv.c.id == disp.c.invoice_id))
        .where(dispute_is_open(d),
               *customer_where(flt, disp.c.customer_id, inv.c.currency))
        .order_by(age.desc(), disp.c.id)
    )
    df = frame(conn.execute(stmt), {
        "dispute_id": "int", "customer_id": "str", "customer_name": "str", "collector_id": "str",
        "invoice_id": "str", "reason_code": "str", "opened_date": "date", "amount_cents": "int", "age_days": "int"})
    df.attrs["currency"] = currency
    return df


def disputes_over_target(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                         target_days: int = DEFAULT_DISPUTE_TARGET_DAYS) -> pd.DataFrame:
    """The disputes that missed the resolution target in ``[start, end]`` — the misses counted by
    :func:`dispute_stats`: resolved in the period after more than ``target_days`` days, or still open
    at ``end`` and older than ``target_days``.

    ``days`` = resolved_date − opened_date for a resolved dispute, end − opened_date for an open one.

    Returns
    -------
    pandas.DataFrame
        ``dispute_id, customer_id, customer_name, collector_id, invoice_id, reason_code, opened_date,
        resolved_date (NaT while open), amount_cents, days``, largest amount first.

    Example
    -------
    >>> disputes_over_target(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))["days"].tolist()  # doctest: +SKIP
    [81, 44]
    """
    check_period(start, end)
    flt, currency = scope(conn, flt)
    b = _dispute_base(start, end, flt)
    e = day(end)
    resolved_in = sa.and_(b.c.resolved_date.is_not(None), b.c.resolved_date <= e)
    days = sa.case((resolved_in, b.c.days_to_resolve), else_=b.c.age_end)
    stmt = (
        sa.select(b.c.id, disp.c.customer_id, cust.c.name, cust.c.collector_id, disp.c.invoice_id, b.c.reason_code,
                  b.c.opened_date, sa.case((resolved_in, b.c.resolved_date)), b.c.amount_cents, days)
        .select_from(b.join(disp, disp.c.id == b.c.id).join(cust, cust.c.id == disp.c.customer_id))
        .where(days > target_days)
        .order_by(b.c.amount_cents.desc(), b.c.id)
    )
    df = frame(conn.execute(stmt), {
        "dispute_id": "int", "customer_id": "str", "customer_name": "str", "collector_id": "str",
        "invoice_id": "str", "reason_code": "str", "opened_date": "date", "resolved_date": "date",
        "amount_cents": "int", "days": "int"})
    df.attrs["currency"] = currency
    return df
