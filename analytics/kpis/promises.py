"""Promise-to-pay KPIs: made, kept, broken, pending, and the promises due.

The one "promise kept" rule is :func:`analytics.ledger.promise_outcomes`: cash applied to the promised
invoice (or, without one, to any of the customer's items) between the day the promise was made and the
promised date + ``grace_days`` (default 3), adding up to at least the promised amount. **Broken**: not
kept once that deadline has passed. Kept % = kept / (kept + broken). Source: ``promises`` and cash
``applications``; one currency per figure.

Example
-------
>>> promise_stats(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))["kept_pct"][0]  # doctest: +SKIP
50.0
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import days_between
from analytics.kpis.common import (check_period, count_if, day, frame, isum, pct, periods_table,  # noqa: F401
                                   scope)
from analytics.ledger import (DEFAULT_GRACE_DAYS, NO_FILTER, LedgerFilter, promise_candidates,  # noqa: F401
                              promise_outcomes)

cust = schema.customers

_EPOCH = dt.date(1900, 1, 1)


def promise_eval(periods: sa.Subquery, flt: LedgerFilter = NO_FILTER,
                 grace_days: int = DEFAULT_GRACE_DAYS) -> sa.Subquery:
    """Each promise made within a period, evaluated at the end of that period's last day.

    The rule is :func:`analytics.ledger.promise_outcomes` (the one "promise kept" definition).

    Parameters
    ----------
    periods : sqlalchemy.Subquery
        :func:`analytics.kpis.common.periods_table`.
    flt : LedgerFilter, optional
    grace_days : int, default 3

    Returns
    -------
    sqlalchemy.Subquery
        ``period_end, cutoff, id, customer_id, invoice_id, made_on, promised_date, amount_cents,
        collected_cents, status``.

    Example
    -------
    >>> ev = promise_eval(periods_table([(dt.date(2024, 3, 1), dt.date(2024, 3, 31))]))
    """
    return promise_outcomes(promise_candidates(periods, flt), grace_days)


def _capped(ev) -> sa.ColumnElement:
    """Collected cash counted towards a promise: clipped to [0, promised amount]."""
    return sa.case((ev.c.collected_cents >= ev.c.amount_cents, ev.c.amount_cents),
                   (ev.c.collected_cents < 0, 0), else_=ev.c.collected_cents)


_PROMISE_COLS = {
    "made_count": "int", "promised_cents": "int", "collected_cents": "int", "kept_count": "int",
    "broken_count": "int", "pending_count": "int", "kept_pct": "float",
}


def _promise_agg_rows(row) -> tuple:
    return (row.made_count, row.promised_cents, row.collected_cents, row.kept_count, row.broken_count,
            row.pending_count, pct(row.kept_count, (row.kept_count or 0) + (row.broken_count or 0)))


def promise_aggregates(ev) -> list:
    """SQL aggregates of :func:`promise_eval` rows: ``made_count, promised_cents, collected_cents
    (clipped to each promise), kept_count, broken_count, pending_count``.

    Example
    -------
    >>> cols = promise_aggregates(promise_eval(periods_table([(dt.date(2024, 3, 1), dt.date(2024, 3, 31))])))
    """
    return [
        sa.cast(sa.func.count(ev.c.id), sa.BigInteger).label("made_count"),
        isum(ev.c.amount_cents).label("promised_cents"),
        isum(_capped(ev)).label("collected_cents"),
        count_if(ev.c.status == "kept").label("kept_count"),
        count_if(ev.c.status == "broken").label("broken_count"),
        count_if(ev.c.status == "pending").label("pending_count"),
    ]


def promise_stats(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                  grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Promise-to-pay KPIs for promises **made** in ``[start, end]``, evaluated as of ``end`` (one row).

    Source: ``promises`` and cash ``applications`` (receipt applications; credit memos are not payment).

    A promise (customer, optional invoice, made_on, promised_date, amount) is

    * **kept** when cash applied to the promised invoice — or to any of the customer's items when
      ``invoice_id`` is NULL — dated in ``[made_on, promised_date + grace_days]`` (and ``<= end``)
      sums to ``>= amount``;
    * **broken** when not kept and ``promised_date + grace_days < end``;
    * **pending** otherwise (its deadline has not passed yet).

    ``kept_pct`` = 100 × kept_count / (kept_count + broken_count) (NaN when both are 0);
    ``promised_cents`` = Σ amount; ``collected_cents`` = Σ min(cash in the window, amount) — the part
    of the promised money that arrived in time (a payment larger than the promise is not counted
    twice). One payment can honour several overlapping promises of the same invoice/customer.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    start, end : datetime.date
    flt : LedgerFilter, optional
    grace_days : int, default 3

    Returns
    -------
    pandas.DataFrame
        One row: ``made_count, promised_cents, collected_cents, kept_count, broken_count,
        pending_count, kept_pct``.

    Example
    -------
    >>> promise_stats(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))  # doctest: +SKIP
       made_count  promised_cents  collected_cents  kept_count  broken_count  pending_count  kept_pct
    0           5          250000           180000           2             2              1      50.0
    """
    check_period(start, end)
    flt, currency = scope(conn, flt)
    ev = promise_eval(periods_table([(start, end)]), flt, grace_days)
    row = conn.execute(sa.select(*promise_aggregates(ev))).one()
    df = frame([_promise_agg_rows(row)], _PROMISE_COLS)
    df.attrs["currency"] = currency
    return df


_PROMISE_DETAIL_COLS = {
    "promise_id": "int", "customer_id": "str", "customer_name": "str", "collector_id": "str",
    "invoice_id": "str", "made_on": "date", "promised_date": "date", "amount_cents": "int",
    "collected_cents": "int", "remaining_cents": "int", "status": "str", "days_past_promise": "int",
}


def _promise_detail(conn, periods, flt, grace_days, due_only: bool, as_of: dt.date) -> pd.DataFrame:
    flt, currency = scope(conn, flt)
    ev = promise_eval(periods, flt, grace_days)
    remaining = sa.case((ev.c.collected_cents >= ev.c.amount_cents, 0),
                        else_=ev.c.amount_cents - sa.case((ev.c.collected_cents < 0, 0), else_=ev.c.collected_cents))
    late = days_between(ev.c.promised_date, ev.c.period_end)
    stmt = (
        sa.select(ev.c.id, ev.c.customer_id, cust.c.name, cust.c.collector_id, ev.c.invoice_id, ev.c.made_on,
                  ev.c.promised_date, ev.c.amount_cents, ev.c.collected_cents, remaining, ev.c.status, late)
        .select_from(ev.join(cust, cust.c.id == ev.c.customer_id))
        .order_by(ev.c.promised_date, ev.c.id)
    )
    if due_only:
        stmt = stmt.where(ev.c.status != "kept", ev.c.promised_date <= day(as_of))
    df = frame(conn.execute(stmt), _PROMISE_DETAIL_COLS)
    df.attrs["currency"] = currency
    return df


def promises_detail(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                    grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Every promise made in ``[start, end]`` with its status as of ``end`` (rules of
    :func:`promise_stats`), by promised date.

    ``collected_cents`` = cash applied within the promise window up to ``end`` (not clipped);
    ``remaining_cents`` = max(amount − max(collected, 0), 0); ``days_past_promise`` = end − promised_date
    (negative while the promised date is ahead).

    Returns
    -------
    pandas.DataFrame
        ``promise_id, customer_id, customer_name, collector_id, invoice_id (missing for a customer-level
        promise), made_on, promised_date, amount_cents, collected_cents, remaining_cents, status,
        days_past_promise``.

    Example
    -------
    >>> promises_detail(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))["status"].tolist()  # doctest: +SKIP
    ['kept', 'broken', 'pending']
    """
    check_period(start, end)
    return _promise_detail(conn, periods_table([(start, end)]), flt, grace_days, due_only=False, as_of=end)


def promises_due(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                 grace_days: int = DEFAULT_GRACE_DAYS, max_days_overdue: int | None = None) -> pd.DataFrame:
    """Promises for the worklist: promised date today or earlier and not (yet) kept as of ``as_of``.

    Considers every promise made on or before ``as_of``; status by the rules of
    :func:`promise_stats` evaluated at ``as_of`` (so a promise inside its grace days is ``pending``,
    after them ``broken``). ``days_past_promise`` = as_of − promised_date (0 = due today).

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
    grace_days : int, default 3
    max_days_overdue : int, optional
        Drop promises whose promised date is more than this many days ago (old broken promises).

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`promises_detail`.

    Example
    -------
    >>> promises_due(conn, dt.date(2024, 3, 31))[["customer_id", "status"]]  # doctest: +SKIP
      customer_id  status
    0          K2  broken
    """
    df = _promise_detail(conn, periods_table([(_EPOCH, as_of)]), flt, grace_days, due_only=True, as_of=as_of)
    if max_days_overdue is not None:
        attrs = df.attrs
        df = df[df["days_past_promise"] <= max_days_overdue].reset_index(drop=True)
        df.attrs = attrs
    return df
