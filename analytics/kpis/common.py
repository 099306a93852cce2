"""Small shared building blocks of the KPI modules (disputes, promises, collectors, SLA).

SQL helpers return integer aggregates (never NULL), so the three databases give identical numbers;
ratios are divided in Python with exact fractions (:func:`ratio`, :func:`pct`).

Example
-------
>>> pct(1, 4)
25.0
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics.errors import UserError
from analytics.ledger import NO_FILTER, LedgerFilter, resolve_currency

#: The name shown for customers without a collector.
UNASSIGNED = "(unassigned)"


def day(value: dt.date) -> sa.BindParameter:
    """A date literal (typed, portable).

    Example
    -------
    >>> day(dt.date(2024, 3, 31)).type
    Date()
    """
    return sa.literal(value, sa.Date)


def day_start(value: dt.date) -> sa.BindParameter:
    """Midnight at the start of ``value`` as a DateTime literal (to bound ``occurred_at``).

    Example
    -------
    >>> day_start(dt.date(2024, 3, 31)).value
    datetime.datetime(2024, 3, 31, 0, 0)
    """
    return sa.literal(dt.datetime.combine(value, dt.time()), sa.DateTime)


def count_if(cond) -> sa.ColumnElement:
    """``COUNT`` of the rows where ``cond`` holds, as an integer (0, never NULL).

    Example
    -------
    >>> expr = count_if(sa.column("x") > 0)
    """
    return sa.cast(sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0), sa.BigInteger)


def sum_if(cond, value) -> sa.ColumnElement:
    """``SUM(value)`` over the rows where ``cond`` holds, as an integer (0, never NULL).

    Example
    -------
    >>> expr = sum_if(sa.column("dpd") > 0, sa.column("open_cents"))
    """
    return sa.cast(sa.func.coalesce(sa.func.sum(sa.case((cond, value), else_=0)), 0), sa.BigInteger)


def isum(value) -> sa.ColumnElement:
    """``SUM(value)`` as an integer (0, never NULL).

    Example
    -------
    >>> expr = isum(sa.column("open_cents"))
    """
    return sa.cast(sa.func.coalesce(sa.func.sum(value), 0), sa.BigInteger)


def ratio(num, den, scale: int = 1) -> float:
    """``scale × num / den`` as a float (exact division of integers), NaN when the denominator is 0.

    Example
    -------
    >>> ratio(1, 3, 3), ratio(1, 0)
    (1.0, nan)
    """
    if den is None or pd.isna(den) or den == 0 or num is None or pd.isna(num):
        return float("nan")
    return float(Fraction(int(num) * scale, int(den)))


def pct(num, den) -> float:
    """Percentage ``100 × num / den``, NaN when the denominator is 0.

    Example
    -------
    >>> pct(2, 3)
    66.66666666666667
    """
    return ratio(num, den, 100)


def scope(conn, flt: LedgerFilter | None) -> tuple[LedgerFilter, str]:
    """The filter narrowed to one currency (:func:`analytics.ledger.resolve_currency`) and that currency.

    Example
    -------
    >>> scope(conn, None)  # doctest: +SKIP
    (LedgerFilter(currencies=('USD',)), 'USD')
    """
    return resolve_currency(conn, flt or NO_FILTER)


def check_period(start: dt.date, end: dt.date) -> None:
    """Refuse a period whose start is after its end (:class:`~analytics.errors.UserError`).

    Example
    -------
    >>> check_period(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    """
    if start > end:
        raise UserError(f"period start {start} is after its end {end}")


def frame(rows: Iterable, spec: dict[str, str]) -> pd.DataFrame:
    """DataFrame with the columns of ``spec`` typed: int (int64), Int (nullable), float, str, date, bool.

    Example
    -------
    >>> frame([(1, "a")], {"n": "int", "s": "str"}).dtypes["n"]
    dtype('int64')
    """
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(spec))
    for col, kind in spec.items():
        if kind == "int":
            df[col] = df[col].fillna(0).astype("int64")
        elif kind == "Int":
            df[col] = df[col].astype("Int64")
        elif kind == "float":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif kind == "str":
            df[col] = df[col].astype("str")
        elif kind == "date":
            df[col] = pd.to_datetime(df[col])
        elif kind == "bool":
            df[col] = df[col].astype("bool")
    return df


def customer_where(flt: LedgerFilter, customer_col, currency_col=None) -> list:
    """WHERE conditions putting rows keyed by ``customer_col`` in ``flt``'s scope (currency on
    ``currency_col`` when given).

    Example
    -------
    >>> customer_where(NO_FILTER, sa.column("customer_id"))
    []
    """
    conds = []
    clause = flt.customer_clause(customer_col)
    if clause is not None:
        conds.append(clause)
    if flt.currencies and currency_col is not None:
        conds.append(currency_col.in_(flt.currencies))
    return conds


def collector_key(col) -> sa.ColumnElement:
    """Portfolio key: the collector id, '' for unassigned customers (NULL never joins).

    Example
    -------
    >>> expr = collector_key(sa.column("collector_id"))
    """
    return sa.func.coalesce(col, "")


def working_days(start: dt.date, end: dt.date) -> int:
    """Monday-to-Friday days in ``[start, end]`` (both included; no holiday calendar).

    Example
    -------
    >>> working_days(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    21
    """
    if start > end:
        return 0
    return int(np.busday_count(start, end + dt.timedelta(days=1)))


def periods_table(periods: list[tuple[dt.date, dt.date]], name: str = "periods") -> sa.Subquery:
    """A FROM-able table of periods, so one query computes a metric for many periods.

    Columns: ``period_start, period_end, cutoff`` (dates; ``cutoff`` = the day after the end, the
    first day not seen) and ``ts_start, ts_stop`` (midnight at the start and after the end).

    Example
    -------
    >>> [c.name for c in periods_table([(dt.date(2024, 3, 1), dt.date(2024, 3, 31))]).c]
    ['period_start', 'period_end', 'cutoff', 'ts_start', 'ts_stop']
    """
    selects = [
        sa.select(day(s).label("period_start"), day(e).label("period_end"),
                  day(e + dt.timedelta(days=1)).label("cutoff"), day_start(s).label("ts_start"),
                  day_start(e + dt.timedelta(days=1)).label("ts_stop"))
        for s, e in periods
    ]
    return (sa.union_all(*selects) if len(selects) > 1 else selects[0]).subquery(name)


def month_periods(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Calendar months ending in ``[start, end]``; a partial last month up to ``end`` if ``end`` is
    not a month end.

    Example
    -------
    >>> month_periods(dt.date(2024, 2, 1), dt.date(2024, 3, 12))[-1]
    (datetime.date(2024, 3, 1), datetime.date(2024, 3, 12))
    """
    out = []
    y, m = start.year, start.month
    while True:
        first = dt.date(y, m, 1)
        nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
        last = nxt - dt.timedelta(days=1)
        if first > end:
            break
        if last <= end:
            if last >= start:
                out.append((first, last))
        else:
            out.append((first, end))
            break
        y, m = nxt.year, nxt.month
    return out
