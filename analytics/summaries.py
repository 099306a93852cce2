"""The derived per-item settlement summary: kept in step, rebuilt, checked.

:data:`analytics.schema.item_settlements` holds, per item with any settlement, the sum of its settlement
movements over all dates and the date of the last one (what :func:`analytics.ledger.item_life` computes
from every movement). :func:`analytics.ledger.open_items` reads it so that an open amount costs a join
instead of a grouping of every application of the ledger (issue 18: that grouping was most of a KPI's
time at 1M invoices, above all on PostgreSQL).

How it stays right:

* **In the write's transaction.** Every write that moves money calls
  :func:`analytics.db.bump_ledger_version` (``money=True``), which calls :func:`refresh`: the items
  touched by applications and adjustments with ids above the summary's marks
  (:data:`~analytics.schema.settlement_summary_state`) are recomputed from their movements and the marks
  move up. Money writes hold the ledger's write lock (:func:`analytics.db.lock_ledger`) from their first
  statement, so ids are handed out in commit order and no row can be skipped.
* **Rows written around the product** (an ETL appending to ``applications``, a test inserting rows):
  queries add every movement above the marks themselves (:func:`analytics.ledger.summary_corrections`),
  so figures stay exact before the next write folds them in.
* **Rows removed or re-numbered** (tables emptied and reloaded): :func:`refresh` sees a row count that
  does not match the marks and rebuilds the whole summary. A ledger edited outside the product in place
  can be checked with ``python -m analytics summaries check`` (:func:`analytics.ledger.summary_differences`)
  and repaired with ``summaries rebuild``.

This module depends on the schema only: :func:`analytics.db.bump_ledger_version` calls :func:`refresh`.

Example
-------
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> with engine.begin() as conn:
...     rebuild(conn)
...     refresh(conn)
0
'current'
"""
from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from analytics import schema

kept = schema.item_settlements
state = schema.settlement_summary_state
apps = schema.applications
adj = schema.adjustments

#: More new movement rows than this and :func:`refresh` rebuilds everything in one set-based statement
#: (a bulk load) instead of recomputing the touched items one list at a time.
REBUILD_ABOVE_ROWS = 20_000


@dataclasses.dataclass(frozen=True)
class Marks:
    """Where the summary stands: highest ids included and the row counts of the two tables then."""

    applications_id: int
    adjustments_id: int
    applications_rows: int
    adjustments_rows: int


def _now(conn: sa.Connection) -> Marks:
    """The applications and adjustments tables' highest ids and row counts (one query each)."""
    def one(table):
        top, rows = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0), sa.func.count())
                                 .select_from(table)).one()
        return int(top), int(rows)
    (a_id, a_rows), (j_id, j_rows) = one(apps), one(adj)
    return Marks(a_id, j_id, a_rows, j_rows)


def marks(conn: sa.Connection) -> Marks | None:
    """The summary's marks, or None when it was never built."""
    row = conn.execute(sa.select(state.c.applications_id, state.c.adjustments_id, state.c.applications_rows,
                                 state.c.adjustments_rows).where(state.c.id == 1)).first()
    return Marks(*(int(v) for v in row)) if row is not None else None


def _set_marks(conn: sa.Connection, m: Marks) -> None:
    values = dataclasses.asdict(m)
    if not conn.execute(state.update().where(state.c.id == 1).values(**values)).rowcount:
        conn.execute(state.insert().values(id=1, **values))


def movement_sources():
    """The three kinds of settlement movement, as ``(table, item column, date column, signed delta, extra
    condition)``: applications *to* an item (cash or credit, reducing it), applications *from* a credit
    memo (its credit used, raising it towards 0) and adjustments (signed as their effect). The one list
    that :func:`analytics.ledger.settlements`, the summary and its corrections are all built from."""
    return (
        (apps, apps.c.invoice_id, apps.c.applied_date, -apps.c.amount_cents, None),
        (apps, apps.c.credit_memo_id, apps.c.applied_date, apps.c.amount_cents, apps.c.credit_memo_id.is_not(None)),
        (adj, adj.c.invoice_id, adj.c.adj_date, adj.c.amount_cents, None),
    )


def _life(items: list[str] | None = None) -> sa.Select:
    """Per item: Σ movements, the last movement date, the item's customer and currency, from the movements
    (for ``items`` only if given)."""
    parts = []
    for _table, item, day, delta, extra in movement_sources():
        stmt = sa.select(item.label("item_id"), delta.label("delta_cents"), day.label("move_date"))
        if extra is not None:
            stmt = stmt.where(extra)
        if items is not None:
            stmt = stmt.where(item.in_(items))
        parts.append(stmt)
    s = sa.union_all(*parts).subquery("moves")
    inv = schema.invoices
    return (sa.select(s.c.item_id, sa.func.sum(s.c.delta_cents), sa.func.max(s.c.move_date),
                      sa.func.min(inv.c.customer_id), sa.func.min(inv.c.currency))
            .select_from(s.join(inv, inv.c.id == s.c.item_id)).group_by(s.c.item_id))


#: The summary's columns in the order :func:`_life` selects them.
_COLUMNS = ["item_id", "settled_cents", "last_move", "customer_id", "currency"]


def rebuild(conn: sa.Connection) -> int:
    """Recompute the whole summary from the ledger, inside the caller's transaction.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        In a write transaction (the ledger's write lock held, as :func:`analytics.db.bulk_write` does).

    Returns
    -------
    int
        Items in the summary.

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").begin() as conn:
    ...     rebuild(conn)
    0
    """
    now = _now(conn)
    conn.execute(kept.delete())
    conn.execute(kept.insert().from_select(_COLUMNS, _life()))
    _set_marks(conn, now)
    return int(conn.execute(sa.select(sa.func.count()).select_from(kept)).scalar() or 0)


def forget(conn: sa.Connection) -> None:
    """Empty the summary and its marks (the caller's transaction): for code that empties the ledger's
    tables. The next :func:`refresh` (the write's own version bump) rebuilds it from what was loaded.

    SQLite hands out ids again after the highest rows are deleted, so emptied tables reloaded to the same
    row counts could otherwise look like a summary still in step."""
    conn.execute(kept.delete())
    conn.execute(state.delete())


def refresh(conn: sa.Connection) -> str:
    """Fold the movements written since the last refresh into the summary (the caller's transaction).

    Called by :func:`analytics.db.bump_ledger_version` for every write that may move money. The items
    touched by applications and adjustments above the marks are recomputed from all their movements
    (exact whatever the write did to them); more than :data:`REBUILD_ABOVE_ROWS` new rows, a summary
    never built, or row counts that do not add up (rows deleted, tables reloaded) rebuild it all.

    Returns
    -------
    str
        ``"current"`` (nothing new), ``"items"`` (touched items recomputed) or ``"rebuilt"``.

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").begin() as conn:
    ...     refresh(conn)
    'current'
    """
    was, now = marks(conn), _now(conn)
    if was is None:
        rebuild(conn)
        return "rebuilt"
    if was == now:
        return "current"
    new_apps = conn.execute(sa.select(sa.func.count()).where(apps.c.id > was.applications_id)).scalar() or 0
    new_adj = conn.execute(sa.select(sa.func.count()).where(adj.c.id > was.adjustments_id)).scalar() or 0
    consistent = (now.applications_rows == was.applications_rows + new_apps
                  and now.adjustments_rows == was.adjustments_rows + new_adj)
    if not consistent or new_apps + new_adj > REBUILD_ABOVE_ROWS:
        rebuild(conn)
        return "rebuilt"
    touched = sa.union(
        sa.select(apps.c.invoice_id.label("item_id")).where(apps.c.id > was.applications_id),
        sa.select(apps.c.credit_memo_id).where(apps.c.id > was.applications_id, apps.c.credit_memo_id.is_not(None)),
        sa.select(adj.c.invoice_id).where(adj.c.id > was.adjustments_id),
    )
    items = [r[0] for r in conn.execute(touched)]
    for start in range(0, len(items), 1000):  # bounded IN lists
        chunk = items[start:start + 1000]
        conn.execute(kept.delete().where(kept.c.item_id.in_(chunk)))
        conn.execute(kept.insert().from_select(_COLUMNS, _life(chunk)))
    _set_marks(conn, now)
    return "items"
