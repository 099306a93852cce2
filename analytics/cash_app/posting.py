"""Posting cash: apply, unapply, split, accept or reject proposals, automatic matching run.

Every function is ONE transaction: check the permission (``cash_application``, see
:data:`analytics.auth.PERMISSIONS`), validate, write, append an ``audit_log`` row per row written
(:func:`analytics.workflow.append_audit`) and bump the ledger version. Nothing is ever deleted or
rewritten: an unapply is a new, negative application row.

Rules enforced on every application:

* never more than the receipt's unapplied amount (all its applications, whatever their date);
* never more than the item's open amount (all its settlements), and only to invoices and debit
  memos of the receipt's customer, in the receipt's currency, dated on or after both documents;
* an unidentified receipt (no customer) is applied to one customer's items only: that customer is
  its payer (recorded in the audit log as ``identify_payer``; the receipt row itself is not
  rewritten, DuckDB cannot update rows other tables reference).
"""
from __future__ import annotations

import datetime as dt
import numbers
from typing import Iterable, Mapping

import sqlalchemy as sa

from analytics import schema
from analytics.auth import User, require
from analytics.cash_app.matching import default_as_of, propose
from analytics.db import bump_ledger_version
from analytics.errors import UserError
from analytics.ledger import money_text, open_amount_cents, returned_receipts
from analytics.workflow import append_audit, as_date, begin_write, retry_on_conflict

rc = schema.receipts
ap = schema.applications
inv = schema.invoices
adj = schema.adjustments
mp = schema.match_proposals

ACTION = "cash_application"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)




def _cents(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{field}: {value!r} must be a whole number of cents")
    if int(value) <= 0:
        raise UserError(f"{field}: must be greater than zero (got {int(value)})")
    return int(value)


def _receipt(conn: sa.Connection, receipt_id: str) -> dict:
    row = conn.execute(sa.select(rc).where(rc.c.id == receipt_id)).mappings().first()
    if row is None:
        raise UserError(f"receipt_id: unknown receipt {receipt_id!r}")
    return dict(row)


def receipt_unapplied_cents(conn: sa.Connection, receipt_id: str) -> int:
    """Receipt amount less all its applications (any date), in cents."""
    r = _receipt(conn, receipt_id)
    applied = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ap.c.amount_cents), 0))
                           .where(ap.c.receipt_id == receipt_id)).scalar()
    return int(r["amount_cents"]) - int(applied)


def item_open_cents(conn: sa.Connection, invoice_id: str) -> int:
    """Open amount of an item counting every settlement whatever its date, in cents
    (:func:`analytics.ledger.open_amount_cents` with no as-of date): what cash may still be applied to."""
    return open_amount_cents(conn, invoice_id=invoice_id)


def _last_application(conn: sa.Connection, receipt_id: str) -> str:
    """" (last applied by finance at 30 Nov 2026 14:05 UTC)" for a receipt, or "" when never applied."""
    last = conn.execute(sa.select(ap.c.id, ap.c.applied_by).where(ap.c.receipt_id == receipt_id)
                        .order_by(ap.c.id.desc()).limit(1)).first()
    if last is None:
        return ""
    au = schema.audit_log
    at = conn.execute(sa.select(au.c.logged_at).where(au.c.table_name == ap.name, au.c.row_id == str(last.id))
                      .limit(1)).scalar()
    when = f" at {at:%d %b %Y %H:%M} UTC" if at is not None else ""
    return f" (last applied by {last.applied_by}{when})"


def applied_customers(conn: sa.Connection, receipt_id: str) -> set[str]:
    """Customers of the items a receipt currently has cash on (net of unapplies)."""
    net = (sa.select(ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("net"))
           .where(ap.c.receipt_id == receipt_id).group_by(ap.c.invoice_id).subquery("net"))
    return set(conn.execute(sa.select(inv.c.customer_id).distinct()
                            .select_from(net.join(inv, inv.c.id == net.c.invoice_id)).where(net.c.net > 0)).scalars())


def _normalise(allocations) -> list[tuple[str, int]]:
    if isinstance(allocations, Mapping):
        pairs = list(allocations.items())
    else:
        pairs = [tuple(a) for a in allocations]
    if not pairs:
        raise UserError("allocations: nothing to apply")
    out: dict[str, int] = {}
    for k, pair in enumerate(pairs, start=1):
        if len(pair) != 2:
            raise UserError(f"allocations line {k}: expected (invoice_id, amount_cents), got {pair!r}")
        invoice_id, amount = pair
        out[str(invoice_id)] = out.get(str(invoice_id), 0) + _cents(amount, f"allocations line {k} amount_cents")
    return list(out.items())


def _apply_in(conn: sa.Connection, user: User, receipt_id: str, allocations, applied_date: dt.date | None,
              source: str, rule: str | None, extra_audit: dict | None = None) -> list[int]:
    """Validate and insert applications inside the caller's transaction; returns the new ids."""
    allocations = _normalise(allocations)
    r = _receipt(conn, receipt_id)
    bl = schema.bank_lines
    returned_on = conn.execute(returned_receipts().where(bl.c.receipt_id == receipt_id)
                               .with_only_columns(sa.func.min(bl.c.value_date))).scalar()
    if returned_on is not None:
        raise UserError(f"receipt {receipt_id} was returned by the bank on {as_date(returned_on).isoformat()}: "
                        f"its cash is no longer there to apply; nothing was applied.")
    unapplied = receipt_unapplied_cents(conn, receipt_id)
    total = sum(a for _, a in allocations)
    cur = r["currency"]
    if total > unapplied:
        raise UserError(f"{money_text(total, cur)} is more than receipt {receipt_id}'s unapplied "
                        f"{money_text(unapplied, cur)} now{_last_application(conn, receipt_id)}; nothing was applied.")
    customer = r["customer_id"]
    docs = []
    for invoice_id, amount in allocations:
        row = conn.execute(sa.select(inv).where(inv.c.id == invoice_id)).mappings().first()
        if row is None:
            raise UserError(f"invoice_id: unknown invoice {invoice_id!r}")
        if row["doc_type"] == "credit_memo":
            raise UserError(f"invoice_id: {invoice_id} is a credit memo; cash is applied to invoices and debit memos")
        if row["currency"] != r["currency"]:
            raise UserError(f"invoice_id: {invoice_id} is in {row['currency']}, "
                            f"receipt {receipt_id} in {r['currency']}")
        if customer is not None and row["customer_id"] != customer:
            raise UserError(f"invoice_id: {invoice_id} belongs to {row['customer_id']}, receipt {receipt_id} "
                            f"to {customer}")
        open_ = item_open_cents(conn, invoice_id)
        if amount > open_:
            raise UserError(f"{money_text(amount, cur)} is more than invoice {invoice_id}'s open "
                            f"{money_text(open_, cur)} now; nothing was applied.")
        docs.append(dict(row))
    owners = {d["customer_id"] for d in docs}
    identified = None
    if customer is None:
        owners |= applied_customers(conn, receipt_id)
        if len(owners) != 1:
            raise UserError(f"allocations: an unidentified receipt is applied to one customer's items, "
                            f"got {sorted(owners)}")
        identified = next(iter(owners))
    day = applied_date or max([r["receipt_date"], dt.date.today()] + [d["invoice_date"] for d in docs])
    day = as_date(day, "applied_date")
    latest_doc = max([r["receipt_date"]] + [d["invoice_date"] for d in docs])
    if day < latest_doc:
        raise UserError(f"applied_date: {day.isoformat()} is before the receipt or invoice date "
                        f"({latest_doc.isoformat()})")
    if day > max(dt.date.today(), latest_doc):
        raise UserError(f"applied_date: {day.isoformat()} is in the future")
    if identified is not None and not applied_customers(conn, receipt_id):
        # The receipt row is not rewritten (DuckDB cannot update a row other tables reference);
        # the payer is the customer of the items the receipt is applied to, recorded here.
        append_audit(conn, user.username, "identify_payer", rc.name, receipt_id, {"customer_id": None},
                     {"customer_id": identified})
    ids = []
    for invoice_id, amount in allocations:
        values = dict(receipt_id=receipt_id, credit_memo_id=None, invoice_id=invoice_id, amount_cents=amount,
                      applied_date=day, source=source, rule=rule, applied_by=user.username)
        new_id = int(conn.execute(ap.insert().values(**values)).inserted_primary_key[0])
        append_audit(conn, user.username, "apply_cash", ap.name, new_id, None,
                     {"id": new_id, **values, **(extra_audit or {})})
        ids.append(new_id)
    return ids


@retry_on_conflict
def apply(engine: sa.Engine, user: User, receipt_id: str, allocations, applied_date: dt.date | None = None,
          rule: str | None = None) -> list[int]:
    """Apply (part of) a receipt to one or more items — a split when several.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``cash_application`` (admin, manager, finance).
    receipt_id : str
    allocations : dict {invoice_id: amount_cents} or list of (invoice_id, amount_cents)
        Positive whole cents; in total not above the receipt's unapplied amount, per item not
        above its open amount.
    applied_date : datetime.date, optional
        Default today (or the latest document date when the documents are dated later).
    rule : str, optional
        Why (kept on the application rows), e.g. ``manual``.

    Returns
    -------
    list of int
        The new application ids.

    Example
    -------
    >>> apply(engine, User("f", "finance"), "RCT-1", {"INV-1": 60_00, "INV-2": 40_00})  # doctest: +SKIP
    [41, 42]
    """
    require(user, ACTION)
    with begin_write(engine) as conn:
        ids = _apply_in(conn, user, receipt_id, allocations, applied_date, "manual", rule or "manual")
        bump_ledger_version(conn)
    return ids


@retry_on_conflict
def apply_with_deductions(engine: sa.Engine, user: User, receipt_id: str, allocations, deductions,
                          applied_date: dt.date | None = None, rule: str = "remittance_advice") -> dict:
    """Apply a receipt split over items and post the short payments as deductions, in ONE transaction.

    The cash goes through the same checks as :func:`apply`; each deduction is an ``adjustments`` row
    of kind ``deduction`` (negative: it lowers the item's open amount), never above what the item
    still has open after the cash. All or nothing, audited, the ledger version bumped once.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``cash_application``.
    receipt_id : str
    allocations : dict or list of (invoice_id, amount_cents)
        May be empty when the advice only posts deductions.
    deductions : list of (invoice_id, amount_cents, reason)
        Positive cents; ``reason`` the payer's reason code (required).
    applied_date : datetime.date, optional
        As :func:`apply`; also the deductions' date.
    rule : str, default "remittance_advice"

    Returns
    -------
    dict
        ``application_ids``, ``adjustment_ids``.

    Example
    -------
    >>> apply_with_deductions(engine, User("f", "finance"), "RCT-1", {"INV-1": 90_00},
    ...                       [("INV-1", 10_00, "DAMAGED")])  # doctest: +SKIP
    {'application_ids': [41], 'adjustment_ids': [7]}
    """
    require(user, ACTION)
    deductions = [(str(i), _cents(a, f"deductions line {k} amount_cents"), str(reason or "").strip())
                  for k, (i, a, reason) in enumerate(deductions, start=1)]
    if not allocations and not deductions:
        raise UserError("allocations: nothing to apply")
    with begin_write(engine) as conn:
        r = _receipt(conn, receipt_id)
        ids = (_apply_in(conn, user, receipt_id, allocations, applied_date, "manual", rule) if allocations else [])
        day = applied_date
        if ids:
            day = conn.execute(sa.select(ap.c.applied_date).where(ap.c.id == ids[0])).scalar()
        day = as_date(day or r["receipt_date"], "applied_date")
        adj_ids = []
        for invoice_id, amount, reason in deductions:
            if not reason:
                raise UserError(f"deduction on {invoice_id}: a reason code is required; nothing was applied.")
            row = conn.execute(sa.select(inv).where(inv.c.id == invoice_id)).mappings().first()
            if row is None:
                raise UserError(f"invoice_id: unknown invoice {invoice_id!r}")
            open_ = item_open_cents(conn, invoice_id)
            if amount > open_:
                raise UserError(f"deduction {money_text(amount, row['currency'])} is more than invoice {invoice_id}'s "
                                f"open {money_text(open_, row['currency'])} after the cash; nothing was applied.")
            values = dict(invoice_id=invoice_id, adj_date=max(day, row["invoice_date"]), amount_cents=-amount,
                          kind="deduction", reason=reason[:200], created_by=user.username)
            new_id = int(conn.execute(adj.insert().values(**values)).inserted_primary_key[0])
            append_audit(conn, user.username, "post_deduction", adj.name, new_id, None,
                         {"id": new_id, **values, "receipt_id": receipt_id})
            adj_ids.append(new_id)
        bump_ledger_version(conn)
    return {"application_ids": ids, "adjustment_ids": adj_ids}


@retry_on_conflict
def unapply(engine: sa.Engine, user: User, receipt_id: str, invoice_id: str, amount_cents: int | None = None,
            applied_date: dt.date | None = None, reason: str | None = None) -> int:
    """Reverse (part of) what a receipt applied to an item with a NEGATIVE application row.

    History is kept: the original rows stay, the reversal is a new row dated ``applied_date``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``cash_application``.
    receipt_id, invoice_id : str
    amount_cents : int, optional
        Default everything the receipt currently has on the item; never more than that.
    applied_date : datetime.date, optional
        Default today (or the latest application date when later).
    reason : str, optional
        Kept in the audit row.

    Returns
    -------
    int
        The id of the reversal row.
    """
    require(user, ACTION)
    with begin_write(engine) as conn:
        rct = _receipt(conn, receipt_id)
        net, last = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(ap.c.amount_cents), 0), sa.func.max(ap.c.applied_date))
            .where(ap.c.receipt_id == receipt_id, ap.c.invoice_id == invoice_id)).one()
        net = int(net)
        if net <= 0:
            raise UserError(f"receipt {receipt_id} has nothing applied to {invoice_id} now; nothing was changed.")
        amount = net if amount_cents is None else _cents(amount_cents, "amount_cents")
        if amount > net:
            cur = rct["currency"]
            raise UserError(f"{money_text(amount, cur)} is more than the {money_text(net, cur)} receipt "
                            f"{receipt_id} has applied to {invoice_id} now; nothing was changed.")
        last = as_date(last, "applied_date")
        day = as_date(applied_date, "applied_date") if applied_date is not None else max(dt.date.today(), last)
        if day < last:
            raise UserError(f"applied_date: {day.isoformat()} is before the last application ({last.isoformat()})")
        values = dict(receipt_id=receipt_id, credit_memo_id=None, invoice_id=invoice_id, amount_cents=-amount,
                      applied_date=day, source="manual", rule="unapply", applied_by=user.username)
        new_id = int(conn.execute(ap.insert().values(**values)).inserted_primary_key[0])
        append_audit(conn, user.username, "unapply_cash", ap.name, new_id, None,
                     {"id": new_id, **values, "reason": reason})
        bump_ledger_version(conn)
    return new_id


def _proposal(conn: sa.Connection, proposal_id: int) -> dict:
    row = conn.execute(sa.select(mp).where(mp.c.id == proposal_id)).mappings().first()
    if row is None:
        raise UserError(f"proposal_id: unknown proposal {proposal_id!r}")
    row = dict(row)
    if row["status"] != "proposed":
        who = f" by {row['decided_by']}" if row["decided_by"] else ""
        when = f" at {row['decided_at']:%d %b %Y %H:%M} UTC" if row["decided_at"] else ""
        raise UserError(f"proposal {proposal_id} was already {row['status'].replace('_', ' ')}{who}{when}; "
                        "nothing was changed.")
    return row


@retry_on_conflict
def accept_proposals(engine: sa.Engine, user: User, proposal_ids: Iterable[int],
                     applied_date: dt.date | None = None) -> list[int]:
    """Accept proposals: apply each one's amount to its item and mark it ``accepted`` (one transaction).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``cash_application``.
    proposal_ids : iterable of int
        Proposals with status ``proposed``; all are accepted or none.
    applied_date : datetime.date, optional

    Returns
    -------
    list of int
        The new application ids.
    """
    require(user, ACTION)
    ids = []
    proposal_ids = [int(p) for p in proposal_ids]
    if not proposal_ids:
        raise UserError("proposal_ids: nothing to accept")
    with begin_write(engine) as conn:
        now = _utcnow()
        for pid in proposal_ids:
            before = _proposal(conn, pid)
            ids += _apply_in(conn, user, before["receipt_id"], [(before["invoice_id"], before["amount_cents"])],
                             applied_date, "proposal", before["rule"], {"proposal_id": pid})
            conn.execute(mp.update().where(mp.c.id == pid).values(status="accepted", decided_by=user.username,
                                                                  decided_at=now))
            append_audit(conn, user.username, "accept_proposal", mp.name, pid, before,
                         {**before, "status": "accepted", "decided_by": user.username, "decided_at": now})
        bump_ledger_version(conn)
    return ids


def accept_proposal(engine: sa.Engine, user: User, proposal_id: int, applied_date: dt.date | None = None) -> int:
    """Accept one proposal (see :func:`accept_proposals`); returns the application id."""
    return accept_proposals(engine, user, [proposal_id], applied_date)[0]


@retry_on_conflict
def reject_proposals(engine: sa.Engine, user: User, proposal_ids: Iterable[int], reason: str | None = None) -> int:
    """Mark proposals ``rejected`` (nothing applied), all or none; audited with the optional reason.

    Returns
    -------
    int
        How many proposals were rejected.
    """
    require(user, ACTION)
    proposal_ids = [int(p) for p in proposal_ids]
    if not proposal_ids:
        raise UserError("proposal_ids: nothing to reject")
    with begin_write(engine) as conn:
        now = _utcnow()
        for pid in proposal_ids:
            before = _proposal(conn, pid)
            conn.execute(mp.update().where(mp.c.id == pid).values(
                status="rejected", decided_by=user.username, decided_at=now))
            append_audit(conn, user.username, "reject_proposal", mp.name, pid, before,
                         {**before, "status": "rejected", "decided_by": user.username, "decided_at": now,
                          "reason": reason})
        bump_ledger_version(conn)
    return len(proposal_ids)


def reject_proposal(engine: sa.Engine, user: User, proposal_id: int, reason: str | None = None) -> None:
    """Reject one proposal (see :func:`reject_proposals`)."""
    reject_proposals(engine, user, [proposal_id], reason)


@retry_on_conflict
def run_matching(engine: sa.Engine, user: User, auto_threshold: float = 0.95, as_of: dt.date | None = None,
                 receipt_ids: Iterable[str] | None = None, apply_auto: bool = True) -> dict:
    """Propose matches for every receipt with unapplied cash and no pending proposal; write them.

    Lines with ``confidence >= auto_threshold`` are applied at once (applications with source
    ``auto`` and the rule; proposal status ``auto_applied``); the others wait as ``proposed`` for
    a person (:func:`accept_proposals`, :func:`reject_proposal`). One transaction, audited.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
        Needs ``cash_application``.
    auto_threshold : float, default 0.95
        In (0, 1]; above 1 nothing is applied automatically.
    as_of : datetime.date, optional
        Default :func:`analytics.cash_app.matching.default_as_of`; the applications' date.
    receipt_ids : iterable of str, optional
        Only these receipts.
    apply_auto : bool, default True
        False: write every line as ``proposed`` (review everything).

    Returns
    -------
    dict
        ``as_of, receipts, proposals, auto_applied, queued, auto_applied_cents, queued_cents,
        skipped_pending`` (receipts left alone because they already have pending proposals).

    Example
    -------
    >>> run_matching(engine, User("f", "finance"))["auto_applied"]  # doctest: +SKIP
    28
    """
    require(user, ACTION)
    if not isinstance(auto_threshold, (int, float)) or not 0 < auto_threshold:
        raise UserError(f"auto_threshold: must be a number above 0, got {auto_threshold!r}")
    with begin_write(engine) as conn:
        as_of = as_of or default_as_of(conn)
        props = propose(conn, as_of, receipt_ids)
        pending = set(conn.execute(sa.select(mp.c.receipt_id).where(mp.c.status == "proposed").distinct()).scalars())
        skipped = sorted(set(props["receipt_id"]) & pending)
        props = props[~props["receipt_id"].isin(pending)]
        now = _utcnow()
        auto_n = queued_n = auto_c = queued_c = 0
        for row in props.itertuples(index=False):
            auto = apply_auto and row.confidence >= auto_threshold
            values = dict(receipt_id=row.receipt_id, invoice_id=row.invoice_id, amount_cents=int(row.amount_cents),
                          confidence=round(float(row.confidence), 4), rule=row.rule,
                          status="auto_applied" if auto else "proposed", created_at=now,
                          decided_by=user.username if auto else None, decided_at=now if auto else None)
            pid = int(conn.execute(mp.insert().values(**values)).inserted_primary_key[0])
            append_audit(conn, user.username, "propose_match", mp.name, pid, None, {"id": pid, **values})
            if auto:
                applied_day = max(as_of, row.receipt_date)
                _apply_in(conn, user, row.receipt_id, [(row.invoice_id, int(row.amount_cents))], applied_day,
                          "auto", row.rule, {"proposal_id": pid, "confidence": values["confidence"]})
                auto_n += 1
                auto_c += int(row.amount_cents)
            else:
                queued_n += 1
                queued_c += int(row.amount_cents)
        if len(props):
            bump_ledger_version(conn)
    return {"as_of": as_of.isoformat(), "receipts": int(props["receipt_id"].nunique()), "proposals": int(len(props)),
            "auto_applied": auto_n, "queued": queued_n, "auto_applied_cents": auto_c, "queued_cents": queued_c,
            "skipped_pending": skipped}
