"""Cash-application reports: unapplied cash aging, KPIs, refund package, month-end roll-forward.

Aggregations run in the database (SQLAlchemy Core, identical on DuckDB, SQLite and PostgreSQL);
only per-month or per-receipt results come back to pandas.
"""
from __future__ import annotations

import calendar
import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.cash_app.matching import unapplied_receipts_query
from analytics.db import date_values, days_between, read_frame
from analytics.ledger import money_text
from analytics.errors import LedgerIntegrityError
from analytics.ledger import (NO_FILTER, LedgerFilter, open_items, open_items_over, receipt_scope, return_reversal,
                             returned_receipts, settlements)

rc = schema.receipts
ap = schema.applications
inv = schema.invoices
adj = schema.adjustments
mp = schema.match_proposals
cust = schema.customers

#: Age buckets of unapplied cash, days since the receipt date: (label, low, high inclusive).
UNAPPLIED_BUCKETS = (("0-7", 0, 7), ("8-30", 8, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))


def _receipt_filter(stmt: sa.Select, flt: LedgerFilter, receipts=rc, as_of=None) -> sa.Select:
    """Apply a ledger filter to receipts (:func:`analytics.ledger.receipt_scope`; with ``as_of``,
    receipts the bank returned by then are out)."""
    return stmt.where(*receipt_scope(flt, receipts, as_of))


def unapplied_cash(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Receipts with unapplied cash at ``as_of`` and their age.

    ``unapplied_cents = amount − Σ applications from the receipt dated <= as_of``;
    ``age_days = as_of − receipt_date``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    pandas.DataFrame
        ``receipt_id, customer_id, customer_name, receipt_date, currency, amount_cents,
        unapplied_cents, age_days, bucket, remittance_ref, pending_proposals`` oldest first.

    Example
    -------
    >>> unapplied_cash(conn, dt.date(2026, 10, 31)).unapplied_cents.sum()  # doctest: +SKIP
    """
    u = _receipt_filter(unapplied_receipts_query(as_of), flt).subquery("u")
    pending = (sa.select(mp.c.receipt_id, sa.func.count().label("n")).where(mp.c.status == "proposed")
               .group_by(mp.c.receipt_id).subquery("p"))
    age = days_between(u.c.receipt_date, sa.literal(as_of, sa.Date))
    stmt = (sa.select(u.c.receipt_id, u.c.customer_id, cust.c.name.label("customer_name"), u.c.receipt_date,
                      u.c.currency, u.c.amount_cents, u.c.unapplied_cents, age.label("age_days"),
                      u.c.remittance_ref, sa.func.coalesce(pending.c.n, 0).label("pending_proposals"))
            .select_from(u.outerjoin(cust, cust.c.id == u.c.customer_id)
                         .outerjoin(pending, pending.c.receipt_id == u.c.receipt_id))
            .order_by(u.c.receipt_date, u.c.receipt_id))
    cols = ["receipt_id", "customer_id", "customer_name", "receipt_date", "currency", "amount_cents",
            "unapplied_cents", "age_days", "remittance_ref", "pending_proposals"]
    frame = read_frame(conn, stmt, cols)
    for col in ("amount_cents", "unapplied_cents", "age_days", "pending_proposals"):
        frame[col] = frame[col].astype("int64")
    frame["receipt_date"] = pd.to_datetime(frame["receipt_date"]).dt.date
    frame.insert(8, "bucket", [_bucket(a) for a in frame["age_days"]])
    return frame


def _bucket(age: int) -> str:
    for label, lo, hi in UNAPPLIED_BUCKETS:
        if age >= lo and (hi is None or age <= hi):
            return label
    return UNAPPLIED_BUCKETS[0][0]


def unapplied_aging(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Unapplied cash at ``as_of`` by age bucket (days since receipt), summed in SQL.

    Returns
    -------
    pandas.DataFrame
        ``bucket, bucket_order, unapplied_cents, receipts`` — every bucket, zeros included.
    """
    u = _receipt_filter(unapplied_receipts_query(as_of), flt).subquery("u")
    age = days_between(u.c.receipt_date, sa.literal(as_of, sa.Date))
    whens = []
    for k, (label, lo, hi) in enumerate(UNAPPLIED_BUCKETS):
        cond = age >= lo if hi is None else sa.and_(age >= lo, age <= hi)
        whens.append((cond, k))
    order = sa.case(*whens, else_=0).label("bucket_order")
    inner = sa.select(order, u.c.unapplied_cents).subquery("b")
    rows = conn.execute(sa.select(inner.c.bucket_order, sa.func.sum(inner.c.unapplied_cents), sa.func.count())
                        .group_by(inner.c.bucket_order)).all()
    got = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
    return pd.DataFrame({
        "bucket": [b[0] for b in UNAPPLIED_BUCKETS],
        "bucket_order": list(range(len(UNAPPLIED_BUCKETS))),
        "unapplied_cents": [got.get(k, (0, 0))[0] for k in range(len(UNAPPLIED_BUCKETS))],
        "receipts": [got.get(k, (0, 0))[1] for k in range(len(UNAPPLIED_BUCKETS))],
    }).astype({"unapplied_cents": "int64", "receipts": "int64", "bucket_order": "int64"})


def _no_digits(col) -> sa.ColumnElement[bool]:
    return sa.and_(*[sa.not_(col.like(f"%{d}%")) for d in "0123456789"])


def cash_app_kpis(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter = NO_FILTER) -> dict:
    """Cash-application KPIs for receipts dated in ``[start, end]`` and the backlog at ``end``.

    * ``unapplied_cents`` / ``unapplied_receipts``: unapplied cash at ``end`` (receipt amount less
      applications dated <= end), every receipt date; receipts the bank returned by ``end`` are out
      (:func:`analytics.ledger.receipt_scope`), here and in the period's receipts below.
    * ``auto_match_rate``: receipts with at least one ``auto_applied`` proposal / receipts with any
      proposal (``match_proposals``, receipts dated in the period); None without proposals.
    * ``mean_days_to_apply`` / ``median_days_to_apply``: first application date − receipt date,
      receipts of the period applied by ``end`` (per-receipt days in SQL, mean/median in pandas).
    * ``applied_share``: receipts of the period with an application by ``end`` / receipts.
    * ``missing_remittance_share``: receipts of the period whose remittance text is empty or holds
      no digit (no document number) / receipts.
    * ``deductions_count`` / ``deductions_cents``: adjustments of kind ``deduction`` dated in the
      period (short payments turned into deductions; cents as a positive amount).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    start, end : datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    dict
        JSON-ready; shares in [0, 1]; money in cents.

    Example
    -------
    >>> cash_app_kpis(conn, dt.date(2026, 8, 1), dt.date(2026, 10, 31))["auto_match_rate"]  # doctest: +SKIP
    """
    s, e = sa.literal(start, sa.Date), sa.literal(end, sa.Date)
    u = _receipt_filter(unapplied_receipts_query(end), flt).subquery("u")
    unapplied_cents, unapplied_n = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(u.c.unapplied_cents), 0), sa.func.count())).one()
    period = _receipt_filter(sa.select(rc.c.id, rc.c.receipt_date, rc.c.remittance_ref)
                             .where(rc.c.receipt_date >= s, rc.c.receipt_date <= e), flt, as_of=end).subquery("per")
    first = (sa.select(ap.c.receipt_id, sa.func.min(ap.c.applied_date).label("first_applied"))
             .where(ap.c.receipt_id.is_not(None), ap.c.applied_date <= e, ap.c.amount_cents > 0)
             .group_by(ap.c.receipt_id).subquery("first"))
    missing = sa.or_(period.c.remittance_ref.is_(None), _no_digits(period.c.remittance_ref))
    n, n_missing = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((missing, 1), else_=0)), 0))
        .select_from(period)).one()
    days = [int(r[0]) for r in conn.execute(
        sa.select(days_between(period.c.receipt_date, first.c.first_applied))
        .select_from(period.join(first, first.c.receipt_id == period.c.id))).all()]
    props = (sa.select(mp.c.receipt_id, sa.func.max(sa.case((mp.c.status == "auto_applied", 1), else_=0)).label("auto"))
             .group_by(mp.c.receipt_id).subquery("props"))
    n_prop, n_auto = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(props.c.auto), 0))
        .select_from(period.join(props, props.c.receipt_id == period.c.id))).one()
    dq = (sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(-adj.c.amount_cents), 0))
          .select_from(adj.join(inv, inv.c.id == adj.c.invoice_id))
          .where(adj.c.kind == "deduction", adj.c.adj_date >= s, adj.c.adj_date <= e))
    ded_n, ded_c = conn.execute(flt.apply_to_invoices(dq)).one()
    series = pd.Series(days, dtype="float64")
    return {
        "start": start.isoformat(), "end": end.isoformat(),
        "unapplied_cents": int(unapplied_cents), "unapplied_receipts": int(unapplied_n),
        "receipts": int(n),
        "auto_match_rate": round(int(n_auto) / int(n_prop), 4) if n_prop else None,
        "receipts_with_proposals": int(n_prop),
        "mean_days_to_apply": round(float(series.mean()), 2) if len(series) else None,
        "median_days_to_apply": float(series.median()) if len(series) else None,
        "applied_share": round(len(days) / int(n), 4) if n else None,
        "missing_remittance_share": round(int(n_missing) / int(n), 4) if n else None,
        "deductions_count": int(ded_n), "deductions_cents": int(ded_c),
    }


def refund_package(conn: sa.Connection, customer_id: str | None = None, as_of: dt.date | None = None,
                   flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Customers holding a credit balance to refund: overpayments and open credit memos.

    Per customer and currency at ``as_of``: ``unapplied_cash_cents`` (identified receipts'
    unapplied amounts), ``open_credit_cents`` (open credit memos, as a positive amount),
    ``open_debit_cents`` (open invoices and debit memos); ``refundable_cents = unapplied cash +
    open credit − open debit`` and only customers with ``refundable_cents > 0`` are listed, with
    the source documents.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    customer_id : str, optional
        Only this customer.
    as_of : datetime.date, optional
        Default today (or the last receipt date when later).
    flt : LedgerFilter, optional

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, currency, unapplied_cash_cents, open_credit_cents,
        open_debit_cents, refundable_cents, source_receipts, source_credit_memos``.

    Example
    -------
    >>> refund_package(conn, "CUST-0000001")  # doctest: +SKIP
    """
    from analytics.cash_app.matching import default_as_of

    as_of = as_of or default_as_of(conn)
    if customer_id is not None:
        flt = LedgerFilter(**{**{f: getattr(flt, f) for f in flt.__dataclass_fields__}, "customers": (customer_id,)})
    u = _receipt_filter(unapplied_receipts_query(as_of), flt).where(rc.c.customer_id.is_not(None))
    receipts = pd.DataFrame(conn.execute(u).mappings().all())
    oi = open_items(as_of, flt)
    bal = conn.execute(sa.select(
        oi.c.customer_id, oi.c.currency,
        sa.func.sum(sa.case((oi.c.open_cents < 0, -oi.c.open_cents), else_=0)).label("credit"),
        sa.func.sum(sa.case((oi.c.open_cents > 0, oi.c.open_cents), else_=0)).label("debit"))
        .group_by(oi.c.customer_id, oi.c.currency)).all()
    totals: dict[tuple, dict] = {}
    for r in bal:
        totals[(r.customer_id, r.currency)] = {"cash": 0, "credit": int(r.credit), "debit": int(r.debit),
                                               "receipts": [], "memos": []}
    for r in receipts.itertuples(index=False) if not receipts.empty else []:
        t = totals.setdefault((r.customer_id, r.currency), {"cash": 0, "credit": 0, "debit": 0,
                                                            "receipts": [], "memos": []})
        t["cash"] += int(r.unapplied_cents)
        t["receipts"].append(f"{r.receipt_id} ({int(r.unapplied_cents) / 100:.2f})")
    keep = {k: v for k, v in totals.items() if v["cash"] + v["credit"] - v["debit"] > 0}
    if keep:
        memos = conn.execute(sa.select(oi.c.customer_id, oi.c.currency, oi.c.invoice_id, oi.c.open_cents)
                             .where(oi.c.open_cents < 0).order_by(oi.c.invoice_date, oi.c.invoice_id)).all()
        for m in memos:
            if (m.customer_id, m.currency) in keep:
                keep[(m.customer_id, m.currency)]["memos"].append(f"{m.invoice_id} ({-int(m.open_cents) / 100:.2f})")
    names = dict(conn.execute(sa.select(cust.c.id, cust.c.name).where(
        cust.c.id.in_(sorted({k[0] for k in keep}) or [""]))).all())
    rows = [{"customer_id": k[0], "customer_name": names.get(k[0]), "currency": k[1],
             "unapplied_cash_cents": v["cash"], "open_credit_cents": v["credit"], "open_debit_cents": v["debit"],
             "refundable_cents": v["cash"] + v["credit"] - v["debit"],
             "source_receipts": ", ".join(v["receipts"]), "source_credit_memos": ", ".join(v["memos"])}
            for k, v in sorted(keep.items())]
    cols = ["customer_id", "customer_name", "currency", "unapplied_cash_cents", "open_credit_cents",
            "open_debit_cents", "refundable_cents", "source_receipts", "source_credit_memos"]
    frame = pd.DataFrame(rows, columns=cols)
    for col in cols[3:7]:
        frame[col] = frame[col].astype("int64")
    return frame.sort_values("refundable_cents", ascending=False, kind="stable", ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Month-end roll-forward
# ------------------------------------------------------------------------------------------------
def _month(text_or_date) -> dt.date:
    from analytics.errors import UserError

    if isinstance(text_or_date, dt.date):
        return text_or_date.replace(day=1)
    try:
        y, m = str(text_or_date).strip().split("-")[:2]
        return dt.date(int(y), int(m), 1)
    except (ValueError, TypeError):
        raise UserError(f"month: {text_or_date!r} is not a month (YYYY-MM)") from None


def _month_end(first: dt.date) -> dt.date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


ROLLFORWARD_COLUMNS = ["month", "currency", "opening_cents", "invoices_cents", "debit_memos_cents",
                       "credit_memos_cents", "cash_applied_cents", "returned_payments_cents",
                       "credit_memos_applied_net_cents", "write_offs_cents", "deductions_cents",
                       "other_adjustments_cents", "closing_cents", "open_items_cents", "difference_cents",
                       "unapplied_cash_cents"]

#: The movement lines of a roll-forward month, between the opening and the closing.
ROLLFORWARD_LINES = ROLLFORWARD_COLUMNS[3:ROLLFORWARD_COLUMNS.index("closing_cents")]


INTEGRITY_COLUMNS = ["kind", "document", "currency", "amount_cents", "posted_cents", "detail"]


def ledger_integrity(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """States money can never be in, whatever their dates; an empty frame when there are none.

    * ``over_applied_receipt``: a receipt's applications (net of unapplies) exceed its amount, i.e. its
      unapplied cash is negative;
    * ``negative_application``: a receipt has more unapplied from an item than it ever applied to it;
    * ``over_settled_item``: an invoice or debit memo settled (cash, credits, write-offs, deductions)
      beyond its amount, i.e. its open amount is negative — named ``write_off_beyond_item`` when
      write-offs alone exceed the amount;
    * ``over_used_credit``: a credit memo applied beyond its amount.

    The posting functions (:mod:`analytics.cash_app.posting`, :mod:`analytics.workflow`) never
    produce these; this finds what a direct database write or a bad import did. Sums run in the
    database (one grouped query per check).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    flt : LedgerFilter, optional
        Receipts and items of the filter's customers and currencies.

    Returns
    -------
    pandas.DataFrame
        :data:`INTEGRITY_COLUMNS`: ``amount_cents`` the document's amount (absolute), ``posted_cents``
        what was posted against it, ``detail`` a sentence naming the document.

    Example
    -------
    >>> ledger_integrity(conn).empty  # doctest: +SKIP
    True
    """
    rows = []
    applied = (sa.select(ap.c.receipt_id, sa.func.sum(ap.c.amount_cents).label("applied"))
               .where(ap.c.receipt_id.is_not(None)).group_by(ap.c.receipt_id).subquery("applied"))
    over = _receipt_filter(sa.select(rc.c.id, rc.c.currency, rc.c.amount_cents, applied.c.applied)
                           .select_from(rc.join(applied, applied.c.receipt_id == rc.c.id))
                           .where(applied.c.applied > rc.c.amount_cents), flt)
    for r in conn.execute(over.order_by(rc.c.id)).all():
        rows.append(("over_applied_receipt", r.id, r.currency, int(r.amount_cents), int(r.applied),
                     f"receipt {r.id} has {money_text(int(r.applied), r.currency)} applied of its "
                     f"{money_text(int(r.amount_cents), r.currency)} (unapplied cash "
                     f"{money_text(int(r.amount_cents) - int(r.applied), r.currency)})"))
    pair = (sa.select(ap.c.receipt_id, ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("net"))
            .where(ap.c.receipt_id.is_not(None)).group_by(ap.c.receipt_id, ap.c.invoice_id)
            .having(sa.func.sum(ap.c.amount_cents) < 0).subquery("pair"))
    neg = _receipt_filter(sa.select(pair.c.receipt_id, pair.c.invoice_id, pair.c.net, rc.c.currency)
                          .select_from(pair.join(rc, rc.c.id == pair.c.receipt_id)), flt)
    for r in conn.execute(neg.order_by(pair.c.receipt_id, pair.c.invoice_id)).all():
        rows.append(("negative_application", r.receipt_id, r.currency, 0, int(r.net),
                     f"receipt {r.receipt_id} has unapplied {money_text(-int(r.net), r.currency)} more from "
                     f"{r.invoice_id} than it applied to it"))
    st = settlements()
    per_item = (sa.select(st.c.item_id, sa.func.sum(st.c.delta_cents).label("settled"),
                          sa.func.sum(sa.case((st.c.kind == "write_off", st.c.delta_cents), else_=0)).label("written"))
                .group_by(st.c.item_id).subquery("per_item"))
    bad = flt.apply_to_invoices(
        sa.select(inv.c.id, inv.c.doc_type, inv.c.currency, inv.c.amount_cents, per_item.c.settled, per_item.c.written)
        .select_from(inv.join(per_item, per_item.c.item_id == inv.c.id))
        .where(sa.or_(sa.and_(inv.c.doc_type != "credit_memo", inv.c.amount_cents + per_item.c.settled < 0),
                      sa.and_(inv.c.doc_type == "credit_memo", inv.c.amount_cents + per_item.c.settled > 0))))
    for r in conn.execute(bad.order_by(inv.c.id)).all():
        amount, settled, written, cur = int(r.amount_cents), int(r.settled), int(r.written or 0), r.currency
        if r.doc_type == "credit_memo":
            rows.append(("over_used_credit", r.id, cur, -amount, settled,
                         f"credit memo {r.id} is applied for {money_text(settled, cur)} of its "
                         f"{money_text(-amount, cur)}"))
            continue
        kind = "write_off_beyond_item" if -written > amount else "over_settled_item"
        what = f"written off for {money_text(-written, cur)}" if kind == "write_off_beyond_item" else \
            f"settled for {money_text(-settled, cur)}"
        rows.append((kind, r.id, cur, amount, -settled,
                     f"{r.doc_type.replace('_', ' ')} {r.id} is {what} of its {money_text(amount, cur)}"))
    frame = pd.DataFrame(rows, columns=INTEGRITY_COLUMNS)
    frame[["amount_cents", "posted_cents"]] = frame[["amount_cents", "posted_cents"]].astype("int64")
    return frame


def rollforward(conn: sa.Connection, start_month, end_month, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Month-end AR roll-forward, per month and currency, tied to the open items to the cent.

    ``closing = opening + invoices + debit memos + credit memos (negative) + cash applied
    (negative; unapplies positive) + returned payments (positive: the cash a bank return took back,
    unapplied from the items on the return's date, :func:`analytics.ledger.return_reversal`) + credit
    memos applied (invoice side + credit-memo side: nets to
    0 when both documents exist) + write-offs + deductions + other adjustments`` (adjustments signed
    as their effect on AR). ``opening`` of the first month is the open-items total at the day before
    it; each later opening is the previous closing. ``open_items_cents`` is the total of
    :func:`analytics.ledger.open_items` at the month end and ``difference_cents = closing −
    open_items`` must be 0. A movement counts in the month of the later of its own date and its
    item's document date (a settlement cannot reduce AR before the item exists), exactly as the
    as-of reconstruction does. ``unapplied_cash_cents`` (receipts not yet applied, not part of AR;
    receipts returned by the month end left out) is shown for information.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    start_month, end_month : str ``YYYY-MM`` or datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ROLLFORWARD_COLUMNS`; ``month`` is the month-end date.

    Raises
    ------
    LedgerIntegrityError
        The ledger is in a state money cannot be in (:func:`ledger_integrity`: over-applied receipts,
        negative unapplied cash, items settled or written off beyond their amount), naming the documents:
        a roll-forward that "ties" over such a ledger would hide it.

    Example
    -------
    >>> rf = rollforward(conn, "2025-01", "2025-12")  # doctest: +SKIP
    >>> (rf.difference_cents == 0).all()  # doctest: +SKIP
    True
    """
    from analytics.errors import UserError

    problems = ledger_integrity(conn, flt)
    if not problems.empty:
        raise LedgerIntegrityError(problems["detail"].tolist())
    first, last = _month(start_month), _month(end_month)
    if last < first:
        raise UserError(f"month range: {end_month} is before {start_month}")
    months = []
    m = first
    while m <= last:
        months.append((m, _month_end(m)))
        m = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    if len(months) > 240:
        raise UserError("month range: at most 240 months")
    opening_day = first - dt.timedelta(days=1)
    ends = [e for _, e in months]

    # opening and the as-of check, from the as-of reconstruction
    oi0 = open_items(opening_day, flt)
    opening = {r[0]: int(r[1]) for r in conn.execute(
        sa.select(oi0.c.currency, sa.func.sum(oi0.c.open_cents)).group_by(oi0.c.currency)).all()}
    over = open_items_over(ends, flt)
    check = {(_d(r[0]), r[1]): int(r[2]) for r in conn.execute(
        sa.select(over.c.as_of, over.c.currency, sa.func.sum(over.c.open_cents))
        .group_by(over.c.as_of, over.c.currency)).all()}

    mv = date_values([s for s, _ in months], name="months", column="month_start")
    mv_end = sa.case(*[(mv.c.month_start == s, sa.literal(e, sa.Date)) for s, e in months]).label("month_end")
    months_q = sa.select(mv.c.month_start, mv_end).subquery("mq")
    # issued documents
    issued = flt.apply_to_invoices(
        sa.select(months_q.c.month_end, inv.c.currency, inv.c.doc_type.label("kind"),
                  sa.func.sum(inv.c.amount_cents).label("cents"))
        .select_from(months_q.join(inv, sa.and_(inv.c.invoice_date >= months_q.c.month_start,
                                                inv.c.invoice_date <= months_q.c.month_end)))
        .group_by(months_q.c.month_end, inv.c.currency, inv.c.doc_type))
    # settlements, at the later of their own date and the item's date
    st = settlements()
    eff = sa.case((st.c.move_date > inv.c.invoice_date, st.c.move_date), else_=inv.c.invoice_date)
    moves = flt.apply_to_invoices(
        sa.select(months_q.c.month_end, inv.c.currency, st.c.kind, sa.func.sum(st.c.delta_cents).label("cents"))
        .select_from(st.join(inv, inv.c.id == st.c.item_id)
                     .join(months_q, sa.and_(eff >= months_q.c.month_start, eff <= months_q.c.month_end)))
        .group_by(months_q.c.month_end, inv.c.currency, st.c.kind))
    # the cash of returned receipts put back on the items (part of the "cash" kind above): its own line
    eff_ap = sa.case((ap.c.applied_date > inv.c.invoice_date, ap.c.applied_date), else_=inv.c.invoice_date)
    returned = flt.apply_to_invoices(
        sa.select(months_q.c.month_end, inv.c.currency, sa.literal("returned").label("kind"),
                  sa.func.sum(-ap.c.amount_cents).label("cents"))
        .select_from(ap.join(inv, inv.c.id == ap.c.invoice_id)
                     .join(months_q, sa.and_(eff_ap >= months_q.c.month_start, eff_ap <= months_q.c.month_end)))
        .where(return_reversal(ap))
        .group_by(months_q.c.month_end, inv.c.currency))
    any_return = conn.execute(returned_receipts().limit(1)).first() is not None  # none: the queries of before
    flows: dict[tuple, dict[str, int]] = {}
    for q in (issued, moves, returned) if any_return else (issued, moves):
        for r in conn.execute(q).all():
            flows.setdefault((_d(r[0]), r[1]), {})[r[2]] = int(r[3])
    # unapplied cash at each month end (information)
    dv = date_values(ends)
    appl = (sa.select(dv.c.as_of, ap.c.receipt_id, sa.func.sum(ap.c.amount_cents).label("applied"))
            .select_from(dv.join(ap, ap.c.applied_date <= dv.c.as_of)).where(ap.c.receipt_id.is_not(None))
            .group_by(dv.c.as_of, ap.c.receipt_id).subquery("appl"))
    unap_q = _receipt_filter(
        sa.select(dv.c.as_of, rc.c.currency,
                  sa.func.sum(rc.c.amount_cents - sa.func.coalesce(appl.c.applied, 0)).label("cents"))
        .select_from(dv.join(rc, rc.c.receipt_date <= dv.c.as_of)
                     .outerjoin(appl, sa.and_(appl.c.as_of == dv.c.as_of, appl.c.receipt_id == rc.c.id)))
        .group_by(dv.c.as_of, rc.c.currency), flt, as_of=dv.c.as_of if any_return else None)
    unapplied = {(_d(r[0]), r[1]): int(r[2]) for r in conn.execute(unap_q).all()}

    currencies = sorted(set(opening) | {k[1] for k in check} | {k[1] for k in flows})
    rows = []
    for cur in currencies:
        balance = opening.get(cur, 0)
        for _, end in months:
            f = flows.get((end, cur), {})
            row = {"month": end, "currency": cur, "opening_cents": balance,
                   "invoices_cents": f.get("invoice", 0), "debit_memos_cents": f.get("debit_memo", 0),
                   "credit_memos_cents": f.get("credit_memo", 0),
                   "cash_applied_cents": f.get("cash", 0) - f.get("returned", 0),
                   "returned_payments_cents": f.get("returned", 0),
                   "credit_memos_applied_net_cents": f.get("credit", 0) + f.get("credit_used", 0),
                   "write_offs_cents": f.get("write_off", 0), "deductions_cents": f.get("deduction", 0),
                   "other_adjustments_cents": f.get("adjustment", 0)}
            closing = sum(v for k, v in row.items() if k.endswith("_cents"))
            row["closing_cents"] = closing
            row["open_items_cents"] = check.get((end, cur), 0)
            row["difference_cents"] = closing - row["open_items_cents"]
            row["unapplied_cash_cents"] = unapplied.get((end, cur), 0)
            rows.append(row)
            balance = closing
    frame = pd.DataFrame(rows, columns=ROLLFORWARD_COLUMNS)
    for col in ROLLFORWARD_COLUMNS[2:]:
        frame[col] = frame[col].astype("int64")
    return frame.sort_values(["month", "currency"], kind="stable", ignore_index=True)


#: Roll-forward in a reporting currency: the transaction-currency lines converted, plus the unrealised
#: exchange gain (+) or loss (-) on the open items (:func:`revalued_rollforward`).
REVALUED_COLUMNS = ["month", "currency", "rate_date", "opening_cents", *ROLLFORWARD_LINES, "fx_revaluation_cents",
                    "closing_cents", "open_items_cents", "difference_cents"]


def revalued_rollforward(conn: sa.Connection, start_month, end_month, report: str,
                         flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """The month-end roll-forward in a reporting currency, with the month-end revaluation of open
    foreign-currency items as an unrealised FX gain/loss line; ties to the converted open items to the cent.

    Per transaction currency c and month m, with r_m the c → ``report`` rate at m's month end (latest on
    or before it, :mod:`analytics.fx`) and :func:`rollforward`'s lines in c:

    * ``opening`` = the previous month's converted closing (first month: the open items the day before
      it, at that day's rate): the open items are carried at last month-end's rate;
    * every movement line (invoices, memos, cash, credits, write-offs, deductions, adjustments) at r_m,
      each rounded half-up to the cent (closing-rate method);
    * ``closing`` = closing in c at r_m; ``fx_revaluation`` = closing − opening − Σ lines, i.e. the
      balance carried from last month revalued from r_{m−1} to r_m (plus the lines' cent rounding);
      zero for c = ``report``;
    * ``open_items`` = the open items at m's end in c at r_m; ``difference`` = closing − open_items = 0.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    start_month, end_month : str ``YYYY-MM`` or datetime.date
    report : str
        The reporting currency.
    flt : LedgerFilter, optional
        Its currency criterion is ignored: every currency is converted.

    Returns
    -------
    pandas.DataFrame
        :data:`REVALUED_COLUMNS`, amounts in ``report`` cents, one row per month and transaction currency;
        ``attrs["currency"]`` = ``report``.

    Example
    -------
    >>> rf = revalued_rollforward(conn, "2026-01", "2026-10", "EUR")  # doctest: +SKIP
    >>> int(rf.groupby("month").fx_revaluation_cents.sum().iloc[-1])  # doctest: +SKIP
    -1234
    """
    import dataclasses

    from analytics import fx

    rf = rollforward(conn, start_month, end_month, dataclasses.replace(flt or NO_FILTER, currencies=()))
    codes = sorted(rf["currency"].unique())
    months = sorted(rf["month"].unique())
    first_day = _month(start_month) - dt.timedelta(days=1)
    rates = {d: fx.conversion_rates(conn, d, codes, report) for d in [first_day, *months]}
    lines = ROLLFORWARD_LINES
    rows = []
    for code in codes:
        mine = rf[rf["currency"] == code].sort_values("month")
        carried = None
        for r in mine.to_dict("records"):
            rate = rates[r["month"]][code]
            if carried is None:
                carried = rates[first_day][code].convert(int(r["opening_cents"]))
            row = {"month": r["month"], "currency": code, "rate_date": rate.rate_date, "opening_cents": carried}
            row.update({k: rate.convert(int(r[k])) for k in lines})
            closing = rate.convert(int(r["closing_cents"]))
            row["fx_revaluation_cents"] = closing - carried - sum(row[k] for k in lines)
            row["closing_cents"] = closing
            row["open_items_cents"] = rate.convert(int(r["open_items_cents"]))
            row["difference_cents"] = closing - row["open_items_cents"]
            rows.append(row)
            carried = closing
    frame = pd.DataFrame(rows, columns=REVALUED_COLUMNS)
    for col in REVALUED_COLUMNS[3:]:
        frame[col] = frame[col].astype("int64")
    frame = frame.sort_values(["month", "currency"], kind="stable", ignore_index=True)
    frame.attrs["currency"] = report
    return frame


def ties_out(frame: pd.DataFrame) -> bool:
    """True when every roll-forward row's ``difference_cents`` is 0 (subledger = open items)."""
    return bool((frame["difference_cents"] == 0).all())


def _d(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def pending_proposals(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """The review queue: proposals with status ``proposed``, with their receipt and item.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    flt : LedgerFilter, optional
        Applied to the proposed item's customer and currency.

    Returns
    -------
    pandas.DataFrame
        ``proposal_id, receipt_id, receipt_date, receipt_amount_cents, remittance_ref, customer_id,
        customer_name, invoice_id, invoice_date, amount_cents, confidence, rule, created_at``, by
        receipt date then confidence (highest first). Proposals of a receipt the bank returned are left out.

    Example
    -------
    >>> pending_proposals(conn).rule.value_counts()  # doctest: +SKIP
    """
    stmt = flt.apply_to_invoices(
        sa.select(mp.c.id.label("proposal_id"), mp.c.receipt_id, rc.c.receipt_date,
                  rc.c.amount_cents.label("receipt_amount_cents"), rc.c.remittance_ref, inv.c.customer_id,
                  cust.c.name.label("customer_name"), mp.c.invoice_id, inv.c.invoice_date, mp.c.amount_cents,
                  mp.c.confidence, mp.c.rule, mp.c.created_at)
        .select_from(mp.join(rc, rc.c.id == mp.c.receipt_id).join(inv, inv.c.id == mp.c.invoice_id)
                     .join(cust, cust.c.id == inv.c.customer_id))
        .where(mp.c.status == "proposed", mp.c.receipt_id.not_in(returned_receipts())))  # no cash to apply
    stmt = stmt.order_by(rc.c.receipt_date, mp.c.receipt_id, mp.c.confidence.desc(), mp.c.id)
    cols = ["proposal_id", "receipt_id", "receipt_date", "receipt_amount_cents", "remittance_ref", "customer_id",
            "customer_name", "invoice_id", "invoice_date", "amount_cents", "confidence", "rule", "created_at"]
    frame = read_frame(conn, stmt, cols)
    for col in ("proposal_id", "receipt_amount_cents", "amount_cents"):
        frame[col] = frame[col].astype("int64")
    frame["confidence"] = frame["confidence"].astype("float64")
    for col in ("receipt_date", "invoice_date"):
        frame[col] = pd.to_datetime(frame[col]).dt.date
    return frame
