"""Remittance advice: the payer's list of what a payment covers, loaded against one receipt.

A remittance advice is a CSV or Excel sheet (first sheet, header on row 1) with one row per invoice:

==================  =========================================================================
column              meaning
==================  =========================================================================
``invoice``         the invoice number as the payer writes it (``INV-0001234``, ``1234``: the
                    matcher's normalised number finds the document of the receipt's customer)
``amount``          what the payer paid on it (``paid`` also accepted); ``1,234.56`` or ``1234.56``
``deduction``       optional: what the payer kept back (short payment)
``reason``          the payer's reason code for a deduction (``reason_code`` also accepted)
``payer``           optional, informational (the receipt's payer is checked by posting)
``receipt``         optional: the receipt id or bank reference, when the caller names none
==================  =========================================================================

A row whose ``amount`` is below the invoice's open amount and that gives a reason code but no
``deduction`` is a **short payment**: the difference becomes the deduction. A deduction without a reason
code is refused. The split and the deductions are posted in one transaction by
:func:`analytics.cash_app.posting.apply_with_deductions` (permission, ledger lock, audit: money moves
exactly once). Every problem names the row (header = row 1), the column and the value.
"""
from __future__ import annotations

import io
from decimal import Decimal, InvalidOperation

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.cash_app.matching import doc_key
from analytics.errors import UserError
from analytics.ledger import money_text

ALIASES = {"invoice": ("invoice", "invoice_number", "invoice_no", "document", "invoice_id"),
           "amount": ("amount", "paid", "amount_paid", "payment"),
           "deduction": ("deduction", "deduction_amount", "short_paid"),
           "reason": ("reason", "reason_code", "deduction_reason"),
           "payer": ("payer", "payer_name", "customer"),
           "receipt": ("receipt", "receipt_id", "bank_reference", "payment_reference")}


def read_advice(source, file_name: str | None = None) -> pd.DataFrame:
    """The advice's rows with columns ``row, invoice, amount_cents, deduction_cents, reason, payer, receipt``.

    Parameters
    ----------
    source : path, bytes or binary file-like
    file_name : str, optional

    Returns
    -------
    pandas.DataFrame
        ``row`` is the spreadsheet row (header = 1); money in cents (``deduction_cents`` None when
        the column is empty).

    Raises
    ------
    UserError
        A missing column, or a bad amount naming its row, column and value.

    Example
    -------
    >>> read_advice(b"invoice,amount\\nINV-1,100.00\\n")["amount_cents"].tolist()
    [10000]
    """
    from analytics.loaders.files import read_source

    data, name = read_source(source, file_name)
    name = file_name or name or "advice"
    try:
        if data[:2] == b"PK":
            raw = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False)
        else:
            raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:
        raise UserError(f"remittance advice {name}: cannot be read as CSV or Excel ({exc})") from None
    cols = {str(c).strip().lower().replace(" ", "_"): c for c in raw.columns}
    picked = {}
    for field, names in ALIASES.items():
        hit = next((cols[n] for n in names if n in cols), None)
        if hit is None and field in ("invoice", "amount"):
            raise UserError(f"remittance advice {name}: no '{field}' column (found {', '.join(map(str, raw.columns))})")
        picked[field] = hit
    out = []
    for k, rec in enumerate(raw.to_dict("records"), start=2):
        def cell(field):
            return str(rec[picked[field]]).strip() if picked[field] is not None else ""

        if not any(str(v).strip() for v in rec.values()):
            continue
        invoice = cell("invoice")
        if not invoice:
            raise UserError(f"remittance advice {name}, row {k}, column '{picked['invoice']}': empty invoice number")
        amount = _cents(cell("amount"), name, k, picked["amount"])
        ded_text = cell("deduction")
        ded = _cents(ded_text, name, k, picked["deduction"]) if ded_text else None
        out.append({"row": k, "invoice": invoice, "amount_cents": amount, "deduction_cents": ded,
                    "reason": cell("reason") or None, "payer": cell("payer") or None,
                    "receipt": cell("receipt") or None})
    if not out:
        raise UserError(f"remittance advice {name}: no rows")
    return pd.DataFrame(out)


def _cents(text: str, name: str, row: int, column) -> int:
    clean = text.replace(",", "").replace(" ", "")
    try:
        d = Decimal(clean)
    except InvalidOperation:
        raise UserError(f"remittance advice {name}, row {row}, column '{column}' ({text!r}): not an amount") from None
    if not d.is_finite() or d < 0 or d != d.quantize(Decimal("0.01")) or d > Decimal("10000000000"):
        raise UserError(f"remittance advice {name}, row {row}, column '{column}' ({text!r}): must be an amount of "
                        "0 or more with at most two decimals")
    cents = int(d * 100)
    return cents


def plan_advice(conn: sa.Connection, receipt_id: str | None, advice: pd.DataFrame) -> dict:
    """Resolve the advice against the ledger (nothing written): which item each row is, cash and deductions.

    Returns
    -------
    dict
        ``receipt_id, customer_id, currency, allocations`` ([(invoice_id, cents)]),
        ``deductions`` ([(invoice_id, cents, reason)]), ``lines`` (one dict per row).

    Example
    -------
    >>> plan_advice(conn, "BNK-1", read_advice("advice.csv"))["deductions"]  # doctest: +SKIP
    [('INV-0000102', 5000, 'DAMAGED')]
    """
    from analytics.cash_app.posting import applied_customers, item_open_cents

    rc, inv = schema.receipts, schema.invoices
    if receipt_id is None:
        named = sorted({r for r in advice["receipt"] if r})
        if len(named) != 1:
            raise UserError("remittance advice: name the receipt it explains (one receipt; the file names "
                            f"{len(named)})")
        receipt_id = named[0]
    rec = conn.execute(sa.select(rc).where(sa.or_(rc.c.id == receipt_id, rc.c.bank_reference == receipt_id))
                       .order_by(rc.c.receipt_date.desc()).limit(1)).mappings().all()
    if not rec:
        raise UserError(f"receipt: no receipt with id or bank reference {receipt_id!r}")
    rec = rec[0]
    customer = rec["customer_id"]
    if customer is None:
        owners = applied_customers(conn, rec["id"])
        customer = next(iter(owners)) if len(owners) == 1 else None
    docs = conn.execute(sa.select(inv.c.id, inv.c.customer_id, inv.c.currency, inv.c.doc_type)
                        .where(inv.c.doc_type != "credit_memo")).all()
    by_id = {d.id: d for d in docs}
    by_key: dict[str, list] = {}
    for d in docs:
        by_key.setdefault(doc_key(d.id) or d.id, []).append(d)
    cur = rec["currency"]
    allocations, deductions, lines = [], [], []
    for r in advice.to_dict("records"):
        doc = by_id.get(r["invoice"])
        if doc is None:
            cands = [d for d in by_key.get(doc_key(r["invoice"]) or "", [])
                     if customer is None or d.customer_id == customer]
            if len(cands) != 1:
                why = "no such invoice" if not cands else f"{len(cands)} documents have that number"
                raise UserError(f"remittance advice row {r['row']}, column 'invoice' ({r['invoice']!r}): {why}")
            doc = cands[0]
        if customer is not None and doc.customer_id != customer:
            raise UserError(f"remittance advice row {r['row']}, column 'invoice' ({r['invoice']!r}): belongs to "
                            f"{doc.customer_id}, receipt {rec['id']} to {customer}")
        customer = customer or doc.customer_id
        if doc.currency != cur:
            raise UserError(f"remittance advice row {r['row']}: invoice {doc.id} is in {doc.currency}, "
                            f"the receipt in {cur}")
        open_ = item_open_cents(conn, doc.id)
        paid = int(r["amount_cents"])
        ded = r["deduction_cents"]
        ded = None if ded is None or pd.isna(ded) else int(ded)
        reason = r["reason"] if isinstance(r["reason"], str) else None
        if ded is None and reason and paid < open_:
            ded = open_ - paid  # a short payment with a reason: the difference is the deduction
        ded = ded or 0
        if ded and not reason:
            raise UserError(f"remittance advice row {r['row']}: a deduction of {money_text(ded, cur)} needs a reason "
                            "code")
        if paid + ded > open_:
            raise UserError(f"remittance advice row {r['row']}: {money_text(paid + ded, cur)} paid and deducted is "
                            f"more than invoice {doc.id}'s open {money_text(open_, cur)}")
        if paid:
            allocations.append((doc.id, paid))
        if ded:
            deductions.append((doc.id, ded, reason))
        lines.append({"row": r["row"], "invoice_id": doc.id, "paid_cents": paid, "deduction_cents": ded,
                      "reason": reason, "open_before_cents": open_, "open_after_cents": open_ - paid - ded})
    return {"receipt_id": rec["id"], "customer_id": customer, "currency": cur, "allocations": allocations,
            "deductions": deductions, "lines": lines}


def apply_advice(engine: sa.Engine, user, receipt_id: str | None, source, applied_date=None,
                 file_name: str | None = None) -> dict:
    """Load a remittance advice and post it: the receipt's split and the deductions, all or nothing.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : analytics.auth.User
        Needs ``cash_application``.
    receipt_id : str or None
        The receipt id or its bank reference (None: the advice's ``receipt`` column).
    source : path, bytes or binary file-like (CSV or .xlsx)
    applied_date : datetime.date, optional
        Default: the receipt's date (or the latest invoice date when later).

    Returns
    -------
    dict
        ``receipt_id, customer_id, currency, applied_cents, deductions_cents, lines, application_ids,
        adjustment_ids``.

    Example
    -------
    >>> apply_advice(engine, User("f", "finance"), "BR1102001", "advice.csv")["deductions_cents"]  # doctest: +SKIP
    5000
    """
    from analytics.cash_app.posting import apply_with_deductions

    advice = read_advice(source, file_name)
    with engine.connect() as conn:
        plan = plan_advice(conn, receipt_id, advice)
        if applied_date is None:
            inv = schema.invoices
            ids = [a for a, _ in plan["allocations"]] + [d for d, _, _ in plan["deductions"]]
            latest = conn.execute(sa.select(sa.func.max(inv.c.invoice_date)).where(inv.c.id.in_(ids))).scalar()
            rdate = conn.execute(sa.select(schema.receipts.c.receipt_date)
                                 .where(schema.receipts.c.id == plan["receipt_id"])).scalar()
            applied_date = max(d for d in (latest, rdate) if d is not None)
    posted = apply_with_deductions(engine, user, plan["receipt_id"], plan["allocations"], plan["deductions"],
                                   applied_date=applied_date)
    applied = sum(a for _, a in plan["allocations"])
    deducted = sum(d for _, d, _ in plan["deductions"])
    cur = plan["currency"]
    message = (f"Receipt {plan['receipt_id']}: {money_text(applied, cur)} applied to {len(plan['allocations'])} "
               f"item(s) of {plan['customer_id']}, {len(plan['deductions'])} deduction(s) of "
               f"{money_text(deducted, cur)} posted.")
    return {"receipt_id": plan["receipt_id"], "customer_id": plan["customer_id"], "currency": cur,
            "applied_cents": applied, "deductions_cents": deducted, "lines": plan["lines"], "message": message,
            **posted}
