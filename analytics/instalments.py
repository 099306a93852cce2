"""Instalment terms: an invoice paid in portions with their own due dates (ERPNext's payment schedule).

An invoice with rows in ``invoice_instalments`` (revision 0008) is owed in instalments ``1..n`` with due
dates and amounts that add up to the invoice amount. Invoices without a schedule are untouched: every
query below gives exactly :func:`analytics.ledger.open_items` for them.

**Allocation, earliest instalment first.** Whatever settles the invoice by D (cash, credit memos,
write-offs, deductions: ``paid = amount − open at D``, :func:`analytics.ledger.open_items`) is allocated to
instalment 1, then 2, ...: with ``C_k`` the cumulative schedule amount through instalment k,

    open_k = min(a_k, max(0, C_k − paid))           for k < n
    open_n = open_at_D − min(C_{n−1}, max(0, C_{n−1} − paid))

so the instalments' open amounts always add up to the invoice's open amount (the last one carries any
overpayment or upward adjustment). Each instalment is then aged by its own due date.

**Aging basis.** ``basis="due"`` (default) ages by days past the (instalment) due date; ``"document"``
by days since the document date (the invoice date; instalments of one invoice then share a bucket).

Example
-------
>>> import datetime as dt
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> with engine.connect() as conn:
...     q = aged_items(conn, dt.date(2026, 10, 31))
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import sqlalchemy as sa

from analytics import db, schema
from analytics.db import days_between
from analytics.errors import RowError, UserError, ValidationFailed
from analytics.ledger import NO_FILTER, LedgerFilter, as_date, open_items, parse_date

BASES = ("due", "document")
ins = schema.invoice_instalments
inv = schema.invoices


def has_schedules(conn: sa.Connection) -> bool:
    """Does any invoice carry an instalment schedule? (one indexed probe)

    Parameters
    ----------
    conn : sqlalchemy.Connection

    Returns
    -------
    bool

    Example
    -------
    >>> has_schedules(conn)  # doctest: +SKIP
    False
    """
    if not _table_present(conn):
        return False
    return conn.execute(sa.select(ins.c.invoice_id).limit(1)).first() is not None


_PRESENT: dict[str, bool] = {}


def _table_present(conn: sa.Connection) -> bool:
    """Is there an ``invoice_instalments`` table? A read-only warehouse (``AR_DB_READONLY``) or a Spark
    lakehouse may lack it: then no invoice has a schedule. Looked up once per database URL (a migrated
    ledger always has it; only a missing table is looked up again)."""
    key = conn.engine.url.render_as_string(hide_password=True)
    if not _PRESENT.get(key):
        _PRESENT[key] = sa.inspect(conn.engine).has_table(ins.name)  # its own connection: not a KPI statement
    return _PRESENT[key]


def _clamp(value, low, high):
    """``min(high, max(low, value))`` as portable SQL (no GREATEST/LEAST in SQLite)."""
    lowered = sa.case((value < low, low), else_=value)
    return sa.case((lowered > high, high), else_=lowered)


def instalment_items(as_of: dt.date, flt: LedgerFilter = NO_FILTER, basis: str = "due") -> sa.Subquery:
    """Open items at ``as_of``, invoices with a schedule split into their open instalments.

    Columns: those of :func:`analytics.ledger.open_items` (``due_date`` and ``amount_cents`` of the
    instalment for split invoices; ``days_past_due`` by ``basis``) plus ``instalment`` (its number, 0 for
    an invoice without a schedule). Instalments with nothing open are left out.

    Parameters
    ----------
    as_of : datetime.date
    flt : LedgerFilter, optional
    basis : {"due", "document"}

    Returns
    -------
    sqlalchemy.Subquery

    Example
    -------
    >>> instalment_items(dt.date(2026, 10, 31)).c.instalment.name
    'instalment'
    """
    if basis not in BASES:
        raise UserError(f"aging basis {basis!r}: choose 'due' (due date) or 'document' (document date)")
    d = sa.literal(as_date(as_of), sa.Date)
    o = open_items(as_date(as_of), flt)
    cum = _schedule()
    zero = sa.literal_column("0")
    inst_open = _instalment_open(cum, o.c.amount_cents - o.c.open_cents, o.c.open_cents)
    age_from = (lambda due: due) if basis == "due" else (lambda due: o.c.invoice_date)
    split = (sa.select(o.c.invoice_id, o.c.customer_id, o.c.doc_type, o.c.invoice_date,
                       cum.c.due_date.label("due_date"), o.c.currency, cum.c.amount_cents.label("amount_cents"),
                       inst_open.label("open_cents"), days_between(age_from(cum.c.due_date), d).label("days_past_due"),
                       cum.c.seq.label("instalment"))
             .select_from(o.join(cum, cum.c.invoice_id == o.c.invoice_id))
             .where(inst_open != zero))
    whole = (sa.select(o.c.invoice_id, o.c.customer_id, o.c.doc_type, o.c.invoice_date, o.c.due_date, o.c.currency,
                       o.c.amount_cents, o.c.open_cents,
                       (o.c.days_past_due if basis == "due" else days_between(o.c.invoice_date, d)).label("days_past_due"),
                       sa.literal(0, sa.Integer).label("instalment"))
             .where(~o.c.invoice_id.in_(sa.select(ins.c.invoice_id))))
    return sa.union_all(whole, split).subquery("instalment_items")


def bucket_corrections(dv: sa.FromClause, flt: LedgerFilter, bucket_of) -> list[sa.Select]:
    """Rows ``(as_of, b, c)`` that turn a by-invoice bucketing of open amounts into a per-instalment one.

    For every invoice with a schedule issued by each date ``dv.c.as_of``: its open amount with the sign
    reversed in the bucket of the invoice's due date, and each open instalment's amount (allocation as
    in :func:`instalment_items`) in the bucket of the instalment's due date. Added to a by-invoice sum
    (``kpis.ar``'s balance moves: AR, current AR for BPDSO, over 90, the aging history) they move the
    scheduled invoices' amounts to their instalments' buckets; with no schedules they are no rows.

    Parameters
    ----------
    dv : FROM clause
        A table of dates with an ``as_of`` column (:func:`analytics.db.date_values`).
    flt : LedgerFilter
    bucket_of : callable
        ``bucket_of(due_date_column, as_of_column) -> SQL bucket number``.

    Returns
    -------
    list of sqlalchemy.Select
        Two selects of ``(as_of, b, c)`` to UNION ALL with the other moves.

    Example
    -------
    >>> from analytics.db import date_values
    >>> len(bucket_corrections(date_values([dt.date(2026, 10, 31)]), NO_FILTER, lambda due, d: due))
    2
    """
    from analytics.ledger import settlements

    s = settlements()
    moved = (sa.select(sa.func.coalesce(sa.func.sum(s.c.delta_cents), 0))
             .where(s.c.item_id == inv.c.id, s.c.move_date <= dv.c.as_of).scalar_subquery())
    scheduled = flt.apply_to_invoices(
        sa.select(dv.c.as_of, inv.c.id.label("invoice_id"), inv.c.due_date,
                  (inv.c.amount_cents + moved).label("open_cents"), (-moved).label("paid"))
        .select_from(dv.join(inv, inv.c.invoice_date <= dv.c.as_of))
        .where(inv.c.id.in_(sa.select(ins.c.invoice_id)))).subquery("scheduled")
    cum = _schedule()
    zero = sa.literal_column("0")
    inst_open = _instalment_open(cum, scheduled.c.paid, scheduled.c.open_cents)
    whole = sa.select(scheduled.c.as_of, bucket_of(scheduled.c.due_date, scheduled.c.as_of).label("b"),
                      (-scheduled.c.open_cents).label("c")).where(scheduled.c.open_cents != zero)
    split = (sa.select(scheduled.c.as_of, bucket_of(cum.c.due_date, scheduled.c.as_of).label("b"), inst_open.label("c"))
             .select_from(scheduled.join(cum, cum.c.invoice_id == scheduled.c.invoice_id))
             .where(scheduled.c.open_cents != zero))
    return [whole, split]


def _schedule() -> sa.Subquery:
    """The schedule with each instalment's cumulative amount ``cum`` (C_k) and the invoice's ``last_seq``."""
    return sa.select(
        ins.c.invoice_id, ins.c.seq, ins.c.due_date, ins.c.amount_cents,
        sa.func.sum(ins.c.amount_cents).over(partition_by=ins.c.invoice_id, order_by=ins.c.seq).label("cum"),
        sa.func.max(ins.c.seq).over(partition_by=ins.c.invoice_id).label("last_seq"),
    ).subquery("schedule")


def _instalment_open(cum: sa.Subquery, paid, open_total) -> sa.ColumnElement:
    """Open amount of instalment k, earliest first: min(a_k, max(0, C_k − paid)); the last one the rest."""
    zero = sa.literal_column("0")
    before = cum.c.cum - cum.c.amount_cents  # C_{k-1}
    return sa.case(
        (cum.c.seq < cum.c.last_seq, _clamp(cum.c.cum - paid, zero, cum.c.amount_cents)),
        else_=open_total - _clamp(before - paid, zero, before))


def aged_items(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER, basis: str = "due") -> sa.Subquery:
    """The open items to age at ``as_of``: :func:`analytics.ledger.open_items` itself when no invoice has a
    schedule and the basis is the due date (today's query, unchanged), else :func:`instalment_items`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter, optional
    basis : {"due", "document"}

    Returns
    -------
    sqlalchemy.Subquery
        At least the columns of :func:`analytics.ledger.open_items`.

    Example
    -------
    >>> aged_items(conn, dt.date(2026, 10, 31)).c.open_cents.name  # doctest: +SKIP
    'open_cents'
    """
    if basis == "due" and not has_schedules(conn):
        return open_items(as_date(as_of), flt)
    return instalment_items(as_of, flt, basis)


# ------------------------------------------------------------------------------------------------
# Loading schedules: python -m analytics load schedule FILE
# ------------------------------------------------------------------------------------------------
#: Accepted headers (lower case) per field: ours, then ERPNext's payment-schedule export names.
SCHEDULE_COLUMNS = {
    "invoice_id": ("invoice_id", "invoice", "sales invoice", "parent"),
    "due_date": ("due_date", "due date"),
    "amount": ("amount", "payment_amount", "payment amount"),
    "portion": ("portion", "invoice_portion", "invoice portion"),
}


@dataclasses.dataclass(frozen=True)
class ScheduleLoad:
    """What :func:`load_schedules` did."""

    invoices: int
    instalments: int
    unchanged: int

    def summary(self) -> str:
        return (f"instalment schedules: {self.invoices:,} invoices ({self.instalments:,} instalments) added, "
                f"{self.unchanged:,} already loaded")


def _columns(header: list[str]) -> dict[str, int]:
    low = [h.strip().lower() for h in header]
    found = {}
    for field, names in SCHEDULE_COLUMNS.items():
        for n in names:
            if n in low:
                found[field] = low.index(n)
                break
    if "invoice_id" not in found or "due_date" not in found or not ({"amount", "portion"} & set(found)):
        raise UserError("an instalment schedule needs the columns invoice_id, due_date and amount (or portion, "
                        "in percent of the invoice); found " + ", ".join(repr(h) for h in header))
    return found


def _split(total: int, portions: list[Decimal]) -> list[int]:
    """Cents of each portion (percent) of ``total``, half-up, the last one taking the rounding rest."""
    out = [int((Decimal(total) * p / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for p in portions[:-1]]
    return out + [total - sum(out)]


def stage_schedules(conn: sa.Connection, text: str) -> tuple[dict[str, list[tuple[dt.date, int, int]]], list[RowError]]:
    """Parse and check a schedule file against the ledger: invoice -> [(due date, cents, file row)] by due date.

    Checks: the invoice exists and is an invoice or debit memo; dates parse and are not before the
    invoice date; amounts are positive with at most 2 decimals (or portions add up to 100); the
    instalments add up to the invoice amount. Every problem names its row, column and value.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    text : str
        The CSV text.

    Returns
    -------
    (dict, list of RowError)

    Example
    -------
    >>> stage_schedules(conn, "invoice_id,due_date,amount\\nINV-1,2026-11-30,50.00\\n")  # doctest: +SKIP
    """
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not lines:
        raise UserError("the instalment schedule file is empty")
    header = lines[0]
    cols = _columns(header)
    names = {f: header[i].strip() for f, i in cols.items()}
    errors: list[RowError] = []
    raw: dict[str, list[tuple[int, dt.date, Decimal, bool]]] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        cell = lambda f: cells[cols[f]].strip() if cols.get(f) is not None and cols[f] < len(cells) else ""  # noqa: E731
        invoice_id = cell("invoice_id")
        if not invoice_id:
            errors.append(RowError(number, names["invoice_id"], "", "missing invoice id"))
            continue
        try:
            due = parse_date(cell("due_date"))
        except UserError:
            errors.append(RowError(number, names["due_date"], cell("due_date"), "not a date (YYYY-MM-DD)"))
            continue
        is_portion = "amount" not in cols or not cell("amount")
        field = "portion" if is_portion else "amount"
        text_value = cell(field).rstrip("%").replace(",", "")
        try:
            value = Decimal(text_value)
        except InvalidOperation:
            errors.append(RowError(number, names.get(field, field), cell(field), "not a number"))
            continue
        if not value.is_finite() or value <= 0 or (not is_portion and value.as_tuple().exponent < -2):
            errors.append(RowError(number, names.get(field, field), cell(field),
                                   "must be a positive amount with at most 2 decimals" if not is_portion
                                   else "must be a positive percentage"))
            continue
        raw.setdefault(invoice_id, []).append((number, due, value, is_portion))
    found = {}
    ids = list(raw)
    for i in range(0, len(ids), 500):
        for r in conn.execute(sa.select(inv.c.id, inv.c.doc_type, inv.c.invoice_date, inv.c.amount_cents)
                              .where(inv.c.id.in_(ids[i:i + 500]))):
            found[r.id] = r
    staged: dict[str, list[tuple[dt.date, int, int]]] = {}
    for invoice_id, rows in raw.items():
        first = rows[0][0]
        doc = found.get(invoice_id)
        if doc is None:
            errors.append(RowError(first, names["invoice_id"], invoice_id, "no such invoice in the ledger"))
            continue
        if doc.doc_type not in ("invoice", "debit_memo"):
            errors.append(RowError(first, names["invoice_id"], invoice_id, "a credit memo has no instalments"))
            continue
        bad = [r for r in rows if r[1] < as_date(doc.invoice_date)]
        for number, due, _, _ in bad:
            errors.append(RowError(number, names["due_date"], due.isoformat(),
                                   f"before the invoice date {as_date(doc.invoice_date).isoformat()}"))
        if bad:
            continue
        rows = sorted(rows, key=lambda r: (r[1], r[0]))
        total = int(doc.amount_cents)
        if all(r[3] for r in rows):
            if sum(r[2] for r in rows) != 100:
                errors.append(RowError(first, names.get("portion", "portion"), str(sum(r[2] for r in rows)),
                                       f"the portions of {invoice_id} add up to {sum(r[2] for r in rows)} %, not 100 %"))
                continue
            cents = _split(total, [r[2] for r in rows])
        elif any(r[3] for r in rows):
            errors.append(RowError(first, names["invoice_id"], invoice_id, "give every instalment an amount, or "
                                   "every one a portion"))
            continue
        else:
            cents = [int(r[2] * 100) for r in rows]
            if sum(cents) != total:
                errors.append(RowError(first, names["amount"], f"{sum(cents) / 100:,.2f}",
                                       f"the instalments of {invoice_id} add up to {sum(cents) / 100:,.2f}, "
                                       f"not the invoice amount {total / 100:,.2f}"))
                continue
        if any(c <= 0 for c in cents):
            errors.append(RowError(first, names["invoice_id"], invoice_id, "an instalment would be zero"))
            continue
        staged[invoice_id] = [(r[1], c, r[0]) for r, c in zip(rows, cents)]
    return staged, sorted(errors, key=lambda e: e.row)


def load_schedules(engine: sa.Engine, source, *, skip_invalid: bool = False) -> ScheduleLoad:
    """Load instalment schedules (CSV: ``invoice_id, due_date, amount`` or ``portion``; ERPNext's payment
    schedule headers accepted), all or nothing, safe to repeat.

    An invoice whose schedule is already loaded identically is skipped; a different schedule for it is
    a row error (schedules are not silently replaced).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    source : path, bytes or binary file-like
    skip_invalid : bool

    Returns
    -------
    ScheduleLoad

    Raises
    ------
    ValidationFailed
        Bad rows and not ``skip_invalid``; nothing written.

    Example
    -------
    >>> load_schedules(engine, "schedules.csv").instalments  # doctest: +SKIP
    6
    """
    db.require_writable(engine, "load instalment schedules")
    data, name = read_upload(source)
    text = data.decode("utf-8-sig", errors="replace")
    with db.writer_lock(engine), engine.begin() as conn:
        db.lock_ledger(conn)  # check-then-write: a second load at the same instant waits and finds these rows
        staged, errors = stage_schedules(conn, text)
        existing: dict[str, list[tuple[dt.date, int]]] = {}
        ids = list(staged)
        for i in range(0, len(ids), 500):
            for r in conn.execute(sa.select(ins.c.invoice_id, ins.c.due_date, ins.c.amount_cents)
                                  .where(ins.c.invoice_id.in_(ids[i:i + 500])).order_by(ins.c.invoice_id, ins.c.seq)):
                existing.setdefault(r.invoice_id, []).append((as_date(r.due_date), int(r.amount_cents)))
        new, unchanged = [], 0
        for invoice_id, parts in staged.items():
            if invoice_id in existing:
                if existing[invoice_id] == [(due, c) for due, c, _ in parts]:
                    unchanged += 1
                else:
                    errors.append(RowError(parts[0][2], "invoice_id", invoice_id, "conflicts with the schedule "
                                           "already loaded for this invoice"))
                continue
            new += [{"invoice_id": invoice_id, "seq": k, "due_date": due, "amount_cents": c}
                    for k, (due, c, _) in enumerate(parts, start=1)]
        if errors and not skip_invalid:
            raise ValidationFailed(sorted(errors, key=lambda e: e.row), name or "schedule")
        if new:
            db.bulk_insert(conn, ins, new)
            db.bump_ledger_version(conn)
    return ScheduleLoad(len({r["invoice_id"] for r in new}), len(new), unchanged)


def read_upload(source) -> tuple[bytes, str | None]:
    """The bytes and name of a small input file (path, bytes or a binary file-like such as Streamlit's
    ``UploadedFile``), refused above ``AR_LOAD_MAX_MB`` (200 MB) as the ledger loaders do.

    Parameters
    ----------
    source : path, bytes or binary file-like

    Returns
    -------
    (bytes, str or None)

    (The loaders' reader is not imported: ``analytics.loaders`` dispatches ``load rates`` and
    ``load schedule`` here, so importing it back would make a cycle.)

    Example
    -------
    >>> read_upload(b"Date,USD\\n")
    (b'Date,USD\\n', None)
    """
    import os
    from pathlib import Path

    limit = int(float(os.environ.get("AR_LOAD_MAX_MB") or 200) * 2**20)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        if path.stat().st_size > limit:
            raise UserError(f"{path.name}: larger than AR_LOAD_MAX_MB allows; split it")
        data, name = path.read_bytes(), path.name
    else:
        data, name = source.read(limit + 1), getattr(source, "name", None)
    if len(data) > limit:
        raise UserError(f"{name or 'input'}: larger than AR_LOAD_MAX_MB allows; split it")
    return data, name


__all__ = ["BASES", "has_schedules", "instalment_items", "bucket_corrections", "aged_items", "stage_schedules",
           "load_schedules", "read_upload"]
