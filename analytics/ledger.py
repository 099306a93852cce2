"""As-of reconstruction of the AR ledger, as SQL.

Every metric is computed "as of" a date D from history, not from current status:

* An item (invoice, debit memo or credit memo) exists at D when ``invoice_date <= D``.
* Its **open amount at D** is ``amount − Σ applications to it dated <= D + Σ applications *from* it
  (a credit memo consumed against an invoice) dated <= D + Σ adjustments dated <= D`` (adjustments are
  signed as their effect: a write-off is negative). An item is **open at D** when that is non-zero.
* **Days past due at D** = D − due date.

The functions here return SQLAlchemy selectables; nothing is loaded into Python. Filters
(business unit, region, currency, collector, customer) are a :class:`LedgerFilter`, a frozen and
hashable value that doubles as part of a cache key.

Example
-------
>>> import datetime as dt
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> q = open_items(dt.date(2024, 3, 31))
>>> with engine.connect() as conn:
...     conn.execute(sa.select(sa.func.count()).select_from(q)).scalar()
0
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Iterable

import sqlalchemy as sa

from analytics import schema
from analytics.db import date_values, days_between

inv = schema.invoices
cust = schema.customers
apps = schema.applications
adj = schema.adjustments


@dataclasses.dataclass(frozen=True)
class LedgerFilter:
    """Which slice of the ledger to look at. Empty tuples mean "all".

    Parameters
    ----------
    business_units, regions, currencies, collectors, customers : tuple of str
        Keep only customers (and their items) matching every non-empty criterion. ``currencies``
        filters on the document currency.

    Example
    -------
    >>> LedgerFilter(currencies=("EUR",)).is_empty()
    False
    """

    business_units: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    collectors: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not any(dataclasses.astuple(self))

    def customer_clause(self, customer_id_col) -> sa.ColumnElement[bool] | None:
        """A WHERE clause restricting ``customer_id_col`` to the filtered customers, or None."""
        conds = []
        if self.business_units:
            conds.append(cust.c.business_unit.in_(self.business_units))
        if self.regions:
            conds.append(cust.c.region.in_(self.regions))
        if self.collectors:
            conds.append(cust.c.collector_id.in_(self.collectors))
        clauses = []
        if conds:
            clauses.append(customer_id_col.in_(sa.select(cust.c.id).where(*conds)))
        if self.customers:
            clauses.append(customer_id_col.in_(self.customers))
        return sa.and_(*clauses) if clauses else None

    def apply_to_invoices(self, stmt: sa.Select, invoices=inv) -> sa.Select:
        """Add this filter's conditions on an invoices table (or alias) to ``stmt``."""
        clause = self.customer_clause(invoices.c.customer_id)
        if clause is not None:
            stmt = stmt.where(clause)
        if self.currencies:
            stmt = stmt.where(invoices.c.currency.in_(self.currencies))
        return stmt


NO_FILTER = LedgerFilter()


def settlements() -> sa.Subquery:
    """Every movement that changes an item's open amount after it is issued.

    Columns: ``item_id``, ``move_date``, ``delta_cents`` (signed effect on the item's open amount),
    ``kind`` (``cash``, ``credit``, ``credit_used``, ``write_off``, ``adjustment``, ``deduction``).
    """
    cash = sa.select(
        apps.c.invoice_id.label("item_id"), apps.c.applied_date.label("move_date"),
        (-apps.c.amount_cents).label("delta_cents"),
        sa.case((apps.c.receipt_id.is_not(None), sa.literal("cash")), else_=sa.literal("credit")).label("kind"),
    )
    credit_used = sa.select(
        apps.c.credit_memo_id.label("item_id"), apps.c.applied_date.label("move_date"),
        apps.c.amount_cents.label("delta_cents"), sa.literal("credit_used").label("kind"),
    ).where(apps.c.credit_memo_id.is_not(None))
    adjust = sa.select(
        adj.c.invoice_id.label("item_id"), adj.c.adj_date.label("move_date"),
        adj.c.amount_cents.label("delta_cents"), adj.c.kind.label("kind"),
    )
    return sa.union_all(cash, credit_used, adjust).subquery("settlements")


def open_items(as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> sa.Subquery:
    """Items open at ``as_of`` with their open amount and days past due.

    Columns: ``invoice_id, customer_id, doc_type, invoice_date, due_date, currency, amount_cents,
    open_cents, days_past_due``.

    Parameters
    ----------
    as_of : datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    sqlalchemy.Subquery
    """
    d = sa.literal(as_of, sa.Date)
    s = settlements()
    settled = (
        sa.select(s.c.item_id, sa.func.sum(s.c.delta_cents).label("settled_cents"))
        .where(s.c.move_date <= d)
        .group_by(s.c.item_id)
        .subquery("settled")
    )
    open_cents = inv.c.amount_cents + sa.func.coalesce(settled.c.settled_cents, 0)
    stmt = (
        sa.select(
            inv.c.id.label("invoice_id"), inv.c.customer_id, inv.c.doc_type, inv.c.invoice_date, inv.c.due_date,
            inv.c.currency, inv.c.amount_cents, open_cents.label("open_cents"),
            days_between(inv.c.due_date, d).label("days_past_due"),
        )
        .select_from(inv.outerjoin(settled, settled.c.item_id == inv.c.id))
        .where(inv.c.invoice_date <= d, open_cents != 0)
    )
    return flt.apply_to_invoices(stmt).subquery("open_items")


def item_life() -> sa.Subquery:
    """Per item with any settlement: total settled (all dates) and the date of its last movement.

    Columns: ``item_id``, ``settled_cents`` (Σ ``delta_cents`` over all dates), ``last_move`` (latest
    ``move_date``). An item whose ``amount_cents + settled_cents`` is 0 is closed from ``last_move`` on:
    at any date >= ``last_move`` its open amount is that final total, 0.
    """
    s = settlements()
    return (sa.select(s.c.item_id, sa.func.sum(s.c.delta_cents).label("settled_cents"),
                      sa.func.max(s.c.move_date).label("last_move"))
            .group_by(s.c.item_id).subquery("item_life"))


#: Bounds the (document, as-of date) pairs one :func:`open_items_over` query should be asked for. Building
#: the open items at many dates needs a band join that DuckDB cannot spill to disk, so under its memory
#: limit (``db.DUCKDB_MEMORY_DEFAULT``, 1GB) a 12-month-end collector trend of a 5M-document ledger ran
#: out of memory. 30M = 6 dates per query at 5M documents, 30 at 1M (one query for a 24-month trend).
#: Callers split their dates with :func:`dates_per_query` and :func:`date_chunks`. See docs/scale.md.
OPEN_ITEM_DATES_PER_QUERY = 30_000_000


def dates_per_query(conn: sa.Connection) -> int:
    """How many as-of dates one :func:`open_items_over` query should take on this ledger (at least 2).

    :data:`OPEN_ITEM_DATES_PER_QUERY` divided by the number of documents (a cheap count).
    """
    n = conn.execute(sa.select(sa.func.count()).select_from(inv)).scalar() or 0
    return max(2, OPEN_ITEM_DATES_PER_QUERY // max(1, int(n)))


def date_chunks(dates: Iterable[dt.date], size: int, overlap: bool = False) -> list[list[dt.date]]:
    """Sorted ``dates`` in runs of at most ``size``; with ``overlap`` runs share their end dates, so that
    every pair of consecutive dates lies in one run (roll rates).

    Example
    -------
    >>> date_chunks([1, 2, 3, 4, 5], 3)
    [[1, 2, 3], [4, 5]]
    >>> date_chunks([1, 2, 3, 4, 5], 3, overlap=True)
    [[1, 2, 3], [3, 4, 5]]
    """
    dates = sorted(set(dates))
    size = max(2, int(size))
    if not overlap:
        return [dates[i:i + size] for i in range(0, len(dates), size)]
    return [dates[i:i + size] for i in range(0, max(1, len(dates) - 1), size - 1)]


#: Stands in for "never closed" in the close-date band join (a typed parameter, portable).
_NEVER = dt.date(9999, 12, 31)


def open_items_over(dates: Iterable[dt.date], flt: LedgerFilter = NO_FILTER) -> sa.Subquery:
    """Like :func:`open_items` for many as-of dates at once (one query for a trend).

    Columns: ``as_of`` plus the columns of :func:`open_items`.

    Only (date, item) pairs that can be open are built: an item is a candidate at D when
    ``invoice_date <= D < close date``, where the close date (:func:`item_life`) is the date of the last
    movement of an item that ends fully settled (its invoice date when it never had a balance), and
    "never" otherwise. At D >= close date the open amount is the final total, 0, so skipping those pairs
    changes nothing; it keeps a 24-date trend of a ledger of millions of mostly-paid invoices to the
    items actually open at each date instead of every item issued by then. Settlements dated <= D are
    then summed for the candidates only.
    """
    dates = sorted(set(dates))
    dv = date_values(dates)
    life = item_life()
    settled_total = sa.func.coalesce(life.c.settled_cents, 0)
    close_date = sa.case(
        (inv.c.amount_cents + settled_total == 0, sa.func.coalesce(life.c.last_move, inv.c.invoice_date)),
        else_=sa.literal(_NEVER, sa.Date))
    cand = (
        sa.select(dv.c.as_of, inv.c.id.label("invoice_id"), inv.c.customer_id, inv.c.doc_type, inv.c.invoice_date,
                  inv.c.due_date, inv.c.currency, inv.c.amount_cents)
        .select_from(dv.join(inv.outerjoin(life, life.c.item_id == inv.c.id),
                             sa.and_(inv.c.invoice_date <= dv.c.as_of, dv.c.as_of < close_date)))
    )
    cand = flt.apply_to_invoices(cand).subquery("open_candidates")
    s = settlements()
    open_cents = cand.c.amount_cents + sa.func.coalesce(sa.func.sum(s.c.delta_cents), 0)
    stmt = (
        sa.select(
            cand.c.as_of, cand.c.invoice_id, cand.c.customer_id, cand.c.doc_type, cand.c.invoice_date,
            cand.c.due_date, cand.c.currency, cand.c.amount_cents, open_cents.label("open_cents"),
            days_between(cand.c.due_date, cand.c.as_of).label("days_past_due"),
        )
        .select_from(cand.outerjoin(s, sa.and_(s.c.item_id == cand.c.invoice_id, s.c.move_date <= cand.c.as_of)))
        .group_by(cand.c.as_of, cand.c.invoice_id, cand.c.customer_id, cand.c.doc_type, cand.c.invoice_date,
                  cand.c.due_date, cand.c.currency, cand.c.amount_cents)
        .having(open_cents != 0)
    )
    return stmt.subquery("open_items_over")
