"""Collector KPIs and contact coverage of past-due accounts.

* **Portfolio of a collector** = the customers whose ``customers.collector_id`` is that collector (the
  current assignment; the ledger keeps no assignment history). Customers without a collector form the
  ``(unassigned)`` row, whose ``collector_id`` is missing.
* **Contact / touch** = :func:`analytics.ledger.is_contact` (call, email, letter, portal, escalation; a
  note is internal and does not count). *Activity counts* count every type.
* **Cash** = applications from receipts (credit memos are not payments); unapplies net.
* One currency per figure (:func:`analytics.ledger.resolve_currency`); rates are percentages, NaN when
  the denominator is 0.

:func:`collector_kpis` (one period) and :func:`collector_trend` (months) are two shapes of the same
measures, computed by one set of queries over a table of periods (:func:`collector_measures`).

Example
-------
>>> collector_kpis(conn, dt.date(2024, 3, 1), dt.date(2024, 3, 31))["collector_id"].tolist()  # doctest: +SKIP
['C1', 'C2', None]
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.kpis.ar import cei_fraction
from analytics.kpis.common import (UNASSIGNED, check_period, collector_key, count_if, customer_where, day_start,
                                   frame, isum, month_periods, pct, periods_table, ratio, scope, sum_if,
                                   working_days)
from analytics.kpis.promises import promise_eval
from analytics.ledger import (DEFAULT_GRACE_DAYS, NO_FILTER, LedgerFilter,  # noqa: F401
                              as_date, credit_sales, date_chunks, dates_per_query, is_contact, last_contact,
                              open_items, open_items_over)

act = schema.activities
apps = schema.applications
inv = schema.invoices
cust = schema.customers
coll = schema.collectors


# ------------------------------------------------------------------------------------------------
# Contact coverage of past-due accounts
# ------------------------------------------------------------------------------------------------
def _past_due_accounts(as_of: dt.date, flt: LedgerFilter, dpd_over: int, within_days: int) -> sa.Subquery:
    """Customers with a positive balance more than ``dpd_over`` days past due at ``as_of``, with the
    balance, the oldest days past due, the last contact on or before ``as_of`` and whether it falls in
    the last ``within_days`` days (``as_of − within_days + 1 .. as_of``)."""
    oi = open_items(as_of, flt)
    pd_acc = (
        sa.select(oi.c.customer_id, isum(oi.c.open_cents).label("past_due_cents"),
                  sa.func.max(oi.c.days_past_due).label("max_days_past_due"))
        .where(oi.c.days_past_due > dpd_over)
        .group_by(oi.c.customer_id)
        .having(sa.func.sum(oi.c.open_cents) > 0)
        .subquery("past_due_accounts")
    )
    last = last_contact(as_of)
    since = day_start(as_of - dt.timedelta(days=within_days - 1))
    contacted = sa.case((last.c.last_contact >= since, 1), else_=0)
    return (
        sa.select(pd_acc.c.customer_id, cust.c.name.label("customer_name"), cust.c.collector_id,
                  collector_key(cust.c.collector_id).label("ckey"), pd_acc.c.past_due_cents,
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
    flt, currency = scope(conn, flt)
    cc = _past_due_accounts(as_of, flt, dpd_over, within_days)
    stmt = sa.select(cc.c.customer_id, cc.c.customer_name, cc.c.collector_id, cc.c.past_due_cents,
                     cc.c.max_days_past_due, cc.c.last_contact, cc.c.contacted).order_by(
        cc.c.past_due_cents.desc(), cc.c.customer_id)
    rows = conn.execute(stmt).all()
    df = frame([tuple(r[:6]) for r in rows], {
        "customer_id": "str", "customer_name": "str", "collector_id": "str", "past_due_cents": "int",
        "max_days_past_due": "int", "last_contact": "date"})
    days = [(as_of - r.last_contact.date()).days if r.last_contact is not None else None for r in rows]
    df["days_since_contact"] = pd.array(days, dtype="Int64")
    df["contacted"] = pd.array([bool(r.contacted) for r in rows], dtype="bool")
    df.attrs["currency"] = currency
    return df


# ------------------------------------------------------------------------------------------------
# Collectors: one set of measures for any table of periods
# ------------------------------------------------------------------------------------------------
MEASURES = ("accounts", "accounts_with_balance", "ar_cents", "overdue_cents", "accounts_touched", "activities",
            "collected_cents", "cei", "promises_made", "promises_kept", "promises_broken", "severe_accounts",
            "severe_touched")


def collector_measures(conn: sa.Connection, periods: list[tuple[dt.date, dt.date]], flt: LedgerFilter,
                       grace_days: int = DEFAULT_GRACE_DAYS, severe_dpd: int | None = None,
                       recent_days: int = 7, with_cei: bool = True) -> dict[tuple[dt.date, str], dict]:
    """Every collector measure for every period, one query per measure whatever the number of periods.

    ``flt`` must already name one currency. Keys are (period end, portfolio key: collector id or '' for
    unassigned customers); values map :data:`MEASURES` to integers (``cei`` a float, NaN when undefined
    or unassigned; NaN too with ``with_cei=False``, which saves the opening balances and sales) and
    ``seen`` to whether the collector had a balance, activity, cash or promises in
    the period; with a balance, also CEI's parts ``cei_begin_cents`` (AR the day before the period) and
    ``cei_sales_cents`` (credit sales of the period). Definitions in :func:`collector_kpis`.
    ``severe_dpd`` None skips the severe-account measures (0).

    Example
    -------
    >>> m = collector_measures(conn, [(dt.date(2024, 3, 1), dt.date(2024, 3, 31))], flt)  # doctest: +SKIP
    >>> m[(dt.date(2024, 3, 31), "C1")]["ar_cents"]  # doctest: +SKIP
    120000
    """
    ckey = collector_key(cust.c.collector_id).label("ckey")
    portfolio = customer_where(flt, cust.c.id, cust.c.currency)
    out: dict[tuple[dt.date, str], dict] = {}

    def put(end, key, **values):
        row = out.setdefault((as_date(end), key), {m: 0 for m in MEASURES} | {"cei": float("nan"), "seen": False})
        row.update(values)

    # balances at every period end and at the day before every period start (CEI's opening AR)
    begin = {e: s - dt.timedelta(days=1) for s, e in periods}
    balances: dict[tuple[dt.date, str], tuple[int, int, int]] = {}
    for chunk in date_chunks(set(begin) | (set(begin.values()) if with_cei else set()), dates_per_query(conn)):
        oi = open_items_over(chunk, flt)
        stmt = (sa.select(oi.c.as_of, ckey, sa.cast(sa.func.count(sa.distinct(oi.c.customer_id)), sa.BigInteger),
                          isum(oi.c.open_cents), sum_if(oi.c.days_past_due > 0, oi.c.open_cents))
                .select_from(oi.join(cust, cust.c.id == oi.c.customer_id)).group_by(oi.c.as_of, ckey))
        balances.update({(as_date(d), k): (n, a, o) for d, k, n, a, o in conn.execute(stmt)})

    sales: dict[tuple[dt.date, str], int] = {}
    if with_cei:
        per = periods_table(periods, "periods_sales")
        sales_c = credit_sales(None, max(e for _, e in periods), flt, by=(inv.c.customer_id,), periods=per).subquery()
        sales = {(as_date(e), k): int(v) for e, k, v in conn.execute(
            sa.select(sales_c.c.period_end, ckey, isum(sales_c.c.sales_cents))
            .select_from(sales_c.join(cust, cust.c.id == sales_c.c.customer_id))
            .group_by(sales_c.c.period_end, ckey))}

    accounts = dict(conn.execute(sa.select(ckey, sa.cast(sa.func.count(), sa.BigInteger)).where(*portfolio)
                                 .group_by(ckey)).all())
    keys = {k for (_, k) in balances} | set(accounts) | {k for (_, k) in sales}
    for s, e in periods:
        for k in keys:
            n, ar_c, od_c = balances.get((e, k), (0, 0, 0))
            _, ar_b, _ = balances.get((begin[e], k), (0, 0, 0))
            value = cei_fraction(ar_b, sales.get((e, k), 0), ar_c, ar_c - od_c) if k and with_cei else None
            row = dict(accounts_with_balance=n, ar_cents=ar_c, overdue_cents=od_c,
                       cei=float("nan") if value is None else float(value),
                       cei_begin_cents=ar_b, cei_sales_cents=sales.get((e, k), 0))
            if (e, k) in balances:
                put(e, k, seen=True, **row)
            if k in accounts:
                put(e, k, accounts=accounts[k], **row)

    per = periods_table(periods, "periods_acts")
    touched = sa.func.count(sa.distinct(sa.case((is_contact(act.c.type), act.c.customer_id))))
    for e, k, n_act, n_touch in conn.execute(
            sa.select(per.c.period_end, ckey, sa.cast(sa.func.count(), sa.BigInteger), sa.cast(touched, sa.BigInteger))
            .select_from(per.join(act, sa.and_(act.c.occurred_at >= per.c.ts_start, act.c.occurred_at < per.c.ts_stop))
                         .join(cust, cust.c.id == act.c.customer_id))
            .where(*portfolio).group_by(per.c.period_end, ckey)):
        put(e, k, activities=n_act, accounts_touched=n_touch, seen=True)

    per = periods_table(periods, "periods_cash")
    cash_stmt = (
        sa.select(per.c.period_end, ckey, isum(apps.c.amount_cents))
        .select_from(per.join(apps, sa.and_(apps.c.applied_date >= per.c.period_start,
                                            apps.c.applied_date <= per.c.period_end))
                     .join(inv, inv.c.id == apps.c.invoice_id).join(cust, cust.c.id == inv.c.customer_id))
        .where(apps.c.receipt_id.is_not(None))
        .group_by(per.c.period_end, ckey)
    )
    for e, k, cash in conn.execute(flt.apply_to_invoices(cash_stmt)):
        put(e, k, collected_cents=cash, seen=True)

    ev = promise_eval(periods_table(periods, "periods_ptp"), flt, grace_days)
    pkey = collector_key(cust.c.collector_id)
    for e, k, made, kept, broken in conn.execute(
            sa.select(ev.c.period_end, pkey, sa.cast(sa.func.count(ev.c.id), sa.BigInteger),
                      count_if(ev.c.status == "kept"), count_if(ev.c.status == "broken"))
            .select_from(ev.join(cust, cust.c.id == ev.c.customer_id)).group_by(ev.c.period_end, pkey)):
        put(e, k, promises_made=made, promises_kept=kept, promises_broken=broken, seen=True)

    if severe_dpd is not None:
        for _, e in periods:
            cc = _past_due_accounts(e, flt, severe_dpd, recent_days)
            for k, n, hit in conn.execute(sa.select(cc.c.ckey, sa.cast(sa.func.count(), sa.BigInteger),
                                                    isum(cc.c.contacted)).group_by(cc.c.ckey)):
                put(e, k, severe_accounts=n, severe_touched=hit)
    if flt.collectors:
        out = {key: v for key, v in out.items() if key[1] in flt.collectors}
    return out


def _names(conn) -> dict[str, str]:
    return dict(conn.execute(sa.select(coll.c.id, coll.c.name)).all())


def _ordered(measures: dict) -> list:
    """(period end, key) pairs by period end, collectors by id, unassigned last."""
    return sorted(measures, key=lambda x: (x[0], x[1] == "", x[1]))


_COLLECTOR_COLS = {
    "collector_id": "str", "collector_name": "str", "accounts": "int", "accounts_with_balance": "int",
    "ar_cents": "int", "overdue_cents": "int", "accounts_touched": "int", "activities": "int",
    "working_days": "int", "activities_per_day": "float", "collected_cents": "int", "cei": "float",
    "promises_made": "int", "promises_kept": "int", "promises_broken": "int", "ptp_kept_pct": "float",
    "severe_accounts": "int", "severe_touched": "int", "severe_touched_pct": "float",
}


def collector_kpis(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                   grace_days: int = DEFAULT_GRACE_DAYS, severe_dpd: int = 60,
                   recent_days: int = 7) -> pd.DataFrame:
    """Per-collector KPIs for the period ``[start, end]`` (:func:`collector_measures` for one period).

    Portfolio = customers currently assigned to the collector (``customers.collector_id``).

    * ``accounts``: customers in the portfolio; ``accounts_with_balance``: of those, with an open
      item at ``end``.
    * ``ar_cents`` / ``overdue_cents``: Σ open amount at ``end`` / of items with days_past_due > 0
      (as-of reconstruction, :func:`analytics.ledger.open_items_over`).
    * ``accounts_touched``: portfolio customers with >= 1 contact (:func:`analytics.ledger.is_contact`)
      in the period; ``activities``: activities of any type on the portfolio in the period;
      ``activities_per_day`` = activities / ``working_days`` (Mon–Fri days in the period).
    * ``collected_cents``: cash applications (from receipts) dated in the period to the portfolio's
      items.
    * ``cei``: Collection Effectiveness Index of the portfolio for the period
      (:func:`analytics.kpis.ar.cei_fraction` of its opening AR, credit sales, closing AR and closing
      current AR — the same figure as :func:`analytics.kpis.ar.cei` narrowed to the collector; NaN for
      the unassigned row or when undefined).
    * ``promises_made/kept/broken``, ``ptp_kept_pct``: promises made in the period, evaluated at
      ``end`` (:func:`analytics.ledger.promise_outcomes`); ptp_kept_pct = 100 × kept / (kept + broken).
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
    check_period(start, end)
    flt, currency = scope(conn, flt)
    measures = collector_measures(conn, [(start, end)], flt, grace_days, severe_dpd, recent_days)
    return collector_frame(conn, measures, start, end, currency)


def collector_frame(conn: sa.Connection, measures: dict, start: dt.date, end: dt.date, currency: str) -> pd.DataFrame:
    """The :func:`collector_kpis` table from :func:`collector_measures` of one period (of one currency, or
    added up in a reporting currency by :func:`analytics.fx.collector_kpis`).

    Parameters
    ----------
    conn : sqlalchemy.Connection
        For the collectors' names.
    measures : dict
        {(period end, collector key): measures} of one period.
    start, end : datetime.date
        The period (working days for activities per day).
    currency : str
        What the money columns are in.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`collector_kpis`; ``attrs["currency"]``.

    Example
    -------
    >>> collector_frame(conn, collector_measures(conn, [(s, e)], flt), s, e, "USD")  # doctest: +SKIP
    """
    names = _names(conn)
    wd = working_days(start, end)
    rows = []
    for key in _ordered(measures):
        m, k = measures[key], key[1]
        rows.append((
            k or None, names.get(k, k) if k else UNASSIGNED, m["accounts"], m["accounts_with_balance"],
            m["ar_cents"], m["overdue_cents"], m["accounts_touched"], m["activities"], wd,
            ratio(m["activities"], wd), m["collected_cents"], m["cei"], m["promises_made"], m["promises_kept"],
            m["promises_broken"], pct(m["promises_kept"], m["promises_kept"] + m["promises_broken"]),
            m["severe_accounts"], m["severe_touched"], pct(m["severe_touched"], m["severe_accounts"]),
        ))
    df = frame(rows, _COLLECTOR_COLS)
    df.attrs["currency"] = currency
    return df


_TREND_COLS = {"as_of": "date", "collector_id": "str", "collector_name": "str", "ar_cents": "int",
               "overdue_cents": "int", "activities": "int", "accounts_touched": "int", "collected_cents": "int",
               "promises_kept": "int", "promises_broken": "int", "ptp_kept_pct": "float"}


def collector_trend(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER,
                    grace_days: int = DEFAULT_GRACE_DAYS) -> pd.DataFrame:
    """Monthly collector KPIs from ``start`` to ``end``: one row per (month end, collector).

    Months are the calendar months ending in ``[start, end]``, plus the partial month up to ``end``
    when ``end`` is not a month end; ``as_of`` is the month end (or ``end``). The measures and their
    definitions are those of :func:`collector_kpis` (same queries, :func:`collector_measures`, over
    all months at once; on a large ledger a few month ends per balance query:
    :func:`analytics.ledger.dates_per_query`). Rows appear for collectors with a balance, activity,
    cash or promises in the month. Unassigned customers have ``collector_id`` missing.

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
    check_period(start, end)
    months = month_periods(start, end)
    flt, currency = scope(conn, flt)
    if not months:
        return frame([], _TREND_COLS)
    measures = collector_measures(conn, months, flt, grace_days, with_cei=False)  # the trend shows no CEI
    names = _names(conn)
    rows = []
    for key in _ordered(measures):
        m, (as_of, k) = measures[key], key
        if not m["seen"]:  # only collectors with a balance, activity, cash or promises in the month
            continue
        rows.append((as_of, k or None, names.get(k, k) if k else UNASSIGNED, m["ar_cents"], m["overdue_cents"],
                     m["activities"], m["accounts_touched"], m["collected_cents"], m["promises_kept"],
                     m["promises_broken"], pct(m["promises_kept"], m["promises_kept"] + m["promises_broken"])))
    df = frame(rows, _TREND_COLS)
    df.attrs["currency"] = currency
    return df
