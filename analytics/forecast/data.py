"""Everything the forecasters read from the ledger, as SQL aggregates known at an as-of date.

:func:`load_history` runs a handful of grouped queries and returns a :class:`History`: weekly
receipts and weekly sales (aggregated in the database), the open receivables grouped by customer
and due date, and the empirical days-to-pay histograms per customer. Every query is bounded by the
as-of date (``receipt_date <= as_of`` *and* ``applied_date <= as_of`` for payment histories,
``adj_date <= as_of`` for write-offs, ``invoice_date <= as_of`` for sales), so a forecast made
"as of" a past date uses only what was known then — that is what makes the backtest honest.

**Weeks.** A forecast as of D has week 1 = the seven days D+1 .. D+7, week 2 = D+8 .. D+14, and so on;
history weeks end on D (…, D-13 .. D-7, D-6 .. D). Pass a Sunday to get Monday-to-Sunday weeks.

**Currency.** Amounts are never added across currencies: every query is restricted to one currency,
``flt.currencies`` when it names exactly one, else the ledger's main currency (largest invoiced amount).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import connection, days_between, read_frame
from analytics.errors import UserError
from analytics.ledger import NO_FILTER, LedgerFilter, as_date, default_as_of, open_items, receipt_scope, receivable
from analytics.ledger import resolve_currency as _one_currency
from analytics.ledger import to_units

inv = schema.invoices
rec = schema.receipts
apps = schema.applications
adj = schema.adjustments

#: Days-to-pay (receipt date minus due date) earlier than this are counted at this day.
EARLY_DAYS = -90
#: Longest follow-up supported (days after the due date).
LATE_DAYS = 365


@dataclasses.dataclass(frozen=True)
class History:
    """What the ledger knew at ``as_of`` (one currency). Money in cents.

    Attributes
    ----------
    as_of : datetime.date
    currency : str
    receipts : pandas.Series
        Weekly cash receipts (float cents) indexed by week start, ascending, the last week ending on
        ``as_of``; starts with the first week that has a receipt. Weeks without receipts are 0.
    sales : pandas.Series
        Weekly invoiced amount (invoices and debit memos), same index convention.
    open_groups : pandas.DataFrame
        ``customer_id, due_date, open_cents, open_sq_cents, items``: open invoices/debit memos with a
        positive open amount at ``as_of``, grouped by customer and due date (``open_sq_cents`` is the
        sum of squared open amounts, for the variance).
    pay_days : pandas.DataFrame
        ``customer_id, days, censor, cents``: cash paid on the window's invoices (due in
        ``(as_of - lookback, as_of - EARLY_DAYS]``) by ``days`` = receipt date - due date and ``censor`` =
        as_of - due date (how long the invoice has been watched). Only cash received *and applied* by as-of.
    cohort : pandas.DataFrame
        ``customer_id, censor, invoices, basis_cents, gross_cents``: the window's invoices per customer and
        age; ``basis_cents`` is their amount less credit memos and non-write-off adjustments known at as-of
        (write-offs stay in: a written-off amount is an unpaid amount).
    invoice_days : pandas.DataFrame
        ``days, cents``: pooled cash by days from invoice date to receipt date (for not-yet-issued
        invoices), receipts in the lookback window.
    unapplied : pandas.DataFrame
        ``customer_id, cents``: cash received by as-of and not applied by then, per customer.
    follow_up_days : int
    """

    as_of: dt.date
    currency: str
    receipts: pd.Series
    sales: pd.Series
    open_groups: pd.DataFrame
    pay_days: pd.DataFrame
    cohort: pd.DataFrame
    invoice_days: pd.DataFrame
    unapplied: pd.DataFrame
    follow_up_days: int = 120




def resolve_currency(conn, flt: LedgerFilter = NO_FILTER) -> tuple[str, LedgerFilter]:
    """The one currency a forecast is made in, and the filter restricted to it.

    The rule is :func:`analytics.ledger.resolve_currency` (the filter's single currency, else the
    ledger's main currency; several are refused); this keeps the forecast modules' ``(currency,
    filter)`` order and refuses a filter with no invoices at all (nothing to forecast).

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    flt : LedgerFilter

    Returns
    -------
    (str, LedgerFilter)

    Example
    -------
    >>> resolve_currency(engine, LedgerFilter(currencies=("EUR",)))[0]   # doctest: +SKIP
    'EUR'
    """
    named = bool(flt.currencies)
    flt, currency = _one_currency(conn, flt)
    if not named:
        with connection(conn) as c:
            if c.execute(flt.apply_to_invoices(sa.select(inv.c.id)).limit(1)).first() is None:
                raise UserError("the ledger has no invoices for this filter: nothing to forecast")
    return currency, flt


def _receipt_filter(flt: LedgerFilter, as_of: dt.date) -> list:
    return receipt_scope(flt, as_of=as_of)


def _week_index(date_col, anchor: dt.date):
    """Whole weeks from ``anchor`` to ``date_col`` (date >= anchor), portable integer division."""
    k = days_between(sa.literal(anchor, sa.Date), date_col)
    return sa.cast((k - k % 7) / 7, sa.Integer)


def _weekly(conn, date_col, amount_col, from_, conds, first: dt.date, last: dt.date) -> pd.Series:
    """Sum ``amount_col`` per 7-day week starting at ``first`` for dates in [first, last]; zeros filled."""
    wk = _week_index(date_col, first).label("wk")
    stmt = (
        sa.select(wk, sa.func.sum(amount_col).label("cents"))
        .select_from(from_)
        .where(date_col >= sa.literal(first, sa.Date), date_col <= sa.literal(last, sa.Date), *conds)
        .group_by(wk)
    )
    with connection(conn) as c:
        rows = c.execute(stmt).all()
    n = (last - first).days // 7 + 1
    values = np.zeros(n)
    for r in rows:
        values[int(r.wk)] += float(r.cents or 0)
    index = pd.DatetimeIndex([pd.Timestamp(first + dt.timedelta(days=7 * i)) for i in range(n)], name="week_start")
    return pd.Series(values, index=index, dtype=float)


def receipts_by_week(conn, first: dt.date, last: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.Series:
    """Cash receipts (float cents) per 7-day week starting at ``first``, for receipts dated in [first, last].

    The same receipts as :func:`weekly_receipts` (``flt``'s currency and customers), over a given range;
    weeks without a receipt are 0. Aggregated in SQL.

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    first, last : datetime.date
        Inclusive range; week ``k`` starts on ``first + 7k``.
    flt : LedgerFilter

    Returns
    -------
    pandas.Series
        Indexed by week start (``DatetimeIndex`` named ``week_start``).

    Example
    -------
    >>> receipts_by_week(engine, dt.date(2024, 7, 1), dt.date(2024, 9, 29)).size  # doctest: +SKIP
    13
    """
    return _weekly(conn, rec.c.receipt_date, rec.c.amount_cents, rec, _receipt_filter(flt, last), first, last)


def _history_start(conn, as_of: dt.date, flt: LedgerFilter) -> dt.date | None:
    stmt = sa.select(sa.func.min(rec.c.receipt_date)).where(rec.c.receipt_date <= as_of, *_receipt_filter(flt, as_of))
    with connection(conn) as c:
        first = c.execute(stmt).scalar()
    if first is None:
        return None
    first = as_date(first)
    weeks = (as_of - first).days // 7
    return as_of - dt.timedelta(days=7 * weeks + 6)


def weekly_receipts(conn, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.Series:
    """Weekly cash receipts (float cents) in weeks ending on ``as_of``, from the first receipt on.

    Receipts are the ``receipts`` table by ``receipt_date`` (unidentified cash included unless the
    filter selects customers), restricted to ``flt``'s currency. Aggregated in SQL.

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter
        Should name one currency (see :func:`resolve_currency`).

    Returns
    -------
    pandas.Series
        Indexed by week start (``DatetimeIndex`` named ``week_start``); empty if there is no receipt.

    Example
    -------
    >>> weekly_receipts(engine, dt.date(2024, 6, 30), LedgerFilter(currencies=("USD",)))  # doctest: +SKIP
    """
    first = _history_start(conn, as_of, flt)
    if first is None:
        return pd.Series([], index=pd.DatetimeIndex([], name="week_start"), dtype=float)
    return _weekly(conn, rec.c.receipt_date, rec.c.amount_cents, rec, _receipt_filter(flt, as_of), first, as_of)


def weekly_sales(conn, as_of: dt.date, first: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.Series:
    """Weekly invoiced amount (invoices and debit memos, float cents), weeks from ``first`` ending on ``as_of``.

    Example
    -------
    >>> weekly_sales(engine, dt.date(2024, 6, 30), dt.date(2024, 1, 1))  # doctest: +SKIP
    """
    conds = [receivable(inv.c.doc_type)]
    if flt.currencies:
        conds.append(inv.c.currency.in_(flt.currencies))
    clause = flt.customer_clause(inv.c.customer_id)
    if clause is not None:
        conds.append(clause)
    return _weekly(conn, inv.c.invoice_date, inv.c.amount_cents, inv, conds, first, as_of)


def actual_receipts(conn, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Cash actually received per week, weeks starting on ``start`` (the last one may be cut at ``end``).

    Source: ``receipts.amount_cents`` summed by ``receipt_date`` in SQL, one currency (``flt``'s,
    else the main one).

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    start, end : datetime.date
        Inclusive range.
    flt : LedgerFilter

    Returns
    -------
    pandas.DataFrame
        ``week_start`` (date), ``actual`` (currency units, float), ``days`` (days of the week inside
        the range: 7 except perhaps the last).

    Example
    -------
    >>> actual_receipts(engine, dt.date(2024, 1, 1), dt.date(2024, 3, 31))  # doctest: +SKIP
    """
    if end < start:
        raise UserError(f"end {end} is before start {start}")
    _, flt = resolve_currency(conn, flt)
    s = _weekly(conn, rec.c.receipt_date, rec.c.amount_cents, rec, _receipt_filter(flt, end), start, end)
    starts = [d.date() for d in s.index]
    return pd.DataFrame({
        "week_start": starts,
        "actual": [cents_to_units(v) for v in s.values],
        "days": [min(7, (end - d).days + 1) for d in starts],
    })


#: Cents (possibly fractional, e.g. an expectation) to currency units, half-up: :func:`analytics.ledger.to_units`.
cents_to_units = to_units


def ledger_end(conn, flt: LedgerFilter = NO_FILTER) -> dt.date:
    """The default as-of date of a forecast and the end of its backtest: the ledger's last business date
    for ``flt`` in its currency (:func:`analytics.ledger.default_as_of`: the latest invoice or receipt date).

    Example
    -------
    >>> ledger_end(engine)  # doctest: +SKIP
    datetime.date(2026, 10, 31)
    """
    _, flt = resolve_currency(conn, flt)
    end = default_as_of(conn, flt, today_if_empty=False)
    if end is None:
        raise UserError("the ledger has no invoices or receipts for this filter")
    return end


def load_history(conn, as_of: dt.date, flt: LedgerFilter = NO_FILTER, lookback_days: int = 365,
                 follow_up_days: int = 120) -> History:
    """Read everything the forecasters need, as known at ``as_of`` (SQL aggregates only).

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter
        Its currency (or the main currency) fixes the currency of the whole forecast.
    lookback_days : int
        Payment behaviour is learnt from invoices due in the ``lookback_days`` before ``as_of``.
    follow_up_days : int
        Payment days are tracked up to this many days after the due date; later is "not paid".

    Returns
    -------
    History

    Example
    -------
    >>> h = load_history(engine, dt.date(2013, 6, 30))  # doctest: +SKIP
    >>> h.receipts.tail(4)                               # doctest: +SKIP
    """
    with connection(conn) as c:
        currency, flt = resolve_currency(c, flt)
        receipts = weekly_receipts(c, as_of, flt)
        first = receipts.index[0].date() if len(receipts) else as_of - dt.timedelta(days=6)
        sales = weekly_sales(c, as_of, first, flt)

        oi = open_items(as_of, flt)
        open_f = sa.cast(oi.c.open_cents, sa.Float)
        stmt = (
            sa.select(oi.c.customer_id, oi.c.due_date, sa.func.sum(oi.c.open_cents).label("open_cents"),
                      sa.func.sum(open_f * open_f).label("open_sq_cents"), sa.func.count().label("items"))
            .where(oi.c.open_cents > 0, receivable(oi.c.doc_type))
            .group_by(oi.c.customer_id, oi.c.due_date)
            .order_by(oi.c.customer_id, oi.c.due_date)
        )
        open_groups = read_frame(c, stmt, ["customer_id", "due_date", "open_cents",
                                                                  "open_sq_cents", "items"])
        open_groups["due_date"] = [as_date(d) for d in open_groups["due_date"]]
        open_groups["open_cents"] = open_groups["open_cents"].astype(float)
        open_groups["open_sq_cents"] = open_groups["open_sq_cents"].astype(float)

        d = sa.literal(as_of, sa.Date)
        # Payment window: invoices due in (as_of - lookback, as_of - EARLY_DAYS]. Each is watched from its due
        # date up to as-of: "censor" = as_of - due date (its age). Cash counts only if received and applied by as-of.
        window = [inv.c.amount_cents > 0, inv.c.invoice_date <= d,
                  inv.c.due_date > sa.literal(as_of - dt.timedelta(days=lookback_days), sa.Date),
                  inv.c.due_date <= sa.literal(as_of - dt.timedelta(days=EARLY_DAYS), sa.Date)]
        joined = apps.join(rec, apps.c.receipt_id == rec.c.id).join(inv, apps.c.invoice_id == inv.c.id)
        days_due = days_between(inv.c.due_date, rec.c.receipt_date)
        censor = days_between(inv.c.due_date, d)
        known = [rec.c.receipt_date <= d, apps.c.applied_date <= d]
        stmt = flt.apply_to_invoices(
            sa.select(inv.c.customer_id, days_due.label("days"), censor.label("censor"),
                      sa.func.sum(apps.c.amount_cents).label("cents"))
            .select_from(joined).where(*known, *window)
            .group_by(inv.c.customer_id, days_due, censor)
        )
        pay_days = read_frame(c, stmt, ["customer_id", "days", "censor", "cents"])

        # Exposure: amount less non-cash settlements known at as_of (credit memos applied, deductions, other
        # adjustments) per customer and age. Write-offs are NOT deducted: a written-off amount is unpaid.
        credit = (sa.select(apps.c.invoice_id, sa.func.sum(apps.c.amount_cents).label("cents"))
                  .where(apps.c.credit_memo_id.is_not(None), apps.c.applied_date <= d)
                  .group_by(apps.c.invoice_id).subquery("credit"))
        other = (sa.select(adj.c.invoice_id, sa.func.sum(adj.c.amount_cents).label("cents"))
                 .where(adj.c.kind != "write_off", adj.c.adj_date <= d)
                 .group_by(adj.c.invoice_id).subquery("other_adj"))
        basis = inv.c.amount_cents - sa.func.coalesce(credit.c.cents, 0) + sa.func.coalesce(other.c.cents, 0)
        stmt = flt.apply_to_invoices(
            sa.select(inv.c.customer_id, censor.label("censor"), sa.func.count().label("invoices"),
                      sa.func.sum(basis).label("basis_cents"), sa.func.sum(inv.c.amount_cents).label("gross_cents"))
            .select_from(inv.outerjoin(credit, credit.c.invoice_id == inv.c.id)
                         .outerjoin(other, other.c.invoice_id == inv.c.id))
            .where(*window).group_by(inv.c.customer_id, censor)
        )
        cohort = read_frame(c, stmt, ["customer_id", "censor", "invoices", "basis_cents",
                                                             "gross_cents"])

        # New sales: pooled cash by days from invoice date to receipt (receipts in the lookback window).
        days_inv = days_between(inv.c.invoice_date, rec.c.receipt_date).label("days")
        stmt = flt.apply_to_invoices(
            sa.select(days_inv, sa.func.sum(apps.c.amount_cents).label("cents"))
            .select_from(joined)
            .where(*known, inv.c.amount_cents > 0,
                   rec.c.receipt_date > sa.literal(as_of - dt.timedelta(days=lookback_days), sa.Date))
            .group_by(days_inv)
        )
        invoice_days = read_frame(c, stmt, ["days", "cents"])

        # Cash received by as-of but not applied by then: it already paid some of the "open" items.
        rconds = [rec.c.receipt_date <= d, rec.c.customer_id.is_not(None), *_receipt_filter(flt, as_of)]
        applied = (sa.select(apps.c.receipt_id, sa.func.sum(apps.c.amount_cents).label("cents"))
                   .where(apps.c.receipt_id.is_not(None), apps.c.applied_date <= d)
                   .group_by(apps.c.receipt_id).subquery("applied"))
        left = rec.c.amount_cents - sa.func.coalesce(applied.c.cents, 0)
        stmt = (sa.select(rec.c.customer_id, sa.func.sum(left).label("cents"))
                .select_from(rec.outerjoin(applied, applied.c.receipt_id == rec.c.id))
                .where(*rconds, left > 0).group_by(rec.c.customer_id))
        unapplied = read_frame(c, stmt, ["customer_id", "cents"])

    for frame in (pay_days, invoice_days, unapplied):
        frame["cents"] = frame["cents"].astype(float)
    for col in ("basis_cents", "gross_cents"):
        cohort[col] = cohort[col].astype(float)
    cohort["invoices"] = cohort["invoices"].astype(int)
    cohort["censor"] = cohort["censor"].astype(int)
    pay_days["days"] = pay_days["days"].astype(int)
    pay_days["censor"] = pay_days["censor"].astype(int)
    invoice_days["days"] = invoice_days["days"].astype(int).clip(0, LATE_DAYS + 120)
    return History(as_of=as_of, currency=currency, receipts=receipts, sales=sales, open_groups=open_groups,
                   pay_days=pay_days, cohort=cohort, invoice_days=invoice_days, unapplied=unapplied,
                   follow_up_days=follow_up_days)


def open_by_customer(conn, as_of: dt.date, flt: LedgerFilter = NO_FILTER, limit: int = 15) -> pd.DataFrame:
    """Customers with the largest open invoice balance at ``as_of`` (one currency), for the delay lever.

    Parameters
    ----------
    conn : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter
    limit : int

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, open_cents`` (int), largest first.

    Example
    -------
    >>> open_by_customer(engine, dt.date(2024, 6, 30), limit=5)   # doctest: +SKIP
    """
    _, flt = resolve_currency(conn, flt)
    oi = open_items(as_of, flt)
    cust = schema.customers
    total = sa.func.sum(oi.c.open_cents)
    stmt = (sa.select(oi.c.customer_id, cust.c.name.label("customer_name"), total.label("open_cents"))
            .select_from(oi.join(cust, cust.c.id == oi.c.customer_id))
            .where(oi.c.open_cents > 0, receivable(oi.c.doc_type))
            .group_by(oi.c.customer_id, cust.c.name)
            .order_by(total.desc(), oi.c.customer_id).limit(limit))
    with connection(conn) as c:
        frame = read_frame(c, stmt, ["customer_id", "customer_name", "open_cents"])
    frame["open_cents"] = frame["open_cents"].astype("int64")
    return frame
