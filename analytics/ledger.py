"""As-of reconstruction of the AR ledger, as SQL, and the one home of every business definition.

Every metric is computed "as of" a date D from history, not from current status:

* An item (invoice, debit memo or credit memo) exists at D when ``invoice_date <= D``.
* Its **open amount at D** is ``amount − Σ applications to it dated <= D + Σ applications *from* it
  (a credit memo consumed against an invoice) dated <= D + Σ adjustments dated <= D`` (adjustments are
  signed as their effect: a write-off is negative). An item is **open at D** when that is non-zero.
* **Days past due at D** = D − due date.

The business concepts every page, KPI, the worklist, risk, forecast and cash application share are
defined here once (see ``docs/kpi_definitions.md``, "Concepts"): :func:`receivable`,
:func:`credit_sales`, :func:`dispute_is_open` / :func:`open_disputes_at`, :func:`receipt_scope`,
:func:`returned_receipts` / :func:`is_returned` / :func:`return_reversal`,
:func:`is_contact` / :func:`last_contact`, :func:`promise_outcomes`, :func:`open_amount_cents`,
:func:`resolve_currency`, :func:`default_as_of`, and the value conversions :func:`as_date`,
:func:`parse_date`, :func:`to_units`.

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

import argparse
import dataclasses
import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Iterable

import sqlalchemy as sa

from analytics import schema
from analytics.summaries import movement_sources
from analytics.db import connection, date_values, days_between, read_frame
from analytics.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

inv = schema.invoices
cust = schema.customers
apps = schema.applications
adj = schema.adjustments
rec = schema.receipts
disp = schema.disputes
prom = schema.promises
act = schema.activities


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

    The same rows as :func:`analytics.summaries.movement_sources` (which the derived summary is built
    from), with each movement's kind.

    Columns: ``item_id``, ``move_date``, ``delta_cents`` (signed effect on the item's open amount),
    ``kind`` (``cash``, ``credit``, ``credit_used``, ``write_off``, ``adjustment``, ``deduction``).
    """
    kinds = (sa.case((apps.c.receipt_id.is_not(None), sa.literal("cash")), else_=sa.literal("credit")),
             sa.literal("credit_used"), adj.c.kind)
    parts = []
    for (_table, item, day, delta, extra), kind in zip(movement_sources(), kinds):
        part = sa.select(item.label("item_id"), day.label("move_date"), delta.label("delta_cents"),
                         kind.label("kind"))
        parts.append(part.where(extra) if extra is not None else part)
    return sa.union_all(*parts).subquery("settlements")


def open_items(as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> sa.Subquery:
    """Items open at ``as_of`` with their open amount and days past due.

    Columns: ``invoice_id, customer_id, doc_type, invoice_date, due_date, currency, amount_cents,
    open_cents, days_past_due``.

    The open amount is read from the derived summary (:data:`analytics.schema.item_settlements`, each
    item's settlements over all dates): ``amount + kept total + corrections``, where the corrections
    (:func:`summary_corrections`) take out the kept movements dated after ``as_of`` and add the movements
    written since the summary was last brought up to date. That equals the definition (amount + Σ
    settlements dated <= ``as_of``, :func:`settled_parts`) on any ledger whose applications and
    adjustments were only ever added to, which is how the product writes them (an unapply is a new
    row); ``python -m analytics summaries check`` compares the two.

    Parameters
    ----------
    as_of : datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    sqlalchemy.Subquery
    """
    d = sa.literal(as_of, sa.Date)
    kept = schema.item_settlements
    frm = inv.outerjoin(kept, kept.c.item_id == inv.c.id)
    open_cents = inv.c.amount_cents + sa.func.coalesce(kept.c.settled_cents, 0)
    fix = summary_corrections(d)  # the few movements the kept total has wrong for this date
    frm = frm.outerjoin(fix, fix.c.item_id == inv.c.id)
    open_cents = open_cents + sa.func.coalesce(fix.c.settled_cents, 0)
    stmt = (
        sa.select(
            inv.c.id.label("invoice_id"), inv.c.customer_id, inv.c.doc_type, inv.c.invoice_date, inv.c.due_date,
            inv.c.currency, inv.c.amount_cents, open_cents.label("open_cents"),
            days_between(inv.c.due_date, d).label("days_past_due"),
        )
        .select_from(frm)
        .where(inv.c.invoice_date <= d, open_cents != 0)
    )
    return flt.apply_to_invoices(stmt).subquery("open_items")


def settled_parts(d) -> list[sa.Subquery]:
    """The settlements dated <= ``d`` summed per item, one grouping per source table.

    Three subqueries ``item_id, settled_cents``: applications to the item (cash and credit, negative),
    applications *from* it (a credit memo used, positive) and adjustments. For every item the sum of the
    three equals Σ :func:`settlements` ``delta_cents`` dated <= ``d`` (the same rows, grouped apart).

    Why not group :func:`settlements` once: PostgreSQL cannot estimate the groups of a UNION (it plans
    for 200 where there are a million), so it sized that aggregate for 200 and spilled it to disk at
    1M invoices; grouped per table it reads each column's statistics, and on the applications it
    streams the covering index of migration 0009 (``invoice_id, applied_date`` + ``amount_cents``,
    already in ``invoice_id`` order) instead of hashing a million text keys. Same rows on every engine.

    Parameters
    ----------
    d : datetime.date or SQL date expression
        The as-of date (inclusive).

    Returns
    -------
    list of sqlalchemy.Subquery

    Example
    -------
    >>> [p.name for p in settled_parts(dt.date(2024, 3, 31))]
    ['settled_apps', 'settled_credit_used', 'settled_adjustments']
    """
    if isinstance(d, dt.date):
        d = sa.literal(d, sa.Date)
    parts = []
    for (_table, item, day, delta, extra), name in zip(
            movement_sources(), ("settled_apps", "settled_credit_used", "settled_adjustments")):
        stmt = sa.select(item.label("item_id"), sa.func.sum(delta).label("settled_cents")).where(day <= d)
        parts.append((stmt.where(extra) if extra is not None else stmt).group_by(item).subquery(name))
    return parts


def _summary_marks() -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """The highest applications and adjustments ids :data:`~analytics.schema.item_settlements` includes
    (0 when the summary was never built: every movement is then "written since")."""
    st = schema.settlement_summary_state
    mark = lambda col: sa.func.coalesce(sa.select(col).where(st.c.id == 1).scalar_subquery(), 0)  # noqa: E731
    return mark(st.c.applications_id), mark(st.c.adjustments_id)


def summary_corrections(d) -> sa.Subquery:
    """What turns the kept per-item totals into the open amounts at ``d``.

    A subquery ``item_id, settled_cents``: for each item, Σ movements written since the summary was
    brought up to date (id above the summary's mark) dated <= ``d``, less Σ kept movements (id at or below
    the mark) dated after ``d``. So ``kept total + correction`` = Σ settlements dated <= ``d``. At the
    ledger's end both sets are empty or nearly so: no million-row aggregate is needed for an open amount
    (on PostgreSQL the date indexes of migration 0010 find them without reading the tables).

    Parameters
    ----------
    d : datetime.date or SQL date expression
        The as-of date (inclusive).

    Returns
    -------
    sqlalchemy.Subquery

    Example
    -------
    >>> summary_corrections(dt.date(2024, 3, 31)).c.keys()
    ['item_id', 'settled_cents']
    """
    if isinstance(d, dt.date):
        d = sa.literal(d, sa.Date)
    app_mark, adj_mark = _summary_marks()
    parts = []
    for (table, item, day, delta, extra), mark in zip(movement_sources(), (app_mark, app_mark, adj_mark)):
        new = table.c.id > mark
        amount = sa.case((new, sa.case((day <= d, delta), else_=0)), else_=-delta)
        stmt = sa.select(item.label("item_id"), amount.label("delta_cents")).where(sa.or_(new, day > d))
        parts.append(stmt.where(extra) if extra is not None else stmt)
    moves = sa.union_all(*parts).subquery("correction_moves")
    return (sa.select(moves.c.item_id, sa.cast(sa.func.sum(moves.c.delta_cents), sa.BigInteger).label("settled_cents"))
            .group_by(moves.c.item_id).subquery("corrections"))


def unsummarised() -> sa.Subquery:
    """Movements written since the summary was brought up to date, summed per item: ``item_id,
    settled_cents, last_move``. Empty on a ledger written only through the product (an index range on
    each table's id, so an empty set costs nothing)."""
    app_mark, adj_mark = _summary_marks()
    parts = []
    for (table, item, day, delta, extra), mark in zip(movement_sources(), (app_mark, app_mark, adj_mark)):
        stmt = sa.select(item.label("item_id"), delta.label("delta_cents"), day.label("move_date")).where(
            table.c.id > mark)
        parts.append(stmt.where(extra) if extra is not None else stmt)
    moves = sa.union_all(*parts).subquery("unsummarised_moves")
    return (sa.select(moves.c.item_id, sa.cast(sa.func.sum(moves.c.delta_cents), sa.BigInteger).label("settled_cents"),
                      sa.func.max(moves.c.move_date).label("last_move"))
            .group_by(moves.c.item_id).subquery("unsummarised"))


def _latest(*dates: sa.ColumnElement) -> sa.ColumnElement:
    """The latest of dates that may be NULL (NULL when all are); portable (SQLite has no GREATEST)."""
    out = dates[0]
    for d in dates[1:]:
        out = sa.case((sa.and_(d.is_not(None), sa.or_(out.is_(None), d > out)), d), else_=out)
    return out


def item_life_joined(frm: sa.FromClause) -> tuple[sa.FromClause, sa.ColumnElement, sa.ColumnElement]:
    """Join each item's whole-life settlement to ``frm`` (built on the invoices table), from the summary.

    Returns ``(from clause, settled total, last move)``: the same figures as :func:`item_life` (total of
    all its movements and the date of the last one, NULL and 0 for an item never settled), read from
    :data:`~analytics.schema.item_settlements` plus :func:`unsummarised` instead of a grouping of
    every movement of the ledger.
    """
    kept, new = schema.item_settlements, unsummarised()
    frm = frm.outerjoin(kept, kept.c.item_id == inv.c.id).outerjoin(new, new.c.item_id == inv.c.id)
    total = sa.func.coalesce(kept.c.settled_cents, 0) + sa.func.coalesce(new.c.settled_cents, 0)
    return frm, total, _latest(kept.c.last_move, new.c.last_move)


def item_life() -> sa.Subquery:
    """Per item with any settlement: total settled (all dates) and the date of its last movement.

    The full recomputation from the movements: what the derived summary
    (:data:`~analytics.schema.item_settlements`) holds, and what :mod:`analytics.summaries` rebuilds and
    checks it against. Queries read the summary instead (:func:`item_life_joined`).

    Columns: ``item_id``, ``settled_cents`` (Σ ``delta_cents`` over all dates), ``last_move`` (latest
    ``move_date``). An item whose ``amount_cents + settled_cents`` is 0 is closed from ``last_move`` on:
    at any date >= ``last_move`` its open amount is that final total, 0.
    """
    s = settlements()
    return (sa.select(s.c.item_id, sa.func.sum(s.c.delta_cents).label("settled_cents"),
                      sa.func.max(s.c.move_date).label("last_move"))
            .group_by(s.c.item_id).subquery("item_life"))


def summary_differences(conn: sa.Connection) -> "pd.DataFrame":
    """Items where the derived settlement summary (with the movements written since it was brought up to
    date) differs from a full recomputation from the movements (:func:`item_life`).

    Returns
    -------
    pandas.DataFrame
        Columns ``item_id``, ``kept_cents``, ``recomputed_cents``, ``kept_last_move``,
        ``recomputed_last_move``; empty when the summary is right.

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").connect() as conn:
    ...     list(summary_differences(conn).columns)
    ['item_id', 'kept_cents', 'recomputed_cents', 'kept_last_move', 'recomputed_last_move']
    """
    life = item_life()
    items, total, last = item_life_joined(inv)
    kept = (sa.select(inv.c.id.label("item_id"), total.label("kept_cents"), last.label("kept_last_move"))
            .select_from(items).subquery("kept_life"))
    stmt = (sa.select(sa.func.coalesce(kept.c.item_id, life.c.item_id).label("item_id"),
                      kept.c.kept_cents, life.c.settled_cents.label("recomputed_cents"),
                      kept.c.kept_last_move, life.c.last_move.label("recomputed_last_move"))
            .select_from(kept.join(life, life.c.item_id == kept.c.item_id, full=True))
            .where(sa.or_(sa.func.coalesce(kept.c.kept_cents, 0) != sa.func.coalesce(life.c.settled_cents, 0),
                          kept.c.kept_last_move.is_distinct_from(life.c.last_move)))
            .order_by(sa.literal_column("item_id")))
    frame = read_frame(conn, stmt, ["item_id", "kept_cents", "recomputed_cents",
                                                             "kept_last_move", "recomputed_last_move"])
    return frame.astype({"kept_cents": "Int64", "recomputed_cents": "Int64"})


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
    items, settled_total, last_move = item_life_joined(inv)
    close_date = sa.case(
        (inv.c.amount_cents + settled_total == 0, sa.func.coalesce(last_move, inv.c.invoice_date)),
        else_=sa.literal(_NEVER, sa.Date))
    cand = (
        sa.select(dv.c.as_of, inv.c.id.label("invoice_id"), inv.c.customer_id, inv.c.doc_type, inv.c.invoice_date,
                  inv.c.due_date, inv.c.currency, inv.c.amount_cents)
        .select_from(dv.join(items, sa.and_(inv.c.invoice_date <= dv.c.as_of, dv.c.as_of < close_date)))
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


# ================================================================================================
# Business concepts: one definition each, used by every KPI, page and command
# ================================================================================================
#: Document types that are receivables (and credit sales): what a customer owes when issued.
RECEIVABLE_DOC_TYPES: tuple[str, ...] = ("invoice", "debit_memo")

#: Activity types that count as contacting the customer. A ``note`` is internal: it is not a contact.
CONTACT_TYPES: tuple[str, ...] = ("call", "email", "letter", "portal", "escalation")

#: Days after the promised date during which cash still keeps a promise to pay.
DEFAULT_GRACE_DAYS = 3

#: The currency of a ledger without any document (the schema default).
FALLBACK_CURRENCY = "USD"


def receivable(doc_type_col) -> sa.ColumnElement[bool]:
    """Is the document a receivable? Invoices and debit memos are; credit memos are not.

    Written as ``doc_type IN ('invoice', 'debit_memo')`` rather than ``doc_type != 'credit_memo'``: the
    schema allows only those three types today, so both give the same rows, but a document type added
    later must be declared a receivable on purpose instead of becoming one by default.

    Parameters
    ----------
    doc_type_col : sqlalchemy column
        An ``invoices.doc_type`` column (of the table, an alias or a subquery such as :func:`open_items`).

    Returns
    -------
    sqlalchemy.ColumnElement
        A boolean SQL condition.

    Example
    -------
    >>> str(receivable(inv.c.doc_type)).startswith("invoices.doc_type IN")
    True
    """
    return doc_type_col.in_(RECEIVABLE_DOC_TYPES)


def credit_sales(start: dt.date | None, end: dt.date, flt: LedgerFilter = NO_FILTER, by: tuple = (),
                 periods: sa.FromClause | None = None) -> sa.Select:
    """Credit sales: the gross amount of receivables (:func:`receivable`) with ``start <= invoice_date <= end``.

    Credit memos are **not** netted from sales: they lower AR when issued and when applied, and gross
    sales never go negative (so DSO never has a negative denominator). ``start`` None means "since the
    beginning of the ledger".

    Parameters
    ----------
    start : datetime.date or None
        First day included.
    end : datetime.date
        Last day included.
    flt : LedgerFilter, optional
        Applied to the invoices (customer criteria and document currency).
    by : tuple of invoices columns, optional
        Group by these (e.g. ``(inv.c.customer_id,)``).
    periods : FROM clause, optional
        A table of periods (``period_start, period_end``): sales of each period instead, grouped by
        ``period_end`` first (one query for many periods).

    Returns
    -------
    sqlalchemy.Select
        ``[period_end,] *by, sales_cents`` (integer cents; NULL when nothing matched and nothing is
        grouped).

    Example
    -------
    >>> q = credit_sales(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    >>> [c.name for c in q.selected_columns]
    ['sales_cents']
    """
    conds = [receivable(inv.c.doc_type), inv.c.invoice_date <= sa.literal(end, sa.Date)]
    if start is not None:
        conds.append(inv.c.invoice_date >= sa.literal(start, sa.Date))
    keys = list(by)
    stmt = sa.select(*keys, sa.func.sum(inv.c.amount_cents).label("sales_cents"))
    if periods is not None:
        keys = [periods.c.period_end, *keys]
        stmt = sa.select(*keys, sa.func.sum(inv.c.amount_cents).label("sales_cents")).select_from(
            periods.join(inv, sa.and_(inv.c.invoice_date >= periods.c.period_start,
                                      inv.c.invoice_date <= periods.c.period_end)))
    stmt = flt.apply_to_invoices(stmt.where(*conds))
    return stmt.group_by(*keys) if keys else stmt


def dispute_is_open(d, disputes=disp, before: bool = False) -> sa.ColumnElement[bool]:
    """Is the dispute open at the end of day ``d``? Opened on or before ``d`` and not resolved by then.

    A dispute resolved on ``d`` is no longer open at ``d``; one opened on ``d`` is. ``before=True``
    asks the same at the end of the day *before* ``d`` (opened before ``d``, not resolved before ``d``)
    — what a risk feature dated ``d`` may see.

    Parameters
    ----------
    d : datetime.date or SQL date expression
    disputes : table or alias of ``disputes``, optional
    before : bool, default False

    Returns
    -------
    sqlalchemy.ColumnElement

    Example
    -------
    >>> cond = dispute_is_open(dt.date(2024, 3, 31))
    """
    if isinstance(d, dt.date):
        d = sa.literal(d, sa.Date)
    if before:
        return sa.and_(disputes.c.opened_date < d,
                       sa.or_(disputes.c.resolved_date.is_(None), disputes.c.resolved_date >= d))
    return sa.and_(disputes.c.opened_date <= d,
                   sa.or_(disputes.c.resolved_date.is_(None), disputes.c.resolved_date > d))


def open_disputes_at(d: dt.date, flt: LedgerFilter = NO_FILTER) -> sa.Select:
    """Disputes open at the end of day ``d`` (:func:`dispute_is_open`), scoped by ``flt`` through the
    dispute's customer and its invoice's currency.

    Returns
    -------
    sqlalchemy.Select
        ``id, customer_id, invoice_id, reason_code, opened_date, amount_cents``.

    Example
    -------
    >>> q = open_disputes_at(dt.date(2024, 3, 31))
    """
    stmt = (sa.select(disp.c.id, disp.c.customer_id, disp.c.invoice_id, disp.c.reason_code, disp.c.opened_date,
                      disp.c.amount_cents)
            .select_from(disp.join(inv, inv.c.id == disp.c.invoice_id))
            .where(dispute_is_open(d)))
    return flt.apply_to_invoices(stmt)


def returned_receipts(as_of=None) -> sa.Select:
    """Ids of the receipts a bank return reversed: ``bank_lines`` rows of direction ``return`` that name
    the receipt (``bank_lines.receipt_id``), dated (``value_date``) on or before ``as_of`` when given.

    The one definition of a **returned receipt**. A return does not delete its receipt (the amount
    must stay positive and other tables reference it): the bank loader unapplies the receipt's cash on
    the return's date (``posting.unapply``, negative applications) and every receipt-based figure
    leaves the receipt out from that date on (:func:`receipt_scope` with ``as_of``).

    Parameters
    ----------
    as_of : datetime.date or SQL date expression, optional
        Only returns dated on or before it; None: every return.

    Returns
    -------
    sqlalchemy.Select
        One column, ``receipt_id``.

    Example
    -------
    >>> q = returned_receipts(dt.date(2026, 10, 31))
    >>> [c.name for c in q.selected_columns]
    ['receipt_id']
    """
    bl = schema.bank_lines
    stmt = sa.select(bl.c.receipt_id).where(bl.c.direction == "return", bl.c.receipt_id.is_not(None))
    if as_of is not None:
        stmt = stmt.where(bl.c.value_date <= (sa.literal(as_of, sa.Date) if isinstance(as_of, dt.date) else as_of))
    return stmt


def is_returned(receipt_id_col, as_of=None) -> sa.ColumnElement[bool]:
    """Was the receipt ``receipt_id_col`` returned by the bank on or before ``as_of`` (any date when None)?

    ``EXISTS`` over :func:`returned_receipts`, correlated to the column (NULL-safe, unlike ``NOT IN``).
    ``as_of`` may be a SQL date column (e.g. each month end of a trend, or an application's own date).

    Parameters
    ----------
    receipt_id_col : sqlalchemy column
        A receipt id (``receipts.id``, ``applications.receipt_id``...).
    as_of : datetime.date or SQL date expression, optional

    Returns
    -------
    sqlalchemy.ColumnElement
        A boolean SQL condition.

    Example
    -------
    >>> cond = is_returned(rec.c.id, dt.date(2026, 10, 31))
    """
    bl = schema.bank_lines
    q = returned_receipts(as_of).where(bl.c.receipt_id == receipt_id_col)
    return sa.exists(q.with_only_columns(sa.literal(1)))


def return_reversal(applications=apps) -> sa.ColumnElement[bool]:
    """Is the application row the reversal of a returned receipt's cash? A negative cash application
    (an unapply) of a receipt the bank returned on or before the application's date: what the bank
    loader posts for a return. The roll-forward shows these as their own line (returned payments).

    Parameters
    ----------
    applications : applications table or alias, optional

    Returns
    -------
    sqlalchemy.ColumnElement
        A boolean SQL condition.

    Example
    -------
    >>> cond = return_reversal()
    """
    # the IN (a hash semi-join) keeps the correlated date check to the few applications of returned receipts
    return sa.and_(applications.c.amount_cents < 0, applications.c.receipt_id.in_(returned_receipts()),
                   is_returned(applications.c.receipt_id, applications.c.applied_date))


def receipt_scope(flt: LedgerFilter, receipts=rec, as_of=None) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions that put receipts in a filter's scope: the receipt's own currency, and the
    receipt's customer for the customer criteria. A receipt without a customer (unidentified) is in
    scope only when the filter has no customer criteria. With ``as_of``, receipts the bank returned on
    or before it (:func:`returned_receipts`) are out: cash given back is not cash received, unapplied
    or collected from that date on (before it, the receipt counts as it did then).

    Parameters
    ----------
    flt : LedgerFilter
    receipts : receipts table or alias, optional
    as_of : datetime.date or SQL date expression, optional
        The date of the figure (a period's end for a period); None keeps returned receipts in (only
        for questions that are not about money, such as the ledger's latest date).

    Returns
    -------
    list of sqlalchemy.ColumnElement

    Example
    -------
    >>> receipt_scope(NO_FILTER)
    []
    >>> len(receipt_scope(NO_FILTER, as_of=dt.date(2026, 10, 31)))
    1
    """
    conds = [receipts.c.currency.in_(flt.currencies)] if flt.currencies else []
    clause = flt.customer_clause(receipts.c.customer_id)
    if clause is not None:
        conds.append(clause)
    if as_of is not None:
        conds.append(sa.not_(is_returned(receipts.c.id, as_of)))
    return conds


def _day_start(value: dt.date) -> sa.BindParameter:
    return sa.literal(dt.datetime.combine(value, dt.time()), sa.DateTime)


def is_contact(type_col) -> sa.ColumnElement[bool]:
    """Is the activity a contact with the customer? A call, email, letter, portal message or escalation
    (:data:`CONTACT_TYPES`). A ``note`` is internal and is not a contact.

    Example
    -------
    >>> cond = is_contact(act.c.type)
    """
    return type_col.in_(CONTACT_TYPES)


def last_contact(as_of: dt.date, customer_ids: Iterable[str] | None = None) -> sa.Subquery:
    """Each customer's last contact (:func:`is_contact`) on or before ``as_of`` (any time that day).

    ``days since contact`` everywhere = ``as_of`` − the date of this timestamp.

    Parameters
    ----------
    as_of : datetime.date
    customer_ids : iterable of str, optional
        Only these customers.

    Returns
    -------
    sqlalchemy.Subquery
        ``customer_id, last_contact`` (a timestamp).

    Example
    -------
    >>> q = last_contact(dt.date(2024, 4, 15), ["K1"])
    """
    stmt = (sa.select(act.c.customer_id, sa.func.max(act.c.occurred_at).label("last_contact"))
            .where(is_contact(act.c.type), act.c.occurred_at < _day_start(as_of + dt.timedelta(days=1))))
    if customer_ids is not None:
        stmt = stmt.where(act.c.customer_id.in_(list(customer_ids)))
    return stmt.group_by(act.c.customer_id).subquery("last_contact")


def promise_outcomes(candidates: sa.FromClause, grace_days: int = DEFAULT_GRACE_DAYS) -> sa.Subquery:
    """The one "promise kept" rule, evaluated point-in-time.

    A promise (customer, optional invoice, ``made_on``, ``promised_date``, amount) seen with what was
    known before ``cutoff`` (the first day NOT seen) is

    * **kept** when cash (applications from receipts; credit memos are not payment, unapplies net)
      applied to the promised invoice — or, without an invoice, to any of the customer's items —
      dated from ``made_on`` to ``promised_date + grace_days`` and before ``cutoff`` adds up to at
      least the promised amount;
    * **broken** when not kept and its deadline ``promised_date + grace_days`` was before the last
      day seen (``cutoff − 1``);
    * **pending** otherwise.

    KPIs evaluate at the end of day D (``cutoff = D + 1``); risk features dated D see only the days
    before D (``cutoff = D``).

    Parameters
    ----------
    candidates : FROM clause
        One row per (evaluation, promise) with at least ``id, customer_id, invoice_id, made_on,
        promised_date, amount_cents, cutoff``; any other columns (period, point key) are kept. ``id``
        with the other columns must identify the row.
    grace_days : int, default 3

    Returns
    -------
    sqlalchemy.Subquery
        The candidates' columns plus ``collected_cents`` (cash in the window, before the cutoff) and
        ``status`` (``kept`` / ``broken`` / ``pending``).

    Example
    -------
    >>> pc = sa.select(prom, sa.literal(dt.date(2024, 4, 1), sa.Date).label("cutoff")).subquery("pc")
    >>> [c.name for c in promise_outcomes(pc).c][-2:]
    ['collected_cents', 'status']
    """
    pf = candidates
    # The cash of a (promise, cutoff) pair does not depend on who asks: compute it once per pair.
    base = sa.select(pf.c.id, pf.c.customer_id, pf.c.invoice_id, pf.c.made_on, pf.c.promised_date,
                     pf.c.cutoff).distinct().subquery("promise_base")
    window = (
        apps.c.receipt_id.is_not(None),
        apps.c.applied_date >= base.c.made_on,
        apps.c.applied_date < base.c.cutoff,
        days_between(base.c.promised_date, apps.c.applied_date) <= grace_days,
    )
    on_invoice = (sa.select(base.c.id, base.c.cutoff, apps.c.amount_cents.label("cash"))
                  .select_from(base.join(apps, apps.c.invoice_id == base.c.invoice_id)).where(*window))
    cinv = inv.alias("promise_items")
    on_customer = (sa.select(base.c.id, base.c.cutoff, apps.c.amount_cents.label("cash"))
                   .select_from(base.join(cinv, cinv.c.customer_id == base.c.customer_id)
                                .join(apps, apps.c.invoice_id == cinv.c.id))
                   .where(base.c.invoice_id.is_(None), *window))
    cash = sa.union_all(on_invoice, on_customer).subquery("promise_cash")
    collected = (sa.select(cash.c.id, cash.c.cutoff, sa.func.sum(cash.c.cash).label("collected_cents"))
                 .group_by(cash.c.id, cash.c.cutoff).subquery("promise_collected"))
    got = sa.cast(sa.func.coalesce(collected.c.collected_cents, 0), sa.BigInteger)
    status = sa.case(
        (got >= pf.c.amount_cents, "kept"),
        (days_between(pf.c.promised_date, pf.c.cutoff) > grace_days + 1, "broken"),
        else_="pending",
    )
    return (sa.select(pf, got.label("collected_cents"), status.label("status"))
            .select_from(pf.outerjoin(collected, sa.and_(collected.c.id == pf.c.id,
                                                         collected.c.cutoff == pf.c.cutoff)))
            .subquery("promise_outcomes"))


def promise_candidates(periods: sa.FromClause, flt: LedgerFilter = NO_FILTER) -> sa.Subquery:
    """Promises made within each period, in ``flt``'s scope, ready for :func:`promise_outcomes`.

    Scope: the promise's customer; currency = its invoice's currency, else the customer's.

    Parameters
    ----------
    periods : FROM clause
        Columns ``period_start, period_end`` (the made-on window, both included) and ``cutoff`` (first
        day not seen when evaluating), e.g. ``analytics.kpis.common.periods_table``.
    flt : LedgerFilter, optional

    Returns
    -------
    sqlalchemy.Subquery
        ``period_end, cutoff, id, customer_id, invoice_id, made_on, promised_date, amount_cents``.

    Example
    -------
    >>> one = sa.select(sa.literal(dt.date(2024, 3, 1), sa.Date).label("period_start"),
    ...                 sa.literal(dt.date(2024, 3, 31), sa.Date).label("period_end"),
    ...                 sa.literal(dt.date(2024, 4, 1), sa.Date).label("cutoff")).subquery("p")
    >>> pc = promise_candidates(one)
    """
    pinv = inv.alias("promised_invoice")
    conds = []
    clause = flt.customer_clause(prom.c.customer_id)
    if clause is not None:
        conds.append(clause)
    if flt.currencies:
        conds.append(sa.func.coalesce(pinv.c.currency, cust.c.currency).in_(flt.currencies))
    made_in = sa.and_(prom.c.made_on >= periods.c.period_start, prom.c.made_on <= periods.c.period_end)
    return (sa.select(periods.c.period_end, periods.c.cutoff, prom.c.id, prom.c.customer_id, prom.c.invoice_id,
                      prom.c.made_on, prom.c.promised_date, prom.c.amount_cents)
            .select_from(periods.join(prom, made_in).join(cust, cust.c.id == prom.c.customer_id)
                         .outerjoin(pinv, pinv.c.id == prom.c.invoice_id))
            .where(*conds).subquery("promise_candidates"))


def open_amount_cents(conn: sa.Connection, *, invoice_id: str | None = None, customer_id: str | None = None,
                      as_of: dt.date | None = None) -> int:
    """The open amount of ONE item, or the net open balance of ONE customer, in cents.

    Open amount = amount + every settlement of the item (:func:`settlements`: cash and credit applied
    to it, credit it gave to others, adjustments). With ``as_of`` None every settlement counts whatever
    its date (what a write must check against); with a date, only items issued and settlements dated
    on or before it — the same figure as :func:`open_items` at that date.
    A customer's balance is the sum over its items (open credit memos net it).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    invoice_id : str, optional
        Exactly one of ``invoice_id`` and ``customer_id``.
    customer_id : str, optional
    as_of : datetime.date, optional

    Returns
    -------
    int
        0 for an item not yet issued at ``as_of`` or a customer without items.

    Raises
    ------
    UserError
        For an unknown ``invoice_id``, or when not exactly one of the two is given.

    Example
    -------
    >>> open_amount_cents(conn, invoice_id="INV-1", as_of=dt.date(2024, 3, 31))  # doctest: +SKIP
    30000
    """
    if (invoice_id is None) == (customer_id is None):
        raise UserError("give exactly one of invoice_id and customer_id")
    if invoice_id is not None:
        known = conn.execute(sa.select(inv.c.id).where(inv.c.id == invoice_id)).first()
        if known is None:
            raise UserError(f"invoice_id: unknown invoice {invoice_id!r}")
    s = settlements()
    moved = sa.select(sa.func.coalesce(sa.func.sum(s.c.delta_cents), 0)).where(s.c.item_id == inv.c.id)
    items = [inv.c.id == invoice_id] if invoice_id is not None else [inv.c.customer_id == customer_id]
    if as_of is not None:
        d = sa.literal(as_of_date := as_date(as_of, "as_of"), sa.Date)
        moved = moved.where(s.c.move_date <= d)
        items.append(inv.c.invoice_date <= sa.literal(as_of_date, sa.Date))
    total = sa.func.sum(inv.c.amount_cents + moved.scalar_subquery())
    return int(conn.execute(sa.select(sa.func.coalesce(total, 0)).where(*items)).scalar() or 0)


# ------------------------------------------------------------------------------------------------
# One currency per figure, and the default as-of date
# ------------------------------------------------------------------------------------------------
def main_currency(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> str:
    """The currency with the largest volume: lifetime credit sales plus the open balance at the end of
    the ledger (all movements), among the documents matching ``flt``.

    Ties go to the alphabetically first code. A ledger without documents gives the filter's single
    currency, else ``"USD"`` (the schema default).

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    flt : LedgerFilter, optional
        Its other criteria (business unit, region, collector, customer) apply; if it names currencies
        the choice is among those.

    Returns
    -------
    str

    Example
    -------
    >>> main_currency(conn)  # doctest: +SKIP
    'USD'
    """
    # Σ per currency of (sales + amount + the item's settlements, all dates) = Σ over the items of (sales +
    # amount) + Σ of the derived summary's per-item totals (which carry the item's currency and customer)
    # + the movements written since it was brought up to date: three scans, no join of a million rows.
    kept, new = schema.item_settlements, unsummarised()
    sales = sa.case((receivable(inv.c.doc_type), inv.c.amount_cents), else_=sa.literal_column("0"))
    issued = flt.apply_to_invoices(sa.select(inv.c.currency, (sales + inv.c.amount_cents).label("cents")))
    settled = flt.apply_to_invoices(sa.select(kept.c.currency, kept.c.settled_cents.label("cents")), invoices=kept)
    recent = flt.apply_to_invoices(sa.select(inv.c.currency, new.c.settled_cents.label("cents"))
                                   .select_from(new.join(inv, inv.c.id == new.c.item_id)))
    parts = sa.union_all(issued, settled, recent).subquery("volume_parts")
    stmt = sa.select(parts.c.currency, sa.func.sum(parts.c.cents).label("volume")).group_by(parts.c.currency)
    with connection(conn) as c:
        rows = [(int(r.volume or 0), r.currency) for r in c.execute(stmt)]
    if not rows:
        return flt.currencies[0] if len(flt.currencies) == 1 else FALLBACK_CURRENCY
    rows.sort(key=lambda r: (-r[0], r[1]))
    return rows[0][1]


def resolve_currency(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> tuple[LedgerFilter, str]:
    """The one currency rule: every figure is in exactly one currency, amounts never add across them.

    ``flt.currencies`` naming one code is kept; empty means :func:`main_currency`; several raise
    :class:`UserError`.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    flt : LedgerFilter, optional

    Returns
    -------
    (LedgerFilter, str)
        The filter narrowed to that currency, and the currency.

    Example
    -------
    >>> resolve_currency(conn, LedgerFilter(currencies=("EUR",)))[1]  # doctest: +SKIP
    'EUR'
    """
    flt = flt or NO_FILTER
    if len(flt.currencies) == 1:
        return flt, flt.currencies[0]
    if len(flt.currencies) > 1:
        raise UserError(f"every figure is in one currency (amounts are never added across currencies); "
                        f"choose one of {', '.join(flt.currencies)}")
    cur = main_currency(conn, flt)
    return dataclasses.replace(flt, currencies=(cur,)), cur


def default_as_of(conn: sa.Connection, flt: LedgerFilter = NO_FILTER, *, today_if_empty: bool = True) -> dt.date | None:
    """The default as-of date everywhere: the ledger's last business date, i.e. the latest invoice date
    or receipt date (of the documents and receipts in ``flt``'s scope), whichever is later.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    flt : LedgerFilter, optional
    today_if_empty : bool, default True
        What an empty ledger gives: today, or None.

    Returns
    -------
    datetime.date or None

    Example
    -------
    >>> default_as_of(conn)  # doctest: +SKIP
    datetime.date(2026, 10, 31)
    """
    q_inv = flt.apply_to_invoices(sa.select(sa.func.max(inv.c.invoice_date)))
    q_rec = sa.select(sa.func.max(rec.c.receipt_date)).where(*receipt_scope(flt))
    with connection(conn) as c:
        got = [as_date(x) for x in (c.execute(q_inv).scalar(), c.execute(q_rec).scalar()) if x is not None]
    if got:
        return max(got)
    return dt.date.today() if today_if_empty else None


# ------------------------------------------------------------------------------------------------
# Values at the edge: dates in, money out
# ------------------------------------------------------------------------------------------------
def as_date(value, field: str = "date") -> dt.date:
    """``value`` as a date: a date, a datetime (its day), a pandas Timestamp or numpy datetime64, or an
    ISO string (``YYYY-MM-DD``, also with a time after it, as some drivers return dates).

    Parameters
    ----------
    value : object
    field : str, default "date"
        Named in the error.

    Returns
    -------
    datetime.date

    Raises
    ------
    UserError
        ``"<field>: 'x' is not a date (YYYY-MM-DD)"``.

    Example
    -------
    >>> as_date("2024-03-31 00:00:00")
    datetime.date(2024, 3, 31)
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(text).date()
            except ValueError:
                pass
    elif value is not None and hasattr(value, "dtype"):  # numpy datetime64
        import pandas as pd

        return pd.Timestamp(value).date()
    raise UserError(f"{field}: {value!r} is not a date (YYYY-MM-DD)")


def parse_date(text: str) -> dt.date:
    """A command-line date (``YYYY-MM-DD``), for ``argparse`` ``type=``: a bad one is a usage error.

    Example
    -------
    >>> parse_date("2024-03-31")
    datetime.date(2024, 3, 31)
    """
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cents_to_decimal(cents) -> Decimal:
    """Cents (an integer, or a fractional expectation) to currency units, exact and rounded half-up
    (ties away from zero) to the cent.

    Example
    -------
    >>> cents_to_decimal(-1234567), cents_to_decimal(0.5)
    (Decimal('-12345.67'), Decimal('0.01'))
    """
    exact = Decimal(int(cents)) if isinstance(cents, int) or float(cents).is_integer() else Decimal(repr(float(cents)))
    return (exact / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def money_text(cents: int, currency: str = "") -> str:
    """``123456`` -> ``"1,234.56"`` (with the currency code in front when given); half-up rounding.

    Example
    -------
    >>> money_text(-1234567, "USD")
    'USD -12,345.67'
    """
    units = cents_to_decimal(int(cents))
    text = f"{units:,.2f}"
    return f"{currency} {text}" if currency else text


def to_units(cents) -> float | None:
    """The one cents → currency conversion for JSON and display: :func:`cents_to_decimal` as a float.

    None stays None; NaN or infinite cents (an undefined expectation) give NaN.

    Example
    -------
    >>> to_units(12345), to_units(-5), to_units(None)
    (123.45, -0.05, None)
    """
    if cents is None:
        return None
    if not isinstance(cents, int) and not math.isfinite(float(cents)):
        return float("nan")
    return float(cents_to_decimal(cents))
