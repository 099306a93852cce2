"""One account's records (Customer 360), the customer picker and table exports.

These are plain listings of ledger rows, not KPIs; open amounts reuse :func:`analytics.ledger.open_items`.
Each function takes a SQLAlchemy Connection first, so the dashboard can cache it per ledger version.
CLI: ``python -m analytics customer CUSTOMER_ID [--as-of D] --json`` prints the whole account.

Example
-------
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> with engine.connect() as conn:
...     customer_profile(conn, "nobody") is None
True
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.errors import UserError
from analytics.kpis.common import periods_table
from analytics.ledger import (DEFAULT_GRACE_DAYS, NO_FILTER, LedgerFilter, as_date, last_contact,
                              open_amount_cents, open_items, open_disputes_at, promise_candidates, promise_outcomes,
                              receipt_scope)

cust = schema.customers
inv = schema.invoices
rec = schema.receipts
apps = schema.applications
disp = schema.disputes
prom = schema.promises
act = schema.activities
coll = schema.collectors
wop = schema.writeoff_proposals


def _frame(result, columns: list[str] | None = None) -> pd.DataFrame:
    rows = result.all()
    cols = columns or list(result.keys())
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def customer_choices(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Customers in the filter's scope (business unit, region, collector, customers; currency = the
    customer's billing currency), by name.

    Returns ``customer_id, name, collector_id``.
    """
    stmt = sa.select(cust.c.id.label("customer_id"), cust.c.name, cust.c.collector_id).order_by(cust.c.name, cust.c.id)
    clause = flt.customer_clause(cust.c.id)
    if clause is not None:
        stmt = stmt.where(clause)
    if flt.currencies:  # the sidebar currency: customers billed in it
        stmt = stmt.where(cust.c.currency.in_(flt.currencies))
    return _frame(conn.execute(stmt))


def customer_profile(conn: sa.Connection, customer_id: str) -> dict | None:
    """The customer's master data with its collector's name, or None."""
    stmt = (
        sa.select(cust, coll.c.name.label("collector_name"))
        .select_from(cust.outerjoin(coll, coll.c.id == cust.c.collector_id))
        .where(cust.c.id == customer_id)
    )
    row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def customer_items(conn: sa.Connection, customer_id: str, as_of: dt.date) -> pd.DataFrame:
    """Every item of the customer issued by ``as_of`` with its open amount at ``as_of``.

    Returns ``invoice_id, doc_type, invoice_date, due_date, currency, amount_cents, open_cents,
    days_past_due`` (days past due only for open items), newest first.
    """
    oi = open_items(as_of, LedgerFilter(customers=(customer_id,)))
    stmt = (
        sa.select(inv.c.id.label("invoice_id"), inv.c.doc_type, inv.c.invoice_date, inv.c.due_date, inv.c.currency,
                  inv.c.amount_cents, sa.func.coalesce(oi.c.open_cents, 0).label("open_cents"),
                  oi.c.days_past_due, inv.c.reference)
        .select_from(inv.outerjoin(oi, oi.c.invoice_id == inv.c.id))
        .where(inv.c.customer_id == customer_id, inv.c.invoice_date <= sa.literal(as_of, sa.Date))
        .order_by(inv.c.invoice_date.desc(), inv.c.id.desc())
    )
    frame = _frame(conn.execute(stmt))
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    frame["open_cents"] = frame["open_cents"].astype("int64")
    frame["days_past_due"] = pd.array(frame["days_past_due"], dtype="Int64")
    return frame


def customer_instalments(conn: sa.Connection, customer_id: str, as_of: dt.date) -> pd.DataFrame:
    """The open instalments at ``as_of`` of the customer's invoices that have a schedule
    (:func:`analytics.instalments.instalment_items`: whatever settled an invoice pays its earliest
    instalment first); empty when none has.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    customer_id : str
    as_of : datetime.date

    Returns
    -------
    pandas.DataFrame
        ``invoice_id, instalment, due_date, currency, amount_cents, open_cents, days_past_due`` by
        invoice and instalment number.

    Example
    -------
    >>> customer_instalments(conn, "K1", dt.date(2024, 6, 30))  # doctest: +SKIP
    """
    from analytics.instalments import has_schedules, instalment_items

    cols = ["invoice_id", "instalment", "due_date", "currency", "amount_cents", "open_cents", "days_past_due"]
    if not has_schedules(conn):
        return pd.DataFrame(columns=cols).astype({c: "int64" for c in cols[4:]})
    q = instalment_items(as_of, LedgerFilter(customers=(customer_id,)))
    frame = _frame(conn.execute(sa.select(*[q.c[c] for c in cols]).where(q.c.instalment > 0)
                                .order_by(q.c.invoice_id, q.c.instalment)), cols)
    return frame.astype({c: "int64" for c in cols[4:]} | {"instalment": "int64"})


def customer_receipts(conn: sa.Connection, customer_id: str, as_of: dt.date) -> pd.DataFrame:
    """Receipts of the customer up to ``as_of`` with the part applied to invoices by then; a receipt the
    bank returned by ``as_of`` is not a payment and is left out (:func:`analytics.ledger.receipt_scope`).

    Returns ``receipt_id, receipt_date, method, currency, amount_cents, applied_cents, unapplied_cents,
    remittance_ref``, newest first.
    """
    d = sa.literal(as_of, sa.Date)
    applied = (
        sa.select(apps.c.receipt_id, sa.func.sum(apps.c.amount_cents).label("applied_cents"))
        .where(apps.c.receipt_id.is_not(None), apps.c.applied_date <= d)
        .group_by(apps.c.receipt_id).subquery("applied")
    )
    applied_cents = sa.func.coalesce(applied.c.applied_cents, 0)
    stmt = (
        sa.select(rec.c.id.label("receipt_id"), rec.c.receipt_date, rec.c.method, rec.c.currency, rec.c.amount_cents,
                  applied_cents.label("applied_cents"), (rec.c.amount_cents - applied_cents).label("unapplied_cents"),
                  rec.c.remittance_ref)
        .select_from(rec.outerjoin(applied, applied.c.receipt_id == rec.c.id))
        .where(rec.c.customer_id == customer_id, rec.c.receipt_date <= d, *receipt_scope(NO_FILTER, as_of=as_of))
        .order_by(rec.c.receipt_date.desc(), rec.c.id.desc())
    )
    return _frame(conn.execute(stmt))


def customer_disputes(conn: sa.Connection, customer_id: str, as_of: dt.date | None = None) -> pd.DataFrame:
    """Every dispute of the customer, open ones first, newest first.

    With ``as_of``, the disputes as they stood at the end of that day: opened on or before it, and a
    resolution dated after it is not shown yet (the dispute was still open then).

    Returns ``dispute_id, invoice_id, opened_date, reason_code, amount_cents, resolved_date, outcome,
    created_by``.
    """
    resolved_date, outcome = disp.c.resolved_date, disp.c.outcome
    conds = [disp.c.customer_id == customer_id]
    if as_of is not None:
        d = sa.literal(as_of, sa.Date)
        conds.append(disp.c.opened_date <= d)
        known = disp.c.resolved_date <= d
        resolved_date, outcome = sa.case((known, disp.c.resolved_date)), sa.case((known, disp.c.outcome))
    stmt = (
        sa.select(disp.c.id.label("dispute_id"), disp.c.invoice_id, disp.c.opened_date, disp.c.reason_code,
                  disp.c.amount_cents, resolved_date.label("resolved_date"), outcome.label("outcome"),
                  disp.c.created_by)
        .where(*conds)
        .order_by(resolved_date.is_not(None), disp.c.opened_date.desc(), disp.c.id.desc())
    )
    return _frame(conn.execute(stmt))


def customer_promises(conn: sa.Connection, customer_id: str, as_of: dt.date | None = None) -> pd.DataFrame:
    """Every promise to pay of the customer, newest first; with ``as_of``, each with its status at the end
    of ``as_of`` (:func:`analytics.ledger.promise_outcomes`, the one "promise kept" rule; a promise
    recorded after ``as_of`` is listed too, as ``pending``).

    Returns ``promise_id, invoice_id, made_on, promised_date, amount_cents, recorded_by`` (+ ``status``,
    ``collected_cents`` with ``as_of``).

    Example
    -------
    >>> customer_promises(conn, "K1", dt.date(2024, 4, 15))["status"].tolist()  # doctest: +SKIP
    ['pending', 'broken']
    """
    if as_of is None:
        stmt = (
            sa.select(prom.c.id.label("promise_id"), prom.c.invoice_id, prom.c.made_on, prom.c.promised_date,
                      prom.c.amount_cents, prom.c.recorded_by)
            .where(prom.c.customer_id == customer_id)
            .order_by(prom.c.made_on.desc(), prom.c.id.desc())
        )
        return _frame(conn.execute(stmt))
    ev = _promise_outcomes(customer_id, as_of, made_to=_NEVER)
    stmt = (
        sa.select(ev.c.id.label("promise_id"), ev.c.invoice_id, ev.c.made_on, ev.c.promised_date, ev.c.amount_cents,
                  prom.c.recorded_by, ev.c.status, ev.c.collected_cents)
        .select_from(ev.join(prom, prom.c.id == ev.c.id))
        .order_by(ev.c.made_on.desc(), ev.c.id.desc())
    )
    return _frame(conn.execute(stmt))


_EPOCH = dt.date(1900, 1, 1)
_NEVER = dt.date(9999, 12, 30)


def _promise_outcomes(customer_id: str, as_of: dt.date, made_to: dt.date | None = None) -> sa.Subquery:
    """The customer's promises made up to ``made_to`` (default ``as_of``), judged at the end of ``as_of``."""
    made = periods_table([(_EPOCH, made_to or as_of)])
    judged = sa.select(made.c.period_start, made.c.period_end,
                       sa.literal(as_of + dt.timedelta(days=1), sa.Date).label("cutoff")).subquery("judged")
    return promise_outcomes(promise_candidates(judged, LedgerFilter(customers=(customer_id,))), DEFAULT_GRACE_DAYS)


def customer_facts(conn: sa.Connection, customer_id: str, as_of: dt.date) -> dict:
    """The account's headline facts at the end of ``as_of``, each by the ledger's one definition.

    Returns
    -------
    dict
        ``balance_cents`` (:func:`analytics.ledger.open_amount_cents`), ``open_disputes`` /
        ``disputed_cents`` (:func:`analytics.ledger.open_disputes_at`), ``last_contact`` (date or None) and
        ``days_since_contact`` (:func:`analytics.ledger.last_contact`: a note is not a contact),
        ``promises_kept`` / ``promises_broken`` / ``promises_pending`` (promises made by ``as_of``,
        :func:`analytics.ledger.promise_outcomes`).

    Example
    -------
    >>> customer_facts(conn, "K1", dt.date(2024, 4, 15))["days_since_contact"]  # doctest: +SKIP
    3
    """
    od = open_disputes_at(as_of, LedgerFilter(customers=(customer_id,))).subquery("od")
    n_disp, disputed = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(od.c.amount_cents), 0))).one()
    lc = last_contact(as_of, [customer_id])
    last = conn.execute(sa.select(lc.c.last_contact)).scalar()
    last = as_date(last) if last is not None else None
    ev = _promise_outcomes(customer_id, as_of)
    status = dict(conn.execute(sa.select(ev.c.status, sa.func.count()).group_by(ev.c.status)).all())
    return {
        "balance_cents": open_amount_cents(conn, customer_id=customer_id, as_of=as_of),
        "open_disputes": int(n_disp), "disputed_cents": int(disputed),
        "last_contact": last, "days_since_contact": None if last is None else (as_of - last).days,
        "promises_kept": int(status.get("kept", 0)), "promises_broken": int(status.get("broken", 0)),
        "promises_pending": int(status.get("pending", 0)),
    }


def customer_activities(conn: sa.Connection, customer_id: str, limit: int = 500,
                        as_of: dt.date | None = None) -> pd.DataFrame:
    """The customer's activities (calls, e-mails, letters, notes...), newest first; with ``as_of``, only
    those that happened by the end of that day.

    Returns ``activity_id, occurred_at, type, outcome, note, invoice_id, collector_id``.
    """
    conds = [act.c.customer_id == customer_id]
    if as_of is not None:
        next_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
        conds.append(act.c.occurred_at < sa.literal(next_day, sa.DateTime))
    stmt = (
        sa.select(act.c.id.label("activity_id"), act.c.occurred_at, act.c.type, act.c.outcome, act.c.note,
                  act.c.invoice_id, act.c.collector_id)
        .where(*conds)
        .order_by(act.c.occurred_at.desc(), act.c.id.desc())
        .limit(int(limit))
    )
    return _frame(conn.execute(stmt))


def customer_writeoffs(conn: sa.Connection, customer_id: str) -> pd.DataFrame:
    """Write-off proposals on the customer's items, pending first.

    Returns ``proposal_id, invoice_id, amount_cents, reason, proposed_by, proposed_at, status,
    decided_by, decided_at``.
    """
    stmt = (
        sa.select(wop.c.id.label("proposal_id"), wop.c.invoice_id, wop.c.amount_cents, wop.c.reason,
                  wop.c.proposed_by, wop.c.proposed_at, wop.c.status, wop.c.decided_by, wop.c.decided_at)
        .select_from(wop.join(inv, inv.c.id == wop.c.invoice_id))
        .where(inv.c.customer_id == customer_id)
        .order_by(wop.c.status != "proposed", wop.c.proposed_at.desc())
    )
    return _frame(conn.execute(stmt))


def pending_writeoffs(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Write-off proposals waiting for a decision, in the filter's scope, oldest first.

    Returns ``proposal_id, customer_id, customer_name, invoice_id, amount_cents, reason, proposed_by,
    proposed_at``.
    """
    stmt = (
        sa.select(wop.c.id.label("proposal_id"), inv.c.customer_id, cust.c.name.label("customer_name"),
                  wop.c.invoice_id, wop.c.amount_cents, wop.c.reason, wop.c.proposed_by, wop.c.proposed_at)
        .select_from(wop.join(inv, inv.c.id == wop.c.invoice_id).join(cust, cust.c.id == inv.c.customer_id))
        .where(wop.c.status == "proposed")
        .order_by(wop.c.proposed_at, wop.c.id)
    )
    stmt = flt.apply_to_invoices(stmt)
    return _frame(conn.execute(stmt))


#: Reasons offered for a new dispute besides those already in the ledger (the generator's codes).
STANDARD_DISPUTE_REASONS = ("pricing", "quantity", "damaged", "not_received", "duplicate_billing", "other")


def dispute_reason_codes(conn: sa.Connection) -> list[str]:
    """The reason codes a new dispute may take: the ledger's standard codes (:data:`STANDARD_DISPUTE_REASONS`),
    then any other code already in the ledger's disputes (an imported ledger's own codes).

    Parameters
    ----------
    conn : sqlalchemy.Connection

    Returns
    -------
    list of str

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").connect() as conn:
    ...     dispute_reason_codes(conn)[:3]
    ['pricing', 'quantity', 'damaged']
    """
    used = conn.execute(sa.select(schema.disputes.c.reason_code).distinct()
                        .order_by(schema.disputes.c.reason_code)).scalars().all()
    return list(STANDARD_DISPUTE_REASONS) + [c for c in used if c not in STANDARD_DISPUTE_REASONS]


def last_contacts(conn: sa.Connection, as_of: dt.date, customer_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Each customer's last contact on or before ``as_of`` (:func:`analytics.ledger.last_contact`, the one
    rule): ``customer_id, last_contact`` (a date). The Worklist asks it for today, so a call recorded after
    the ledger's last business date still shows as the account's last contact.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    customer_ids : tuple of str, optional

    Returns
    -------
    pandas.DataFrame

    Example
    -------
    >>> from analytics import db
    >>> with db.connect("sqlite://").connect() as conn:
    ...     len(last_contacts(conn, dt.date(2026, 1, 1)))
    0
    """
    lc = last_contact(as_of, customer_ids)
    frame = _frame(conn.execute(sa.select(lc.c.customer_id, lc.c.last_contact)), ["customer_id", "last_contact"])
    frame["last_contact"] = pd.to_datetime(frame["last_contact"]).dt.date
    return frame


def timeline(items: pd.DataFrame, receipts: pd.DataFrame, disputes: pd.DataFrame, promises: pd.DataFrame,
             activities: pd.DataFrame) -> pd.DataFrame:
    """One account's history as one table, newest first: ``when, kind, what, amount_cents, by``.

    Built from the frames above (no query).
    """
    rows: list[tuple] = []
    for r in items.itertuples(index=False):
        label = {"invoice": "Invoice", "credit_memo": "Credit memo", "debit_memo": "Debit memo"}.get(r.doc_type, r.doc_type)
        rows.append((pd.Timestamp(r.invoice_date), label, f"{r.invoice_id} due {r.due_date}", int(r.amount_cents), ""))
    for r in receipts.itertuples(index=False):
        rows.append((pd.Timestamp(r.receipt_date), "Payment", f"{r.receipt_id} ({r.method})", int(r.amount_cents), ""))
    for r in disputes.itertuples(index=False):
        rows.append((pd.Timestamp(r.opened_date), "Dispute opened", f"#{r.dispute_id} on {r.invoice_id}: {r.reason_code}",
                     int(r.amount_cents), r.created_by or ""))
        if r.resolved_date is not None and not pd.isna(r.resolved_date):
            rows.append((pd.Timestamp(r.resolved_date), "Dispute resolved", f"#{r.dispute_id}: {r.outcome}",
                         int(r.amount_cents), ""))
    for r in promises.itertuples(index=False):
        target = f" on {r.invoice_id}" if isinstance(r.invoice_id, str) and r.invoice_id else ""
        rows.append((pd.Timestamp(r.made_on), "Promise", f"to pay by {r.promised_date}{target}", int(r.amount_cents),
                     r.recorded_by or ""))
    for r in activities.itertuples(index=False):
        what = " — ".join(str(x) for x in (r.outcome, r.note) if x is not None and not pd.isna(x) and str(x))
        rows.append((pd.Timestamp(r.occurred_at), str(r.type).capitalize(), what, None, r.collector_id or ""))
    frame = pd.DataFrame(rows, columns=["when", "kind", "what", "amount_cents", "by"])
    frame["amount_cents"] = pd.array(frame["amount_cents"], dtype="Int64")
    return frame.sort_values("when", ascending=False, kind="stable").reset_index(drop=True)


def table_export(conn: sa.Connection, table_name: str, limit: int | None = None) -> pd.DataFrame:
    """Rows of one ledger table (for the Data page's export), in key order. ``users`` never shows hashes."""
    table = schema.metadata.tables[table_name]
    cols = [c for c in table.c if c.name != "password_hash"]
    stmt = sa.select(*cols).order_by(*table.primary_key.columns)
    if limit:
        stmt = stmt.limit(int(limit))
    return _frame(conn.execute(stmt))


def table_counts(conn: sa.Connection) -> pd.DataFrame:
    """Row count of every ledger table: ``table, rows`` (tables a read-only database lacks are left out)."""
    from analytics import db

    missing = set(db.missing_tables(conn))
    rows = []
    for table in (t for t in schema.LEDGER_TABLES if t.name not in missing):
        rows.append((table.name, int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())))
    return pd.DataFrame(rows, columns=["table", "rows"])


def _made_by(promises: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The promises made on or before ``as_of``."""
    made = pd.to_datetime(promises["made_on"]).dt.date
    return promises[made <= as_of].reset_index(drop=True)


def account(conn: sa.Connection, customer_id: str, as_of: dt.date) -> dict:
    """The whole account as of a date: profile and every record list (what Customer 360 shows), each as it
    stood at the end of ``as_of`` — nothing dated later (documents, payments, disputes and their
    resolutions, promises, activities).

    Returns
    -------
    dict
        ``profile`` (dict), ``facts`` (:func:`customer_facts`) and DataFrames ``items, receipts, disputes,
        promises (with their status at as_of), activities, timeline``.

    Raises
    ------
    UserError
        When the customer does not exist.
    """
    profile = customer_profile(conn, customer_id)
    if profile is None:
        raise UserError(f"customer {customer_id!r} does not exist")
    parts = {
        "items": customer_items(conn, customer_id, as_of),
        "receipts": customer_receipts(conn, customer_id, as_of),
        "disputes": customer_disputes(conn, customer_id, as_of),
        "promises": _made_by(customer_promises(conn, customer_id, as_of), as_of),
        "activities": customer_activities(conn, customer_id, as_of=as_of),
    }
    parts["timeline"] = timeline(*parts.values())
    return {"profile": profile, "facts": customer_facts(conn, customer_id, as_of), **parts}


def configure_cli(parser) -> None:
    """Arguments of ``python -m analytics customer ID`` (the Customer 360 page: :func:`account`)."""
    from analytics import cli_support as cs

    parser.add_argument("customer_id")
    parser.add_argument("--as-of", type=cs.date_arg, default=None,
                        help="YYYY-MM-DD (default: the ledger's latest invoice or receipt date)")
    parser.add_argument("--limit", type=int, default=20, help="timeline rows printed for people (default 20)")
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_cli)


def _run_cli(args) -> int:
    from analytics import cli_support as cs

    def compute(conn):
        as_of = cs.as_of(conn, args)
        return as_of, account(conn, args.customer_id, as_of)

    as_of, acct = cs.run_on_ledger(args, compute)
    p = acct["profile"]
    profile = cs.records(pd.DataFrame([p]))[0]
    payload = {"as_of": as_of.isoformat(), "profile": profile, "facts": acct["facts"],
               **{key: cs.records(frame) for key, frame in acct.items() if isinstance(frame, pd.DataFrame)}}
    items = acct["items"]
    open_ = items[items["open_cents"] != 0]

    def text() -> str:
        cur = p["currency"]
        head = (f"{p['id']}  {p['name']}  collector {p.get('collector_name') or '-'}  as of {as_of}\n"
                f"open items: {len(open_):,}  open amount: {cs.money(int(open_['open_cents'].sum()), cur)}"
                f"  credit limit: {cs.money(p.get('credit_limit_cents'), cur)}")
        return head + "\n\n" + cs.text_table(acct["timeline"].assign(when=acct["timeline"]["when"].dt.date),
                                              {"when": "Date", "kind": "What", "what": "Detail",
                                               "amount_cents": "Amount", "by": "By"}, cur, args.limit)

    return cs.emit(args, payload, acct["timeline"], text)
