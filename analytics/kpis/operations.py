"""Operational KPIs: disputes, promises to pay, collectors and contact coverage.

Every figure is aggregated in the database (SQLAlchemy Core, identical on DuckDB, SQLite and
PostgreSQL) from the ledger history, "as of" a date or over a period ``[start, end]`` (both days
included). SQL returns integers only (counts, cents, day sums); ratios, averages and medians are
divided in Python, so the three databases give bit-identical figures.

Definitions used throughout
---------------------------
* **Scope.** A :class:`~analytics.ledger.LedgerFilter` restricts disputes, promises, activities and
  accounts to the filtered customers. ``currencies`` applies to the document currency (dispute:
  its invoice; promise: its invoice, else the customer's currency; account and activity: the
  customer's currency).
* **Portfolio of a collector** = the customers whose ``customers.collector_id`` is that collector
  (the current assignment; the ledger keeps no assignment history). Customers without a collector
  form the ``(unassigned)`` row, whose ``collector_id`` is missing.
* **Contact / touch.** An activity of a type in :data:`CONTACT_TYPES` (call, email, letter,
  portal, escalation). A ``note`` is internal and does not count as contacting the customer.
  *Activity counts* (activities per working day) count every type.
* **Working days** are Monday to Friday (no holiday calendar).
* **Cash** = applications whose source is a receipt (credit-memo applications are not payments).
  Unapplies (negative applications) net against cash.
* **One currency per figure**, as in :mod:`analytics.kpis.ar`: ``flt.currencies`` if it names one,
  else the ledger's main currency (:func:`analytics.kpis.ar.resolve_currency`); counts are taken on
  the same slice. The currency used is in ``DataFrame.attrs["currency"]``. Money is integer cents.
* **Rates are percentages** (0–100, ``*_pct`` columns) like CEI and % current in the core KPIs;
  NaN where the denominator is 0 (never an error).
* "Over N days past due" means ``days_past_due > N`` (``> 30`` is the 31+ bucket, ``> 60`` the 61+).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from fractions import Fraction
from typing import Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import days_between
from analytics.errors import UserError
from analytics.kpis.ar import cei as _cei
from analytics.kpis.ar import resolve_currency
from analytics.ledger import NO_FILTER, LedgerFilter, date_chunks, dates_per_query, open_items, open_items_over

disp = schema.disputes
prom = schema.promises
act = schema.activities
apps = schema.applications
inv = schema.invoices
cust = schema.customers
coll = schema.collectors

CONTACT_TYPES: tuple[str, ...] = ("call", "email", "letter", "portal", "escalation")
DEFAULT_DISPUTE_TARGET_DAYS = 30
DEFAULT_GRACE_DAYS = 3
UNASSIGNED = "(unassigned)"
_EPOCH = dt.date(1900, 1, 1)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _d(value: dt.date) -> sa.BindParameter:
    return sa.literal(value, sa.Date)


def _ts(value: dt.date) -> sa.BindParameter:
    """Midnight at the start of ``value`` as a DateTime literal (to bound ``occurred_at``)."""
    return sa.literal(dt.datetime.combine(value, dt.time()), sa.DateTime)


def _count_if(cond) -> sa.ColumnElement:
    return sa.cast(sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0), sa.BigInteger)


def _sum_if(cond, value) -> sa.ColumnElement:
    return sa.cast(sa.func.coalesce(sa.func.sum(sa.case((cond, value), else_=0)), 0), sa.BigInteger)


def _isum(value) -> sa.ColumnElement:
    return sa.cast(sa.func.coalesce(sa.func.sum(value), 0), sa.BigInteger)


def _ratio(num, den, scale: int = 1) -> float:
    """``scale × num / den`` as a float (exact division of integers), NaN when the denominator is 0."""
    if den is None or pd.isna(den) or den == 0 or num is None or pd.isna(num):
        return float("nan")
    return float(Fraction(int(num) * scale, int(den)))


def _pct(num, den) -> float:
    """Percentage ``100 × num / den``, NaN when the denominator is 0."""
    return _ratio(num, den, 100)


def _scope(conn, flt: LedgerFilter | None) -> tuple[LedgerFilter, str]:
    """The filter narrowed to one currency (see module docstring) and that currency."""
    return resolve_currency(conn, flt or NO_FILTER)


def _check_period(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise UserError(f"period start {start} is after its end {end}")


def _frame(rows: Iterable, spec: dict[str, str]) -> pd.DataFrame:
    """DataFrame with the columns of ``spec`` typed: int (int64), Int (nullable), float, str, date."""
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


def _customer_where(flt: LedgerFilter, customer_col, currency_col=None) -> list:
    conds = []
    clause = flt.customer_clause(customer_col)
    if clause is not None:
        conds.append(clause)
    if flt.currencies and currency_col is not None:
        conds.append(currency_col.in_(flt.currencies))
    return conds


def _collector_key(col) -> sa.ColumnElement:
    """Portfolio key: the collector id, '' for unassigned customers (NULL never joins)."""
    return sa.func.coalesce(col, "")


def working_days(start: dt.date, end: dt.date) -> int:
    """Monday-to-Friday days in ``[start, end]`` (both included).

    Example
    -------
    >>> working_days(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    21
    """
    if start > end:
        return 0
    return int(np.busday_count(start, end + dt.timedelta(days=1)))


def _periods(periods: list[tuple[dt.date, dt.date]], name: str = "periods") -> sa.Subquery:
    """A FROM-able table of periods: period_start, period_end (dates), ts_start, ts_stop (datetimes,
    ``ts_stop`` = midnight after ``period_end``) — one query computes a metric for many periods."""
    selects = [
        sa.select(_d(s).label("period_start"), _d(e).label("period_end"), _ts(s).label("ts_start"),
                  _ts(e + dt.timedelta(days=1)).label("ts_stop"))
        for s, e in periods
    ]
    return (sa.union_all(*selects) if len(selects) > 1 else selects[0]).subquery(name)


def _month_periods(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Calendar months ending in ``[start, end]``; a partial last month up to ``end`` if ``end`` is
    not a month end."""
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


# ------------------------------------------------------------------------------------------------
# Disputes
# ------------------------------------------------------------------------------------------------
_DISPUTE_COLS = {
    "open_count": "int", "open_cents": "int", "opened_count": "int", "opened_cents": "int",
    "resolved_count": "int", "resolved_cents": "int", "avg_days_to_resolve": "float",
    "median_days_to_resolve": "float", "resolved_within_target": "int", "open_over_target": "int",
    "within_target_pct": "float",
}


def _dispute_base(start: dt.date, end: dt.date, flt: LedgerFilter) -> sa.Subquery:
    """Disputes alive during [start, end]: opened by ``end`` and not resolved before ``start``."""
    s, e = _d(start), _d(end)
    stmt = (
        sa.select(
            disp.c.id, disp.c.reason_code, disp.c.amount_cents, disp.c.opened_date, disp.c.resolved_date,
            days_between(disp.c.opened_date, disp.c.resolved_date).label("days_to_resolve"),
            days_between(disp.c.opened_date, e).label("age_end"),
        )
        .select_from(disp.join(inv, inv.c.id == disp.c.invoice_id))
        .where(disp.c.opened_date <= e, sa.or_(disp.c.resolved_date.is_(None), disp.c.resolved_date >= s),
               *_customer_where(flt, disp.c.customer_id, inv.c.currency))
    )
    return stmt.subquery("dispute_base")


def _dispute_table(conn, start, end, flt, target_days, by_reason: bool) -> pd.DataFrame:
    _check_period(start, end)
    flt, currency = _scope(conn, flt)
    b = _dispute_base(start, end, flt)
    e, s = _d(end), _d(start)
    open_end = sa.or_(b.c.resolved_date.is_(None), b.c.resolved_date > e)
    opened_in = b.c.opened_date >= s
    resolved_in = sa.and_(b.c.resolved_date.is_not(None), b.c.resolved_date <= e)
    within = sa.and_(resolved_in, b.c.days_to_resolve <= target_days)
    over = sa.and_(open_end, b.c.age_end > target_days)
    keys = [b.c.reason_code] if by_reason else []
    agg = sa.select(
        *keys,
        _count_if(open_end).label("open_count"), _sum_if(open_end, b.c.amount_cents).label("open_cents"),
        _count_if(opened_in).label("opened_count"), _sum_if(opened_in, b.c.amount_cents).label("opened_cents"),
        _count_if(resolved_in).label("resolved_count"),
        _sum_if(resolved_in, b.c.amount_cents).label("resolved_cents"),
        _sum_if(resolved_in, b.c.days_to_resolve).label("days_sum"),
        _count_if(within).label("resolved_within_target"), _count_if(over).label("open_over_target"),
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
    med = sa.select(*([ranked.c.reason_code] if by_reason else []), _isum(ranked.c.days).label("mid_sum"),
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
            "avg_days_to_resolve": _ratio(r["days_sum"], r["resolved_count"]),
            "median_days_to_resolve": _ratio(r["mid_sum"], r["mid_n"]),
            "resolved_within_target": r["resolved_within_target"], "open_over_target": r["open_over_target"],
            "within_target_pct": _pct(r["resolved_within_target"],
                                      (r["resolved_count"] or 0) + (r["open_over_target"] or 0)),
        })
    spec = ({"reason_code": "str"} if by_reason else {}) | _DISPUTE_COLS
    df = _frame([tuple(o.values()) for o in out], spec)
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
    flt, currency = _scope(conn, flt)
    d = _d(as_of)
    age = days_between(disp.c.opened_date, d)
    stmt = (
        sa.select(disp.c.id, disp.c.customer_id, cust.c.name, cust.c.collector_id, disp.c.invoice_id,
                  disp.c.reason_code, disp.c.opened_date, disp.c.amount_cents, age)
        .select_from(disp.join(cust, cust.c.id == disp.c.customer_id).join(inv, inv.c.id == disp.c.invoice_id))
        .where(disp.c.opened_date <= d, sa.or_(disp.c.resolved_date.is_(None), disp.c.resolved_date > d),
               *_customer_where(flt, disp.c.customer_id, inv.c.currency))
        .order_by(age.desc(), disp.c.id)
    )
    df = _frame(conn.execute(stmt), {
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
    _check_period(start, end)
    flt, currency = _scope(conn, flt)
    b = _dispute_base(start, end, flt)
    e = _d(end)
    resolved_in = sa.and_(b.c.resolved_date.is_not(None), b.c.resolved_date <= e)
    days = sa.case((resolved_in, b.c.days_to_resolve), else_=b.c.age_end)
    stmt = (
        sa.select(b.c.id, disp.c.customer_id, cust.c.name, cust.c.collector_id, disp.c.invoice_id, b.c.reason_code,
                  b.c.opened_date, sa.case((resolved_in, b.c.resolved_date)), b.c.amount_cents, days)
        .select_from(b.join(disp, disp.c.id == b.c.id).join(cust, cust.c.id == disp.c.customer_id))
        .where(days > target_days)
        .order_by(b.c.amount_cents.desc(), b.c.id)
    )
    df = _frame(conn.execute(stmt), {
        "dispute_id": "int", "customer_id": "str", "customer_name": "str", "collector_id": "str",
        "invoice_id": "str", "reason_code": "str", "opened_date": "date", "resolved_date": "date",
        "amount_cents": "int", "days": "int"})
    df.attrs["currency"] = currency
    return df


# ------------------------------------------------------------------------------------------------
# Promises to pay
# ------------------------------------------------------------------------------------------------
def _promise_eval(periods: sa.Subquery, flt: LedgerFilter, grace_days: int) -> sa.Subquery:
    """Each promise made within a period, evaluated as of that period's end.

    Columns: period_end, id, customer_id, invoice_id, made_on, promised_date, amount_cents,
    collected_cents (cash applied in [made_on, min(promised_date + grace, period_end)] to the promised
    invoice, or to any of the customer's items when invoice_id is NULL), status (kept/broken/pending).
    """
    pinv = inv.alias("pinv")
    pf = (
        sa.select(periods.c.period_end, prom.c.id, prom.c.customer_id, prom.c.invoice_id, prom.c.made_on,
                  prom.c.promised_date, prom.c.amount_cents)
        .select_from(
            periods.join(prom, sa.and_(prom.c.made_on >= periods.c.period_start,
                                       prom.c.made_on <= periods.c.period_end))
            .join(cust, cust.c.id == prom.c.customer_id)
            .outerjoin(pinv, pinv.c.id == prom.c.invoice_id))
        .where(*_customer_where(flt, prom.c.customer_id, sa.func.coalesce(pinv.c.currency, cust.c.currency)))
        .subquery("pf")
    )
    window = (
        apps.c.receipt_id.is_not(None),
        apps.c.applied_date >= pf.c.made_on,
        apps.c.applied_date <= pf.c.period_end,
        days_between(pf.c.promised_date, apps.c.applied_date) <= grace_days,
    )
    on_invoice = (
        sa.select(pf.c.period_end, pf.c.id, apps.c.amount_cents)
        .select_from(pf.join(apps, apps.c.invoice_id == pf.c.invoice_id))
        .where(*window)
    )
    cinv = inv.alias("cinv")
    on_customer = (
        sa.select(pf.c.period_end, pf.c.id, apps.c.amount_cents)
        .select_from(pf.join(cinv, cinv.c.customer_id == pf.c.customer_id).join(apps, apps.c.invoice_id == cinv.c.id))
        .where(pf.c.invoice_id.is_(None), *window)
    )
    cash = sa.union_all(on_invoice, on_customer).subquery("promise_cash")
    collected = (
        sa.select(cash.c.period_end, cash.c.id, _isum(cash.c.amount_cents).label("collected_cents"))
        .group_by(cash.c.period_end, cash.c.id)
        .subquery("promise_collected")
    )
    got = sa.cast(sa.func.coalesce(collected.c.collected_cents, 0), sa.BigInteger)
    status = sa.case(
        (got >= pf.c.amount_cents, "kept"),
        (days_between(pf.c.promised_date, pf.c.period_end) > grace_days, "broken"),
        else_="pending",
    )
    return (
        sa.select(pf, got.label("collected_cents"), status.label("status"))
        .select_from(pf.outerjoin(collected, sa.and_(collected.c.id == pf.c.id,
                                                     collected.c.period_end == pf.c.period_end)))
        .subquery("promise_eval")
    )


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
            row.pending_count, _pct(row.kept_count, (row.kept_count or 0) + (row.broken_count or 0)))


def _promise_aggregates(ev) -> list:
    return [
        sa.cast(sa.func.count(ev.c.id), sa.BigInteger).label("made_count"),
        _isum(ev.c.amount_cents).label("promised_cents"),
        _isum(_capped(ev)).label("collected_cents"),
        _count_if(ev.c.status == "kept").label("kept_count"),
        _count_if(ev.c.status == "broken").label("broken_count"),
        _count_if(ev.c.status == "pending").label("pending_count"),
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
    _check_period(start, end)
    flt, currency = _scope(conn, flt)
    ev = _promise_eval(_periods([(start, end)]), flt, grace_days)
    row = conn.execute(sa.select(*_promise_aggregates(ev))).one()
    df = _frame([_promise_agg_rows(row)], _PROMISE_COLS)
    df.attrs["currency"] = currency
    return df


_PROMISE_DETAIL_COLS = {
    "promise_id": "int", "customer_id": "str", "customer_name": "str", "collector_id": "str",
    "invoice_id": "str", "made_on": "date", "promised_date": "date", "amount_cents": "int",
    "collected_cents": "int", "remaining_cents": "int", "status": "str", "days_past_promise": "int",
}


def _promise_detail(conn, periods, flt, grace_days, due_only: bool, as_of: dt.date) -> pd.DataFrame:
    flt, currency = _scope(conn, flt)
    ev = _promise_eval(periods, flt, grace_days)
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
        stmt = stmt.where(ev.c.status != "kept", ev.c.promised_date <= _d(as_of))
    df = _frame(conn.execute(stmt), _PROMISE_DETAIL_COLS)
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
    _check_period(start, end)
    return _promise_detail(conn, _periods([(start, end)]), flt, grace_days, due_only=False, as_of=end)


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
    df = _promise_detail(conn, _periods([(_EPOCH, as_of)]), flt, grace_days, due_only=True, as_of=as_of)
    if max_days_overdue is not None:
        attrs = df.attrs
        df = df[df["days_past_promise"] <= max_days_overdue].reset_index(drop=True)
        df.attrs = attrs
    return df


# ------------------------------------------------------------------------------------------------
# Contact coverage of past-due accounts
# ------------------------------------------------------------------------------------------------
def _past_due_accounts(as_of: dt.date, flt: LedgerFilter, dpd_over: int, within_days: int) -> sa.Subquery:
    """Customers with a positive balance more than ``dpd_over`` days past due at ``as_of``, with the
    balance, the oldest days past due, the last contact on or before ``as_of`` and whether it falls in
    the last ``within_days`` days (``as_of − within_days + 1 .. as_of``)."""
    oi = open_items(as_of, flt)
    pd_acc = (
        sa.select(oi.c.customer_id, _isum(oi.c.open_cents).label("past_due_cents"),
                  sa.func.max(oi.c.days_past_due).label("max_days_past_due"))
        .where(oi.c.days_past_due > dpd_over)
        .group_by(oi.c.customer_id)
        .having(sa.func.sum(oi.c.open_cents) > 0)
        .subquery("past_due_accounts")
    )
    last = (
        sa.select(act.c.customer_id, sa.func.max(act.c.occurred_at).label("last_contact"))
        .where(act.c.type.in_(CONTACT_TYPES), act.c.occurred_at < _ts(as_of + dt.timedelta(days=1)))
        .group_by(act.c.customer_id)
        .subquery("last_contact")
    )
    since = _ts(as_of - dt.timedelta(days=within_days - 1))
    contacted = sa.case((last.c.last_contact >= since, 1), else_=0)
    return (
        sa.select(pd_acc.c.customer_id, cust.c.name.label("customer_name"), cust.c.collector_id,
                  _collector_key(cust.c.collector_id).label("ckey"), pd_acc.c.past_due_cents,
                  pd_acc.c.max_days_past_due, last.c.last_contact, contacted.label("contacted"))
        .select_from(pd_acc.join(cust, cust.c.id == pd_acc.c.customer_id)
                     .outerjoin(last, last.c.customer_id == pd_acc.c.customer_id))
        .subquery("contact_coverage")
    )


def contact_coverage(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER, dpd_over: int = 30,
                     within_days: int = 7) -> pd.DataFrame:
    """Accounts with a balance more than ``dpd_over`` days past due at ``as_of`` and whether they were
    contacted in the last ``within_days`` days.

    An account qualifies when Σ open_cents of its items with ``days_past_due > dpd_over`` is > 0
    (as-of reconstruction, :func:`analytics.ledger.open_items`). *Contacted* = an activity of a type in
    :data:`CONTACT_TYPES` with ``occurred_at`` on a day in ``[as_of − within_days + 1, as_of]``.
    ``days_since_contact`` = as_of − date of the last contact on or before ``as_of`` (missing if never).

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, collector_id, past_due_cents, max_days_past_due, last_contact
        (datetime), days_since_contact (Int64), contacted (bool)``, largest balance first.

    Example
    -------
    >>> contact_coverage(conn, dt.date(2024, 3, 31))["contacted"].mean()  # doctest: +SKIP
    0.75
    """
    flt, currency = _scope(conn, flt)
    cc = _past_due_accounts(as_of, flt, dpd_over, within_days)
    stmt = sa.select(cc.c.customer_id, cc.c.customer_name, cc.c.collector_id, cc.c.past_due_cents,
                     cc.c.max_days_past_due, cc.c.last_contact, cc.c.contacted).order_by(
        cc.c.past_due_cents.desc(), cc.c.customer_id)
    rows = conn.execute(stmt).all()
    df = _frame([tuple(r[:6]) for r in rows], {
        "customer_id": "str", "customer_name": "str", "collector_id": "str", "past_due_cents": "int",
        "max_days_past_due": "int", "last_contact": "date"})
    days = [(as_of - r.last_contact.date()).days if r.last_contact is not None else None for r in rows]
    df["days_since_contact"] = pd.array(days, dtype="Int64")
    df["contacted"] = pd.array([bool(r.contacted) for r in rows], dtype="bool")
    df.attrs["currency"] = currency
    return df


# ------------------------------------------------------------------------------------------------
# Collectors
# ------------------------------------------------------------------------------------------------
_COLLECTOR_COLS = {
    "collector_id": "str", "collector_name": "str", "accounts": "int", "accounts_with_balance": "int",
    "ar_cents": "int", "overdue_cents": "int", "accounts_touched": "int", "activities": "int",
    "working_days": "int", "activities_per_day": "float", "collected_cents": "int", "cei": "float",
    "promises_made": "int", "promises_kept": "int", "promises_broken": "int", "ptp_kept_pct": "float",
    "severe_accounts": "int", "severe_touched": "int", "severe_touched_pct": "float",
}


def _portfolio_customers(flt: LedgerFilter) -> list:
    return _customer_where(flt, cust.c.id, cust.c.currency)


def _fetch(conn, stmt) -> dict:
    return {r[0]: r[1:] for r in conn.execute(stmt)}


def collector_kpis(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                   grace_days: int = DEFAULT_GRACE_DAYS, severe_dpd: int = 60,
                   recent_days: int = 7) -> pd.DataFrame:
    """Per-collector KPIs for the period ``[start, end]`` (one SQL aggregate per metric, grouped by
    collector).

    Portfolio = customers currently assigned to the collector (``customers.collector_id``).

    * ``accounts``: customers in the portfolio; ``accounts_with_balance``: of those, with an open
      item at ``end``.
    * ``ar_cents`` / ``overdue_cents``: Σ open amount at ``end`` / of items with days_past_due > 0
      (as-of reconstruction, :func:`analytics.ledger.open_items`).
    * ``accounts_touched``: portfolio customers with >= 1 contact activity (:data:`CONTACT_TYPES`)
      in the period; ``activities``: activities of any type on the portfolio in the period;
      ``activities_per_day`` = activities / ``working_days`` (Mon–Fri days in the period).
    * ``collected_cents``: cash applications (from receipts) dated in the period to the portfolio's
      items.
    * ``cei``: Collection Effectiveness Index of the portfolio for the period, from
      :func:`analytics.kpis.ar.cei` with the filter narrowed to the collector (NaN for the unassigned
      row or when undefined).
    * ``promises_made/kept/broken``, ``ptp_kept_pct``: promises made in the period, evaluated at
      ``end`` (:func:`promise_stats`); ptp_kept_pct = 100 × kept / (kept + broken).
    * ``severe_accounts``: customers with a positive balance more than ``severe_dpd`` days past due at
      ``end``; ``severe_touched``: of those, contacted in the last ``recent_days`` days up to ``end``;
      ``severe_touched_pct`` = 100 × severe_touched / severe_accounts.

    Rows: every collector with accounts or activity in scope (plus ``(unassigned)`` when unassigned
    customers are in scope), by collector id.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    start, end : datetime.date
    flt : LedgerFilter, optional
    grace_days : int, default 3
        Promise grace days.
    severe_dpd : int, default 60
    recent_days : int, default 7

    Returns
    -------
    pandas.DataFrame
        Columns ``collector_id, collector_name, accounts, accounts_with_balance, ar_cents, overdue_cents,
        accounts_touched, activities, working_days, activities_per_day, collected_cents, cei,
        promises_made, promises_kept, promises_broken, ptp_kept_pct, severe_accounts, severe_touched,
        severe_touched_pct``.

    Example
    -------
    >>> df = collector_kpis(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))  # doctest: +SKIP
    >>> df[["collector_id", "ptp_kept_pct"]]  # doctest: +SKIP
      collector_id  ptp_kept_pct
    0           C1          50.0
    1           C2         100.0
    """
    _check_period(start, end)
    flt, currency = _scope(conn, flt)
    ckey = _collector_key(cust.c.collector_id).label("ckey")
    portfolio = _portfolio_customers(flt)

    accounts = _fetch(conn, sa.select(ckey, sa.cast(sa.func.count(), sa.BigInteger)).where(*portfolio)
                      .group_by(ckey))

    oi = open_items(end, flt)
    ar = _fetch(conn, sa.select(ckey, sa.cast(sa.func.count(sa.distinct(oi.c.customer_id)), sa.BigInteger),
                                _isum(oi.c.open_cents), _sum_if(oi.c.days_past_due > 0, oi.c.open_cents))
                .select_from(oi.join(cust, cust.c.id == oi.c.customer_id)).group_by(ckey))

    in_period = (act.c.occurred_at >= _ts(start), act.c.occurred_at < _ts(end + dt.timedelta(days=1)))
    touched = sa.func.count(sa.distinct(sa.case((act.c.type.in_(CONTACT_TYPES), act.c.customer_id))))
    acts = _fetch(conn, sa.select(ckey, sa.cast(touched, sa.BigInteger), sa.cast(sa.func.count(), sa.BigInteger))
                  .select_from(act.join(cust, cust.c.id == act.c.customer_id))
                  .where(*in_period, *portfolio).group_by(ckey))

    cash_stmt = (
        sa.select(ckey, _isum(apps.c.amount_cents))
        .select_from(apps.join(inv, inv.c.id == apps.c.invoice_id).join(cust, cust.c.id == inv.c.customer_id))
        .where(apps.c.receipt_id.is_not(None), apps.c.applied_date >= _d(start), apps.c.applied_date <= _d(end))
        .group_by(ckey)
    )
    cash = _fetch(conn, flt.apply_to_invoices(cash_stmt))

    ev = _promise_eval(_periods([(start, end)]), flt, grace_days)
    pkey = _collector_key(cust.c.collector_id)
    ptp = _fetch(conn, sa.select(pkey, *_promise_aggregates(ev)[:1], *_promise_aggregates(ev)[3:5])
                 .select_from(ev.join(cust, cust.c.id == ev.c.customer_id)).group_by(pkey))

    cc = _past_due_accounts(end, flt, severe_dpd, recent_days)
    severe = _fetch(conn, sa.select(cc.c.ckey, sa.cast(sa.func.count(), sa.BigInteger), _isum(cc.c.contacted))
                    .group_by(cc.c.ckey))

    names = dict(conn.execute(sa.select(coll.c.id, coll.c.name)).all())
    keys = set(accounts) | set(ar) | set(acts) | set(cash) | set(ptp) | set(severe)
    if flt.collectors:
        keys &= set(flt.collectors)
    wd = working_days(start, end)
    rows = []
    for k in sorted(keys, key=lambda k: (k == "", k)):  # unassigned last
        n_acc = accounts.get(k, (0,))[0]
        with_bal, ar_c, od_c = ar.get(k, (0, 0, 0))
        n_touch, n_act = acts.get(k, (0, 0))
        made, kept, broken = ptp.get(k, (0, 0, 0))
        sev, sev_t = severe.get(k, (0, 0))
        rows.append((
            k or None, names.get(k, k) if k else UNASSIGNED, n_acc, with_bal, ar_c, od_c, n_touch, n_act, wd,
            _ratio(n_act, wd), cash.get(k, (0,))[0], _collector_cei(conn, start, end, flt, k),
            made, kept, broken, _pct(kept, kept + broken), sev, sev_t, _pct(sev_t, sev),
        ))
    df = _frame(rows, _COLLECTOR_COLS)
    df.attrs["currency"] = currency
    return df


def _collector_cei(conn, start, end, flt: LedgerFilter, key: str) -> float:
    if not key:
        return float("nan")
    value = _cei(conn, start, end, dataclasses.replace(flt, collectors=(key,)))
    return float("nan") if value is None else float(value)


def collector_trend(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                    grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Monthly collector KPIs from ``start`` to ``end``: one row per (month end, collector).

    Months are the calendar months ending in ``[start, end]``, plus the partial month up to ``end``
    when ``end`` is not a month end; ``as_of`` is the month end (or ``end``). Each metric is one SQL
    query over all months at once (on a large ledger, a few months per query:
    :func:`analytics.ledger.dates_per_query`):

    * ``ar_cents`` / ``overdue_cents`` at ``as_of`` (:func:`analytics.ledger.open_items_over`);
    * ``activities`` (any type) and ``accounts_touched`` (contact types) in the month;
    * ``collected_cents``: cash applied in the month to the portfolio;
    * ``promises_kept``, ``promises_broken``, ``ptp_kept_pct`` for promises made in the month,
      evaluated at ``as_of``.

    Definitions as in :func:`collector_kpis`. Unassigned customers have ``collector_id`` missing.

    Returns
    -------
    pandas.DataFrame
        ``as_of, collector_id, collector_name, ar_cents, overdue_cents, activities, accounts_touched,
        collected_cents, promises_kept, promises_broken, ptp_kept_pct``, by as_of then collector.

    Example
    -------
    >>> collector_trend(conn, dt.date(2024, 1, 1), dt.date(2024, 3, 31))["as_of"].nunique()  # doctest: +SKIP
    3
    """
    _check_period(start, end)
    months = _month_periods(start, end)
    spec = {"as_of": "date", "collector_id": "str", "collector_name": "str", "ar_cents": "int",
            "overdue_cents": "int", "activities": "int", "accounts_touched": "int", "collected_cents": "int",
            "promises_kept": "int", "promises_broken": "int", "ptp_kept_pct": "float"}
    flt, currency = _scope(conn, flt)
    if not months:
        return _frame([], spec)
    ckey = _collector_key(cust.c.collector_id).label("ckey")
    portfolio = _portfolio_customers(flt)

    def fetch(stmt) -> dict:
        return {(_as_date(r[0]), r[1]): r[2:] for r in conn.execute(stmt)}

    ar = {}
    for chunk in date_chunks([e for _, e in months], dates_per_query(conn)):  # bounded memory on big ledgers
        oi = open_items_over(chunk, flt)
        ar.update(fetch(sa.select(oi.c.as_of, ckey, _isum(oi.c.open_cents),
                                  _sum_if(oi.c.days_past_due > 0, oi.c.open_cents))
                        .select_from(oi.join(cust, cust.c.id == oi.c.customer_id)).group_by(oi.c.as_of, ckey)))

    per = _periods(months)
    touched = sa.func.count(sa.distinct(sa.case((act.c.type.in_(CONTACT_TYPES), act.c.customer_id))))
    acts = fetch(
        sa.select(per.c.period_end, ckey, sa.cast(sa.func.count(), sa.BigInteger), sa.cast(touched, sa.BigInteger))
        .select_from(per.join(act, sa.and_(act.c.occurred_at >= per.c.ts_start, act.c.occurred_at < per.c.ts_stop))
                     .join(cust, cust.c.id == act.c.customer_id))
        .where(*portfolio).group_by(per.c.period_end, ckey))

    per2 = _periods(months, "periods_cash")
    cash_stmt = (
        sa.select(per2.c.period_end, ckey, _isum(apps.c.amount_cents))
        .select_from(per2.join(apps, sa.and_(apps.c.applied_date >= per2.c.period_start,
                                             apps.c.applied_date <= per2.c.period_end))
                     .join(inv, inv.c.id == apps.c.invoice_id).join(cust, cust.c.id == inv.c.customer_id))
        .where(apps.c.receipt_id.is_not(None))
        .group_by(per2.c.period_end, ckey)
    )
    cash = fetch(flt.apply_to_invoices(cash_stmt))

    ev = _promise_eval(_periods(months, "periods_ptp"), flt, grace_days)
    pkey = _collector_key(cust.c.collector_id)
    ptp = fetch(sa.select(ev.c.period_end, pkey, _count_if(ev.c.status == "kept"), _count_if(ev.c.status == "broken"))
                .select_from(ev.join(cust, cust.c.id == ev.c.customer_id)).group_by(ev.c.period_end, pkey))

    names = dict(conn.execute(sa.select(coll.c.id, coll.c.name)).all())
    keys = set(ar) | set(acts) | set(cash) | set(ptp)
    if flt.collectors:
        keys = {k for k in keys if k[1] in flt.collectors}
    rows = []
    for as_of, k in sorted(keys, key=lambda x: (x[0], x[1] == "", x[1])):
        ar_c, od_c = ar.get((as_of, k), (0, 0))
        n_act, n_touch = acts.get((as_of, k), (0, 0))
        kept, broken = ptp.get((as_of, k), (0, 0))
        rows.append((as_of, k or None, names.get(k, k) if k else UNASSIGNED, ar_c, od_c, n_act, n_touch,
                     cash.get((as_of, k), (0,))[0], kept, broken, _pct(kept, kept + broken)))
    df = _frame(rows, spec)
    df.attrs["currency"] = currency
    return df


def _as_date(value) -> dt.date:
    """Dates from literal unions come back as date (or, on some drivers, datetime/str)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value
