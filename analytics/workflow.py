"""Recording the collector's work, with an append-only audit trail.

Every function here is one transaction: validate the input, check the user's permission
(:func:`analytics.auth.require`, including the collector's portfolio), write, append a row to
``audit_log`` (who, when, action, table, row id, before/after as JSON) and bump the ledger version
so cached results are refreshed. If anything fails nothing is written.

The audit log itself (hash chain, append-only triggers, ``audit verify``) is :mod:`analytics.audit`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import numbers
import random
import time

import sqlalchemy as sa

from analytics import schema
from analytics.audit import append_audit, audit_trail, is_write_conflict, protect_audit_log  # noqa: F401
from analytics.auth import PermissionDenied, User, require
from analytics.db import bump_ledger_version, lock_ledger, writer_lock
from analytics.ledger import as_date, money_text, open_amount_cents  # noqa: F401  (as_date: re-exported)
from analytics.errors import UserError

audit = schema.audit_log


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------------------------------------
# Validation helpers
# ------------------------------------------------------------------------------------------------
def _amount(value, field: str = "amount_cents") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{field}: {value!r} must be a whole number of cents")
    value = int(value)
    if value <= 0:
        raise UserError(f"{field}: must be greater than zero (got {value})")
    return value


def _text(value, field: str, max_len: int, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise UserError(f"{field}: must not be empty")
        return None
    value = str(value).strip()
    if "\x00" in value:
        raise UserError(f"{field}: contains a NUL character (\\x00), which no database stores as text")
    if len(value) > max_len:
        raise UserError(f"{field}: at most {max_len} characters (got {len(value)})")
    return value


def _row(conn: sa.Connection, table: sa.Table, key) -> dict | None:
    row = conn.execute(sa.select(table).where(table.c[table.primary_key.columns.keys()[0]] == key)).first()
    return dict(row._mapping) if row is not None else None


def _invoice(conn: sa.Connection, invoice_id: str, field: str = "invoice_id") -> dict:
    row = _row(conn, schema.invoices, invoice_id)
    if row is None:
        raise UserError(f"{field}: unknown invoice {invoice_id!r}")
    return row


def _customer(conn: sa.Connection, customer_id: str) -> dict:
    row = _row(conn, schema.customers, customer_id)
    if row is None:
        raise UserError(f"customer_id: unknown customer {customer_id!r}")
    return row


def _insert(conn: sa.Connection, table: sa.Table, values: dict) -> int:
    result = conn.execute(table.insert().values(**values))
    return int(result.inserted_primary_key[0])


#: Workflow writes that leave every money table as it was: cached money figures stay valid after them.
_WORK_ONLY_ACTIONS = frozenset({"log_activity", "record_promise", "open_dispute", "resolve_dispute",
                                "propose_writeoff", "reject_writeoff"})


def _finish(conn: sa.Connection, user: User, action: str, table: sa.Table, row_id, before, after) -> None:
    append_audit(conn, user.username, action, table.name, row_id, before, after)
    bump_ledger_version(conn, money=action not in _WORK_ONLY_ACTIONS)


_RETRIES = 30  # DuckDB is optimistic: 20 writers at once conflict on the shared version row
BUSY_MESSAGE = ("the ledger is busy with other people's changes right now; nothing was saved. "
                "Try again in a moment.")


def retry_on_conflict(fn):
    """Decorator for a write function whose first argument is the engine: run it as one unit that
    is re-run from the start (validation included) when the database says another writer got there
    first, so the re-run sees that writer's rows and its checks decide again. On DuckDB the writes of
    one process also queue on :func:`analytics.db.writer_lock` instead of conflicting.

    After :data:`_RETRIES` attempts the caller gets a :class:`~analytics.errors.UserError` with
    :data:`BUSY_MESSAGE`, never the engine's own error text.

    Example
    -------
    >>> @retry_on_conflict
    ... def post(engine, amount):
    ...     with begin_write(engine) as conn:
    ...         ...
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        engine = args[0] if args else kwargs.get("engine")
        for attempt in range(_RETRIES):
            try:
                with writer_lock(engine):
                    return fn(*args, **kwargs)
            except sa.exc.DBAPIError as exc:
                if not is_write_conflict(exc):
                    raise
                if attempt == _RETRIES - 1:
                    raise UserError(BUSY_MESSAGE) from exc
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


@contextlib.contextmanager
def begin_write(engine: sa.Engine):
    """A write transaction holding the ledger's write lock (:func:`lock_ledger`) from its first statement.

    On first use per engine, installs the append-only guard on audit_log. Refused with
    :class:`~analytics.errors.ReadOnlyDatabase` on a read-only database
    (:func:`analytics.db.is_readonly`), before anything is sent to it. Use it inside a function
    decorated with :func:`retry_on_conflict`.

    Example
    -------
    >>> from analytics import db
    >>> with begin_write(db.connect("sqlite://")) as conn:
    ...     conn.execute(sa.text("SELECT 1")).scalar()
    1
    """
    if not isinstance(engine, sa.Engine):
        raise TypeError("workflow functions take a SQLAlchemy Engine (each write is its own transaction)")
    from analytics.db import require_writable

    require_writable(engine, "record work (activities, promises, disputes, write-offs, cash application)")
    with engine.begin() as conn:
        lock_ledger(conn)
        yield conn


def _check_not_future(day: dt.date, field: str, today: dt.date) -> None:
    if day > today:
        raise UserError(f"{field}: {day.isoformat()} is in the future (today is {today.isoformat()})")


# ------------------------------------------------------------------------------------------------
# The work
# ------------------------------------------------------------------------------------------------
@retry_on_conflict
def log_activity(engine: sa.Engine, user: User, customer_id: str, type: str, outcome: str | None = None,
                 note: str | None = None, invoice_id: str | None = None, at: dt.datetime | None = None) -> int:
    """Record a contact or note on an account (call, e-mail, letter, portal, escalation, note).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``write_activity`` on the customer (collectors: own portfolio only).
    customer_id : str
    type : str
        One of ``call, email, letter, portal, escalation, note``.
    outcome : str, optional
        Short result, e.g. ``no answer``, ``promised``, ``left voicemail`` (<= 64 characters).
    note : str, optional
        Free text.
    invoice_id : str, optional
        The item discussed; must belong to the customer.
    at : datetime.datetime or date, optional
        When it happened (UTC; default now). Not in the future.

    Returns
    -------
    int
        The new activity id.

    Example
    -------
    >>> log_activity(engine, user, "K1", "call", outcome="no answer")  # doctest: +SKIP
    17
    """
    now = _utcnow()
    if at is None:
        at = now
    elif isinstance(at, dt.date) and not isinstance(at, dt.datetime):
        at = dt.datetime.combine(at, dt.time())
    elif not isinstance(at, dt.datetime):
        raise UserError(f"at: {at!r} is not a date/time")
    if at.tzinfo is not None:
        at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if at > now + dt.timedelta(minutes=5):
        raise UserError(f"at: {at:%Y-%m-%d %H:%M} is in the future")
    if type not in schema.ACTIVITY_TYPES:
        raise UserError(f"type: unknown activity type {type!r} (one of {', '.join(schema.ACTIVITY_TYPES)})")
    outcome = _text(outcome, "outcome", 64, required=False)
    note = _text(note, "note", 4000, required=False)
    with begin_write(engine) as conn:
        _customer(conn, customer_id)
        require(user, "write_activity", customer_id, conn)
        if invoice_id is not None:
            inv = _invoice(conn, invoice_id)
            if inv["customer_id"] != customer_id:
                raise UserError(f"invoice_id: invoice {invoice_id!r} belongs to {inv['customer_id']!r}, "
                                f"not {customer_id!r}")
        values = dict(customer_id=customer_id, invoice_id=invoice_id, occurred_at=at, collector_id=user.collector_id,
                      type=type, outcome=outcome, note=note)
        new_id = _insert(conn, schema.activities, values)
        _finish(conn, user, "log_activity", schema.activities, new_id, None, {"id": new_id, **values})
    return new_id


@retry_on_conflict
def record_promise(engine: sa.Engine, user: User, customer_id: str, promised_date: dt.date, amount_cents: int,
                   invoice_id: str | None = None, today: dt.date | None = None) -> int:
    """Record a promise to pay.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``record_promise`` on the customer.
    customer_id : str
    promised_date : datetime.date
        Not before ``today``.
    amount_cents : int
        > 0; with the customer's promises not yet due (promised date on or after ``today``), not
        above its net open balance at ``today`` (so the same promise recorded twice at once is refused).
    invoice_id : str, optional
        Must belong to the customer.
    today : datetime.date, optional
        The day the promise is made (default: today).

    Returns
    -------
    int
        The new promise id.

    Example
    -------
    >>> record_promise(engine, user, "K1", dt.date(2024, 5, 1), 50_000, today=dt.date(2024, 4, 20))  # doctest: +SKIP
    3
    """
    today = as_date(today, "today") if today is not None else dt.date.today()
    promised_date = as_date(promised_date, "promised_date")
    amount_cents = _amount(amount_cents)
    if promised_date < today:
        raise UserError(f"promised_date: {promised_date.isoformat()} is in the past (today is {today.isoformat()})")
    with begin_write(engine) as conn:
        cust = _customer(conn, customer_id)
        require(user, "record_promise", customer_id, conn)
        if invoice_id is not None:
            inv = _invoice(conn, invoice_id)
            if inv["customer_id"] != customer_id:
                raise UserError(f"invoice_id: invoice {invoice_id!r} belongs to {inv['customer_id']!r}, "
                                f"not {customer_id!r}")
        balance = open_amount_cents(conn, customer_id=customer_id, as_of=today)
        p = schema.promises
        pending = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(p.c.amount_cents), 0)).where(
            p.c.customer_id == customer_id, p.c.promised_date >= today)).scalar())
        if amount_cents + pending > balance:
            cur = cust["currency"]
            raise UserError(
                f"amount: {money_text(amount_cents, cur)} is more than the customer's open balance of "
                f"{money_text(balance, cur)} on {today:%d %b %Y}"
                + (f" less {money_text(pending, cur)} already promised (promises not yet due)" if pending else ""))
        values = dict(customer_id=customer_id, invoice_id=invoice_id, made_on=today, promised_date=promised_date,
                      amount_cents=amount_cents, recorded_by=user.username)
        new_id = _insert(conn, schema.promises, values)
        _finish(conn, user, "record_promise", schema.promises, new_id, None, {"id": new_id, **values})
    return new_id


@retry_on_conflict
def open_dispute(engine: sa.Engine, user: User, invoice_id: str, reason_code: str, amount_cents: int,
                 opened: dt.date | None = None, note: str | None = None) -> int:
    """Open a dispute on an item.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``manage_disputes`` on the invoice's customer.
    invoice_id : str
    reason_code : str
        E.g. ``pricing``, ``quantity``, ``quality``, ``delivery`` (<= 32 characters).
    amount_cents : int
        > 0; with the disputes already open on the item, not above its open amount at ``opened``.
    opened : datetime.date, optional
        Default today; not before the invoice date, not in the future.
    note : str, optional
        Kept in the audit row.

    Returns
    -------
    int
        The new dispute id.
    """
    today = dt.date.today()
    opened = as_date(opened, "opened") if opened is not None else today
    _check_not_future(opened, "opened", today)
    reason_code = _text(reason_code, "reason_code", 32)
    note = _text(note, "note", 4000, required=False)
    amount_cents = _amount(amount_cents)
    d = schema.disputes
    with begin_write(engine) as conn:
        inv = _invoice(conn, invoice_id)
        require(user, "manage_disputes", inv["customer_id"], conn)
        if opened < inv["invoice_date"]:
            raise UserError(f"opened: {opened.isoformat()} is before the invoice date "
                            f"{inv['invoice_date'].isoformat()}")
        item_open = open_amount_cents(conn, invoice_id=invoice_id, as_of=opened)
        already = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(d.c.amount_cents), 0)).where(
            d.c.invoice_id == invoice_id, d.c.resolved_date.is_(None))).scalar())
        if amount_cents + already > item_open:
            cur = inv["currency"]
            raise UserError(f"amount: {money_text(amount_cents, cur)} is more than invoice {invoice_id}'s open "
                            f"amount of {money_text(item_open, cur)} on {opened:%d %b %Y}"
                            + (f" less {money_text(already, cur)} already in dispute" if already else ""))
        values = dict(invoice_id=invoice_id, customer_id=inv["customer_id"], opened_date=opened,
                      reason_code=reason_code, amount_cents=amount_cents, created_by=user.username)
        new_id = _insert(conn, d, values)
        _finish(conn, user, "open_dispute", d, new_id, None, {"id": new_id, **values, "note": note})
    return new_id


@retry_on_conflict
def resolve_dispute(engine: sa.Engine, user: User, dispute_id: int, outcome: str,
                    resolved: dt.date | None = None) -> None:
    """Close an open dispute with an outcome.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``manage_disputes`` on the dispute's customer.
    dispute_id : int
    outcome : str
        One of ``credit_issued, customer_paid, written_off, rejected, withdrawn``.
    resolved : datetime.date, optional
        Default today; not before the opening date, not in the future.
    """
    today = dt.date.today()
    resolved = as_date(resolved, "resolved") if resolved is not None else today
    _check_not_future(resolved, "resolved", today)
    if outcome not in schema.DISPUTE_OUTCOMES:
        raise UserError(f"outcome: unknown outcome {outcome!r} (one of {', '.join(schema.DISPUTE_OUTCOMES)})")
    d = schema.disputes
    with begin_write(engine) as conn:
        before = _row(conn, d, dispute_id)
        if before is None:
            raise UserError(f"dispute_id: unknown dispute {dispute_id!r}")
        require(user, "manage_disputes", before["customer_id"], conn)
        if before["resolved_date"] is not None:
            raise UserError(f"dispute_id: dispute {dispute_id} was already resolved on "
                            f"{before['resolved_date'].isoformat()} ({before['outcome']})")
        if resolved < before["opened_date"]:
            raise UserError(f"resolved: {resolved.isoformat()} is before the dispute was opened "
                            f"({before['opened_date'].isoformat()})")
        conn.execute(d.update().where(d.c.id == dispute_id).values(resolved_date=resolved, outcome=outcome))
        _finish(conn, user, "resolve_dispute", d, dispute_id, before,
                {**before, "resolved_date": resolved, "outcome": outcome})


@retry_on_conflict
def propose_writeoff(engine: sa.Engine, user: User, invoice_id: str, amount_cents: int, reason: str,
                     today: dt.date | None = None) -> int:
    """Propose writing off (part of) an item; a manager decides with :func:`decide_writeoff`.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``propose_writeoff`` on the invoice's customer.
    invoice_id : str
    amount_cents : int
        > 0; with other pending proposals on the item, not above its open amount at ``today``.
    reason : str
        Why (<= 200 characters).
    today : datetime.date, optional
        Default today (the open amount is taken at this date).

    Returns
    -------
    int
        The proposal id.
    """
    today = as_date(today, "today") if today is not None else dt.date.today()
    amount_cents = _amount(amount_cents)
    reason = _text(reason, "reason", 200)
    w = schema.writeoff_proposals
    with begin_write(engine) as conn:
        inv = _invoice(conn, invoice_id)
        require(user, "propose_writeoff", inv["customer_id"], conn)
        item_open = open_amount_cents(conn, invoice_id=invoice_id, as_of=today)
        pending = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(w.c.amount_cents), 0)).where(
            w.c.invoice_id == invoice_id, w.c.status == "proposed")).scalar())
        if amount_cents + pending > item_open:
            cur = inv["currency"]
            raise UserError(f"amount: {money_text(amount_cents, cur)} is more than invoice {invoice_id}'s open "
                            f"amount of {money_text(item_open, cur)} on {today:%d %b %Y}"
                            + (f" less {money_text(pending, cur)} already proposed for write-off" if pending else ""))
        values = dict(invoice_id=invoice_id, amount_cents=amount_cents, reason=reason, proposed_by=user.username,
                      proposed_at=_utcnow(), status="proposed")
        new_id = _insert(conn, w, values)
        _finish(conn, user, "propose_writeoff", w, new_id, None, {"id": new_id, **values})
    return new_id


@retry_on_conflict
def decide_writeoff(engine: sa.Engine, user: User, proposal_id: int, approve: bool,
                    decided: dt.date | None = None) -> int | None:
    """Approve or reject a write-off proposal (managers and admins; not your own proposal).

    Approval posts an adjustment of kind ``write_off`` (negative, the proposal's amount) dated
    the decision date, after checking the item still has that much open.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``approve_writeoff``; must not be the proposer (four-eyes rule).
    proposal_id : int
    approve : bool
    decided : datetime.date, optional
        Decision date (default today); the adjustment's date.

    Returns
    -------
    int or None
        The adjustment id when approved, else None.
    """
    today = dt.date.today()
    decided = as_date(decided, "decided") if decided is not None else today
    _check_not_future(decided, "decided", today)
    require(user, "approve_writeoff")
    w = schema.writeoff_proposals
    with begin_write(engine) as conn:
        before = _row(conn, w, proposal_id)
        if before is None:
            raise UserError(f"proposal_id: unknown write-off proposal {proposal_id!r}")
        if before["status"] != "proposed":
            raise UserError(f"write-off proposal {proposal_id} was already {before['status']}"
                            + (f" by {before['decided_by']}" if before.get("decided_by") else "")
                            + (f" at {before['decided_at']:%d %b %Y %H:%M} UTC" if before.get("decided_at") else "")
                            + "; nothing was changed.")
        if approve and before["proposed_by"] == user.username:
            raise PermissionDenied(f"{user.username!r} proposed write-off {proposal_id}: "
                                   "another manager must approve it")
        now = _utcnow()
        after = {**before, "status": "approved" if approve else "rejected", "decided_by": user.username,
                 "decided_at": now}
        adj_id = None
        if approve:
            inv = _invoice(conn, before["invoice_id"])
            if decided < inv["invoice_date"]:
                raise UserError(f"decided: {decided.isoformat()} is before the invoice date "
                                f"{inv['invoice_date'].isoformat()}")
            item_open = open_amount_cents(conn, invoice_id=before["invoice_id"], as_of=decided)
            if before["amount_cents"] > item_open:
                cur = inv["currency"]
                raise UserError(f"write-off proposal {proposal_id} ({money_text(before['amount_cents'], cur)}) is now "
                                f"more than invoice {inv['id']}'s open amount of {money_text(item_open, cur)} on "
                                f"{decided:%d %b %Y}; reject it and propose again")
            adj = dict(invoice_id=before["invoice_id"], adj_date=decided, amount_cents=-before["amount_cents"],
                       kind="write_off", reason=before["reason"][:200], created_by=user.username)
            adj_id = _insert(conn, schema.adjustments, adj)
            append_audit(conn, user.username, "post_writeoff", schema.adjustments.name, adj_id, None,
                         {"id": adj_id, **adj, "proposal_id": proposal_id}, at=now)
        conn.execute(w.update().where(w.c.id == proposal_id).values(
            status=after["status"], decided_by=user.username, decided_at=now))
        _finish(conn, user, "approve_writeoff" if approve else "reject_writeoff", w, proposal_id, before, after)
    return adj_id

