"""The audit log: append-only, hash-chained, verifiable.

Every row of ``audit_log`` carries ``prev_hash`` (the previous row's ``row_hash``; 64 zeros for the
first row) and ``row_hash`` = SHA-256 of a canonical JSON array of the row's fields
(:data:`HASHED_FIELDS`) followed by ``prev_hash`` (:func:`row_hash`). Changing, deleting or inserting
a row anywhere breaks the chain at that row, and :func:`verify_chain` (``python -m analytics audit
verify``) names the first broken row. The single-row table ``audit_head`` holds the id, hash and
number of rows of the chain's last row, so cutting rows off the end is caught too.

How the chain stays linear under concurrent writers
---------------------------------------------------
:func:`append_audit` first UPDATEs the ``audit_head`` row, then reads the last row's hash, inserts
the new row and moves the head, all in the caller's transaction:

* PostgreSQL: the UPDATE takes the head row's lock, held to commit; a second appender waits on it and
  then (READ COMMITTED: each statement sees what was committed before it) reads the first one's row.
* SQLite: the UPDATE takes the database write lock (the product's write transactions start with
  ``BEGIN IMMEDIATE``); nobody else can write until commit.
* DuckDB (optimistic): two transactions updating the head row conflict; the second fails and its
  whole transaction is re-run (:func:`run_write`, and the workflow's retry) on a fresh snapshot.

Append-only protection
----------------------
Migration 0004 installs it (:func:`append_only_ddl`): PostgreSQL triggers refuse UPDATE, DELETE and
TRUNCATE on ``audit_log``; SQLite triggers refuse UPDATE and DELETE. DuckDB has no triggers: there the
chain *is* the protection (an edit is not prevented but is found by ``audit verify``). Somebody who can
rewrite the database file can recompute every hash after an edit; keep the head hash that ``audit
verify`` prints somewhere else (a ticket, an e-mail) to catch that.

Example
-------
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> with engine.begin() as conn:
...     _ = append_audit(conn, "admin", "note", "customers", "K1", None, {"x": 1})
>>> verify_chain(engine).ok
True
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import random
import time
from typing import Callable, Iterable, Mapping, TypeVar

import pandas as pd
import sqlalchemy as sa

from analytics import schema

audit = schema.audit_log
head = schema.audit_head

#: ``prev_hash`` of the first row.
GENESIS = "0" * 64
#: The fields each row's hash covers, in this order, followed by ``prev_hash``.
HASHED_FIELDS = ("logged_at", "actor", "action", "table_name", "row_id", "before", "after")
HEAD_NAME = "audit_log"
_BATCH = 20_000
T = TypeVar("T")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True)


def _canonical(value) -> object:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    value = _missing_as_none(value)
    return None if value is None else str(value)


def row_hash(row: Mapping, prev_hash: str) -> str:
    """SHA-256 (hex) of one audit row's :data:`HASHED_FIELDS` and ``prev_hash``.

    The row is serialised as a compact JSON array (times as ``YYYY-MM-DD HH:MM:SS.ffffff``, other
    values as text, missing values as null), so the hash is the same on every backend and after a
    backup round trip.

    Parameters
    ----------
    row : mapping
        At least the :data:`HASHED_FIELDS`.
    prev_hash : str
        ``row_hash`` of the previous row (:data:`GENESIS` for the first).

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> r = dict(logged_at=dt.datetime(2024, 1, 1), actor="a", action="x", table_name="t",
    ...          row_id="1", before=None, after=None)
    >>> len(row_hash(r, GENESIS))
    64
    """
    payload = [_canonical(row.get(f)) for f in HASHED_FIELDS] + [prev_hash]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
def lock_chain(conn: sa.Connection) -> None:
    """Lock the chain's head for the rest of the caller's transaction (see the module docstring).

    :func:`append_audit` does it itself; a long bulk transaction (restore, ``generate --replace``)
    calls it first so it takes its locks in the same order as every other writer (head, then the
    ledger version).

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").begin() as conn:
    ...     lock_chain(conn)
    """
    touched = conn.execute(head.update().where(head.c.name == HEAD_NAME).values(row_count=head.c.row_count)).rowcount
    if not touched:  # a database whose head row is gone: start it from the rows present
        last = conn.execute(sa.select(audit.c.id, audit.c.row_hash).order_by(audit.c.id.desc()).limit(1)).first()
        n = conn.execute(sa.select(sa.func.count()).select_from(audit)).scalar()
        conn.execute(head.insert().values(name=HEAD_NAME, last_id=last[0] if last else None,
                                          last_hash=(last[1] if last else None) or GENESIS, row_count=int(n)))


def append_audit(conn: sa.Connection, actor: str, action: str, table_name: str, row_id, before=None, after=None,
                 at: dt.datetime | None = None) -> int:
    """Append one row to ``audit_log`` inside the caller's transaction, chained to the last row.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        In a write transaction (``engine.begin()``; on SQLite started with ``BEGIN IMMEDIATE`` as
        :func:`run_write` and the workflow do, else a concurrent writer makes it fail with "database
        is locked" rather than wait).
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

    Returns
    -------
    int
        The new row's id.

    Example
    -------
    >>> from analytics import db
    >>> engine = db.connect("sqlite://")
    >>> with engine.begin() as conn:
    ...     append_audit(conn, "admin", "note", "customers", "K1", None, {"x": 1})
    1
    """
    return _chain_insert(conn, dict(
        logged_at=(at or _utcnow()).replace(tzinfo=None), actor=str(actor)[:64], action=action,
        table_name=table_name, row_id=None if row_id is None else str(row_id)[:64],
        before=_json(before), after=_json(after)))


def _chain_insert(conn: sa.Connection, fields: dict) -> int:
    """Insert one row with the :data:`HASHED_FIELDS` ``fields`` at the end of the chain; its id."""
    lock_chain(conn)
    last = conn.execute(sa.select(audit.c.row_hash).order_by(audit.c.id.desc()).limit(1)).first()
    prev = (last[0] if last else None) or GENESIS
    digest = row_hash(fields, prev)
    new_id = int(conn.execute(audit.insert().values(prev_hash=prev, row_hash=digest, **fields))
                 .inserted_primary_key[0])
    conn.execute(head.update().where(head.c.name == HEAD_NAME).values(
        last_id=new_id, last_hash=digest, row_count=head.c.row_count + 1))
    return new_id


def append_rows(conn: sa.Connection, rows: Iterable[Mapping]) -> int:
    """Append copies of existing audit rows (their fields, not their ids or hashes) to the chain.

    Used by a restore that keeps the database's own audit log and adds a backup's history after it
    (:func:`analytics.backup.import_ledger`). The rows get the ids after the last one, written in one
    bulk insert; the caller moves the id sequence past them (the restore does,
    ``backup._advance_sequences``). Returns the number of rows appended.

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").begin() as conn:
    ...     append_rows(conn, [dict(logged_at=dt.datetime(2024, 1, 1), actor="a", action="x", table_name="t")])
    1
    """
    from analytics.db import bulk_insert

    lock_chain(conn)
    found = conn.execute(sa.select(audit.c.id, audit.c.row_hash).order_by(audit.c.id.desc()).limit(1)).all()
    last = found[0] if found else None  # .all(): DuckDB needs the result consumed before the bulk insert
    next_id, prev = (int(last[0]) + 1, last[1] or GENESIS) if last else (1, GENESIS)
    out = []
    for row in rows:
        fields = {f: _missing_as_none(row.get(f)) for f in HASHED_FIELDS}
        fields["logged_at"] = pd.Timestamp(fields["logged_at"]).to_pydatetime().replace(tzinfo=None)
        for f in HASHED_FIELDS[1:]:
            fields[f] = None if fields[f] is None else str(fields[f])
        digest = row_hash(fields, prev)
        out.append({"id": next_id, **fields, "prev_hash": prev, "row_hash": digest})
        prev, next_id = digest, next_id + 1
    if not out:
        return 0
    frame = pd.DataFrame(out, columns=["id", *HASHED_FIELDS, "prev_hash", "row_hash"]).astype(
        {f: object for f in HASHED_FIELDS[1:]})
    bulk_insert(conn, audit, frame[[c for c in frame.columns if frame[c].notna().any()]])  # all-NULL: untyped
    conn.execute(head.update().where(head.c.name == HEAD_NAME).values(
        last_id=out[-1]["id"], last_hash=prev, row_count=head.c.row_count + len(out)))
    return len(out)


def _missing_as_none(value):
    return None if value is None or (isinstance(value, float) and value != value) else value


def is_write_conflict(exc: Exception) -> bool:
    """True for errors that only mean "another writer got there first": re-run the transaction.

    DuckDB write-write conflicts, PostgreSQL serialization failures and deadlocks, SQLite's busy
    database, and two first-ever inserts of the same key row (head, sign-in counter) at once.

    Example
    -------
    >>> is_write_conflict(ValueError("x"))
    False
    """
    orig = getattr(exc, "orig", exc)
    name, msg = type(orig).__name__, str(orig).lower()
    if name in ("TransactionException", "SerializationFailure", "DeadlockDetected"):
        return True
    if "conflict" in msg and ("write-write" in msg or "transaction" in msg or "update" in msg):
        return True
    if "database is locked" in msg:
        return True
    return isinstance(exc, sa.exc.IntegrityError) and any(
        k in msg for k in ("audit_head", "login_throttle", "ledger_meta"))


def run_write(engine: sa.Engine, fn: Callable[[sa.Connection], T], retries: int = 30,
              retry_duplicates: bool = False) -> T:
    """Run ``fn(conn)`` in one write transaction, re-run from the start on a write conflict.

    SQLite transactions start with ``BEGIN IMMEDIATE`` (the write lock at once), so an audit append
    never has to upgrade a read lock.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    fn : callable(Connection) -> T
        The whole transaction (it may run more than once).
    retries : int, default 30
    retry_duplicates : bool, default False
        Also re-run on a duplicate key: ``fn`` inserts a row when missing, and another writer
        inserted the same key at the same moment (the re-run finds it).

    Returns
    -------
    T
        What ``fn`` returned.

    Example
    -------
    >>> from analytics import db
    >>> run_write(db.connect("sqlite://"), lambda conn: append_audit(conn, "cli", "note", "users", None))
    1
    """
    for attempt in range(retries):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            transient = is_write_conflict(exc) or (retry_duplicates and isinstance(exc, sa.exc.IntegrityError))
            if attempt == retries - 1 or not transient:
                raise
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------------------------------------
# Reading the trail
# ------------------------------------------------------------------------------------------------
def _customer_rows(customer_id: str) -> sa.ColumnElement[bool]:
    """audit rows about one customer's records (matched through each table's key)."""
    txt = sa.String(64)
    inv = schema.invoices
    customer_invoices = sa.select(inv.c.id).where(inv.c.customer_id == customer_id)
    parts = []
    for table in (schema.activities, schema.promises, schema.disputes):
        ids = sa.select(sa.cast(table.c.id, txt)).where(table.c.customer_id == customer_id)
        parts.append(sa.and_(audit.c.table_name == table.name, audit.c.row_id.in_(ids)))
    for table in (schema.writeoff_proposals, schema.adjustments):
        ids = sa.select(sa.cast(table.c.id, txt)).where(table.c.invoice_id.in_(customer_invoices))
        parts.append(sa.and_(audit.c.table_name == table.name, audit.c.row_id.in_(ids)))
    parts.append(sa.and_(audit.c.table_name == "customers", audit.c.row_id == customer_id))
    return sa.or_(*parts)


def audit_trail(engine: sa.Engine | sa.Connection, customer_id: str | None = None, actor: str | None = None,
                limit: int = 500) -> pd.DataFrame:
    """The audit log, newest first, optionally for one customer's records and/or one actor.

    Parameters
    ----------
    engine : sqlalchemy.Engine or Connection
    customer_id : str, optional
        Only rows about this customer's activities, promises, disputes, write-off proposals and
        adjustments.
    actor : str, optional
        Only rows written by this user.
    limit : int, default 500

    Returns
    -------
    pandas.DataFrame
        ``id, logged_at, actor, action, table_name, row_id, before, after`` (before/after are JSON
        text; None for an insert's ``before``).

    Example
    -------
    >>> audit_trail(engine, customer_id="K1").columns.tolist()  # doctest: +SKIP
    ['id', 'logged_at', 'actor', 'action', 'table_name', 'row_id', 'before', 'after']
    """
    stmt = sa.select(audit.c.id, audit.c.logged_at, audit.c.actor, audit.c.action, audit.c.table_name,
                     audit.c.row_id, audit.c.before, audit.c.after)
    if customer_id is not None:
        stmt = stmt.where(_customer_rows(customer_id))
    if actor is not None:
        stmt = stmt.where(audit.c.actor == actor)
    stmt = stmt.order_by(audit.c.id.desc()).limit(int(limit))
    if isinstance(engine, sa.Engine):
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    else:
        rows = engine.execute(stmt).all()
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["id", "logged_at", "actor", "action", "table_name", "row_id", "before", "after"])
    frame["id"] = frame["id"].astype("int64")
    frame["logged_at"] = pd.to_datetime(frame["logged_at"])
    for col in ("actor", "action", "table_name", "row_id", "before", "after"):
        frame[col] = frame[col].astype(object)
    return frame


# ------------------------------------------------------------------------------------------------
# Verifying the chain
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ChainReport:
    """Result of :func:`verify_chain` / :func:`check_rows`.

    ``ok`` is True when every row's hashes are right; else ``broken_id`` is the first broken row and
    ``problem`` says what differs. ``rows`` were checked; ``head_hash`` is the last row's hash.
    """

    ok: bool
    rows: int
    head_hash: str
    broken_id: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict:
        """JSON-ready form (``python -m analytics audit verify --json``)."""
        return dataclasses.asdict(self)


def check_rows(rows: Iterable[Mapping], expected_head: Mapping | None = None) -> ChainReport:
    """Check a sequence of audit rows (in id order) for a linear, untouched chain.

    Parameters
    ----------
    rows : iterable of mapping
        ``id``, the :data:`HASHED_FIELDS`, ``prev_hash`` and ``row_hash``.
    expected_head : mapping, optional
        ``last_id``, ``last_hash``, ``row_count`` the chain should end with (the ``audit_head`` row).

    Returns
    -------
    ChainReport

    Example
    -------
    >>> check_rows([]).ok
    True
    """
    prev, prev_id, n = GENESIS, None, 0
    for row in rows:
        n += 1
        rid = int(row["id"])
        if row.get("prev_hash") != prev:
            where = f"row {prev_id}'s hash" if prev_id is not None else "the start of the chain (64 zeros)"
            return ChainReport(False, n, prev, rid, f"prev_hash does not match {where}: a row before it was "
                               "deleted, inserted or changed")
        expected = row_hash(row, prev)
        if row.get("row_hash") != expected:
            return ChainReport(False, n, prev, rid, "row_hash does not match the row's content: one of "
                               f"{', '.join(HASHED_FIELDS)} was changed after it was written")
        prev, prev_id = expected, rid
    if expected_head is not None:
        want = (expected_head.get("last_id"), expected_head.get("last_hash"), expected_head.get("row_count"))
        if want[2] is not None and (int(want[2]) != n or (want[2] and (int(want[0]) != prev_id or want[1] != prev))):
            return ChainReport(False, n, prev, prev_id,
                               f"the chain's head records {want[2]} rows ending with row {want[0]}, the log has "
                               f"{n} ending with row {prev_id}: rows were removed from (or added to) its end")
    return ChainReport(True, n, prev)


def _stream(conn: sa.Connection):
    cols = [audit.c.id, *[audit.c[f] for f in HASHED_FIELDS], audit.c.prev_hash, audit.c.row_hash]
    result = conn.execute(sa.select(*cols).order_by(audit.c.id))
    while batch := result.fetchmany(_BATCH):
        for r in batch:
            yield r._mapping


def verify_chain(engine: sa.Engine | sa.Connection) -> ChainReport:
    """Check the whole audit log's hash chain and its head (one read transaction).

    Parameters
    ----------
    engine : sqlalchemy.Engine or Connection

    Returns
    -------
    ChainReport
        The first broken row and what differs, or ``ok``.

    Example
    -------
    >>> from analytics import db
    >>> verify_chain(db.connect("sqlite://")).rows
    0
    """
    if isinstance(engine, sa.Engine):
        with engine.connect() as conn:
            with conn.begin():
                return verify_chain(conn)
    conn = engine
    h = conn.execute(sa.select(head.c.last_id, head.c.last_hash, head.c.row_count)
                     .where(head.c.name == HEAD_NAME)).first()
    return check_rows(_stream(conn), dict(h._mapping) if h is not None else None)


# ------------------------------------------------------------------------------------------------
# Append-only guard (installed by migration 0004)
# ------------------------------------------------------------------------------------------------
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def append_only_ddl(dialect: str) -> list[str]:
    """The statements that make ``audit_log`` append-only on ``dialect`` (empty for DuckDB).

    Migration 0004 runs them; keep them stable (a change needs a new migration).

    Example
    -------
    >>> len(append_only_ddl("sqlite")), append_only_ddl("duckdb")
    (2, [])
    """
    if dialect == "postgresql":
        return [_PG_FUNCTION,
                "DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
                "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
                "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
                "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"]
    if dialect == "sqlite":
        return [f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {op} refused'); END"
                for op in ("UPDATE", "DELETE")]
    return []


def protection_installed(engine: sa.Engine | sa.Connection) -> bool:
    """True when the database itself refuses UPDATE/DELETE on ``audit_log`` (False on DuckDB).

    Example
    -------
    >>> from analytics import db
    >>> protection_installed(db.connect("sqlite://"))
    True
    """
    if isinstance(engine, sa.Engine):
        with engine.connect() as conn:
            return protection_installed(conn)
    name = engine.dialect.name
    if name == "postgresql":
        have = set(engine.execute(sa.text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal")).scalars())
        return {"audit_log_no_update_delete", "audit_log_no_truncate"} <= have
    if name == "sqlite":
        have = set(engine.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")).scalars())
        return {"audit_log_no_update", "audit_log_no_delete"} <= have
    return False


def protect_audit_log(engine: sa.Engine) -> bool:
    """Install the append-only triggers if missing (idempotent; migration 0004 already does).

    Parameters
    ----------
    engine : sqlalchemy.Engine

    Returns
    -------
    bool
        True when the database now enforces append-only, False on DuckDB (no triggers: the chain is
        the protection there).

    Example
    -------
    >>> from analytics import db
    >>> protect_audit_log(db.connect("sqlite://"))
    True
    """
    statements = append_only_ddl(engine.dialect.name)
    if not statements:
        return False
    if not protection_installed(engine):
        with engine.begin() as conn:
            for stmt in statements:
                conn.execute(sa.text(stmt))
    return True


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics audit verify [--json]
# ------------------------------------------------------------------------------------------------
def _run_verify(args) -> int:
    from analytics import db

    engine = db.connect(args.db)
    try:
        report = verify_chain(engine)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.as_dict()))
    elif report.ok:
        print(f"audit log intact: {report.rows} rows, head {report.head_hash}")
    else:
        print(f"audit log BROKEN at row {report.broken_id}: {report.problem}")
    return 0 if report.ok else 1


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Add ``audit verify [--json]`` to the ``audit`` command parser."""
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    verify = sub.add_parser("verify", help="check the audit log's hash chain; exit 1 naming the first broken row")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (also accepted before `verify`)")
    verify.set_defaults(run=_run_verify)
