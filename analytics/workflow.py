"""Recording the collector's work, with an append-only audit trail.

Every function here is one transaction: validate the input, check the user's permission
(:func:`analytics.auth.require`, including the collector's portfolio), write, append a row to
``audit_log`` (who, when, action, table, row id, before/after as JSON) and bump the ledger version
so cached results are refreshed. If anything fails nothing is written.

Nothing in the product updates or deletes ``audit_log``. On PostgreSQL and SQLite,
:func:`protect_audit_log` installs triggers that refuse UPDATE and DELETE on it (DuckDB has no
triggers; there the guarantee is the code's).
"""
from __future__ import annotations

import datetime as dt
import json
import weakref

import pandas as pd
import sqlalchemy as sa

from analytics import schema

audit = schema.audit_log


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True)


def append_audit(conn: sa.Connection, actor: str, action: str, table_name: str, row_id, before=None, after=None,
                 at: dt.datetime | None = None) -> None:
    """Append one row to ``audit_log`` inside the caller's transaction.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        In a transaction (``engine.begin()``).
    actor : str
        User name (or ``system``, ``cli``, ``demo``).
    action : str
        What was done, e.g. ``log_activity``, ``approve_writeoff``.
    table_name : str
        The table written.
    row_id : object
        Key of the row written (stored as text).
    before, after : dict, optional
        The row before and after the write (JSON; None for an insert's ``before``).
    at : datetime.datetime, optional
        UTC time (default now).

    Example
    -------
    >>> from analytics import db
    >>> engine = db.connect("sqlite://")
    >>> with engine.begin() as conn:
    ...     append_audit(conn, "admin", "note", "customers", "K1", None, {"x": 1})
    """
    conn.execute(audit.insert().values(
        logged_at=at or _utcnow(), actor=actor, action=action, table_name=table_name,
        row_id=None if row_id is None else str(row_id), before=_json(before), after=_json(after)))
