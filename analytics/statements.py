"""Customer statements of account: balance brought forward, the period's documents, payments and
credits, balance carried forward, and the open items with their aging; as data and as a PDF.

Everything comes from the ledger as of dates (nothing stored): for a customer, currency and period
[start, end]

* **brought forward** = the open amount of the customer's items at ``start - 1 day``
  (:func:`analytics.ledger.open_items`);
* **lines** = the documents dated in the period (invoices and debit memos +, credit memos −) and every
  movement dated on or before ``end`` that is not already in the brought-forward balance (payments
  applied, credits applied and used, write-offs, adjustments, deductions: :func:`analytics.ledger.settlements`);
* **carried forward** = the open amount at ``end``, which equals brought forward + the lines to the
  cent (checked on every statement; a mismatch raises instead of printing a wrong statement).
* **open items** at ``end``: an invoice with an instalment schedule is listed as its open instalments
  (document ``INV-1 inst. 2``, the instalment's due date, days past due, bucket and open amount;
  earliest instalment paid first, :func:`analytics.instalments.instalment_items`), so the statement's
  aging is the Aging page's.

The PDF is drawn with fpdf2 (pure Python, no system libraries; chosen over WeasyPrint, which needs
Pango/Cairo from the system): Helvetica when every text is Latin-1, else DejaVu Sans when installed.

Example
-------
>>> st = statement(engine, "K1", dt.date(2024, 1, 1), dt.date(2024, 6, 30))  # doctest: +SKIP
>>> st.carried_forward_cents == st.brought_forward_cents + sum(l["amount_cents"] for l in st.lines)  # doctest: +SKIP
True
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import zipfile
from pathlib import Path

import sqlalchemy as sa

from analytics import schema
from analytics.dunning import money_text, safe_file_name
from analytics.errors import UserError
from analytics.instalments import aged_items
from analytics.ledger import NO_FILTER, LedgerFilter, as_date, open_items, return_reversal, settlements

_KIND_TEXT = {"cash": "Payment applied", "credit": "Credit applied", "credit_used": "Credit memo used",
              "write_off": "Write-off", "adjustment": "Adjustment", "deduction": "Deduction"}
_DOC_TEXT = {"invoice": "Invoice", "debit_memo": "Debit memo", "credit_memo": "Credit memo"}
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


@dataclasses.dataclass
class Statement:
    """One customer's statement in one currency (money in cents)."""

    customer_id: str
    customer_name: str
    currency: str
    start: dt.date
    end: dt.date
    brought_forward_cents: int
    carried_forward_cents: int
    lines: list            # dicts: date, document, text, amount_cents (chronological)
    open_items: list       # dicts: document, doc_type, date, due, days_past_due, bucket, open_cents,
    #                        invoice_id, instalment (its number, 0 = no schedule)
    aging: dict            # bucket label -> cents

    @property
    def totals(self) -> dict:
        """Period totals: ``invoiced``, ``credits``, ``payments``, ``other`` (cents)."""
        out = {"invoiced": 0, "credits": 0, "payments": 0, "other": 0}
        for ln in self.lines:
            out[ln["group"]] += ln["amount_cents"]
        return out


def _bucket(days: int) -> str:
    from analytics.kpis import DEFAULT_BUCKETS

    for b in DEFAULT_BUCKETS:
        if (b.min_days is None or days >= b.min_days) and (b.max_days is None or days <= b.max_days):
            return b.label
    return f"{days} days"


def statement(conn: sa.Connection | sa.Engine, customer_id: str, start: dt.date, end: dt.date,
              currency: str | None = None) -> Statement:
    """Build one statement of account.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    customer_id : str
    start, end : datetime.date
        The period, both days included.
    currency : str, optional
        Default the customer's currency.

    Returns
    -------
    Statement

    Raises
    ------
    UserError
        Unknown customer, or ``start`` after ``end``.

    Example
    -------
    >>> statement(engine, "K1", dt.date(2024, 1, 1), dt.date(2024, 6, 30)).carried_forward_cents  # doctest: +SKIP
    128000
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return statement(c, customer_id, start, end, currency)
    if start > end:
        raise UserError(f"--from: {start.isoformat()} is after --to {end.isoformat()}")
    cust = conn.execute(sa.select(schema.customers).where(schema.customers.c.id == customer_id)).first()
    if cust is None:
        raise UserError(f"customer_id: unknown customer {customer_id!r}")
    cur = currency or cust.currency
    flt = LedgerFilter(customers=(customer_id,), currencies=(cur,))

    def balance(day):
        oi = open_items(day, flt)
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(oi.c.open_cents), 0))).scalar())

    bf = balance(start - dt.timedelta(days=1))
    inv = schema.invoices
    mine = sa.and_(inv.c.customer_id == customer_id, inv.c.currency == cur, inv.c.invoice_date <= end)
    lines = []
    for r in conn.execute(sa.select(inv.c.id, inv.c.doc_type, inv.c.invoice_date, inv.c.amount_cents)
                          .where(mine, inv.c.invoice_date >= start)):
        lines.append({"date": r.invoice_date, "document": r.id, "text": _DOC_TEXT.get(r.doc_type, r.doc_type),
                      "amount_cents": int(r.amount_cents),
                      "group": "credits" if r.doc_type == "credit_memo" else "invoiced"})
    s = settlements()
    moves = (sa.select(s.c.item_id, s.c.move_date, s.c.kind, sa.func.sum(s.c.delta_cents).label("delta"))
             .select_from(s.join(inv, inv.c.id == s.c.item_id))
             .where(mine, s.c.move_date <= end, sa.or_(s.c.move_date >= start, inv.c.invoice_date >= start))
             .group_by(s.c.item_id, s.c.move_date, s.c.kind))
    ap = schema.applications  # cash a bank return took back: its own line (ledger.return_reversal)
    back = {(r[0], as_date(r[1])): int(r[2]) for r in conn.execute(
        sa.select(ap.c.invoice_id, ap.c.applied_date, sa.func.sum(-ap.c.amount_cents))
        .select_from(ap.join(inv, inv.c.id == ap.c.invoice_id))
        .where(mine, ap.c.applied_date <= end, return_reversal(ap)).group_by(ap.c.invoice_id, ap.c.applied_date))}
    for r in conn.execute(moves):
        returned = back.get((r.item_id, as_date(r.move_date)), 0) if r.kind == "cash" else 0
        group = "payments" if r.kind == "cash" else "credits" if r.kind in ("credit", "credit_used") else "other"
        if returned:
            lines.append({"date": r.move_date, "document": r.item_id, "text": "Payment returned by the bank",
                          "amount_cents": returned, "group": "payments"})
        if int(r.delta) - returned == 0:
            continue
        lines.append({"date": r.move_date, "document": r.item_id, "text": _KIND_TEXT.get(r.kind, r.kind),
                      "amount_cents": int(r.delta) - returned, "group": group})
    lines.sort(key=lambda x: (x["date"], x["document"], x["text"]))
    oi = aged_items(conn, end, flt)  # an invoice with a schedule: one line per open instalment
    k = oi.c.instalment if "instalment" in oi.c else sa.literal_column("0")
    items = [{"document": r.invoice_id + (f" inst. {r.k}" if r.k else ""), "doc_type": r.doc_type,
              "date": r.invoice_date, "due": r.due_date, "days_past_due": int(r.days_past_due),
              "bucket": _bucket(int(r.days_past_due)), "open_cents": int(r.open_cents), "invoice_id": r.invoice_id,
              "instalment": int(r.k)}
             for r in conn.execute(sa.select(oi, k.label("k")).order_by(oi.c.due_date, oi.c.invoice_id, "k"))]
    cf = sum(i["open_cents"] for i in items)
    if cf != bf + sum(x["amount_cents"] for x in lines):  # pragma: no cover - the ledger's own identity
        raise UserError(f"statement of {customer_id!r}: brought forward {money_text(bf, cur)} and the period's "
                        f"lines do not add up to the ledger's balance {money_text(cf, cur)}")
    from analytics.kpis import DEFAULT_BUCKETS

    aging = {b.label: 0 for b in DEFAULT_BUCKETS}  # Current first, oldest last
    for i in items:
        aging[i["bucket"]] = aging.get(i["bucket"], 0) + i["open_cents"]
    return Statement(customer_id, cust.name, cur, start, end, bf, cf, lines, items, aging)


# ------------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------------
def _latin1(*texts: str) -> bool:
    try:
        for t in texts:
            str(t).encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _pdf(unicode: bool = True):
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=15)
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if unicode and regular.exists() and bold.exists():
        pdf.add_font("Body", "", str(regular))
        pdf.add_font("Body", "B", str(bold))
        pdf.font_name = "Body"
    else:
        pdf.font_name = "Helvetica"
    return pdf


def _text(pdf, value: str) -> str:
    return value if pdf.font_name == "Body" else value.encode("latin-1", "replace").decode("latin-1")


def render_pdf(st: Statement, company: str = "Example Supplies Ltd", pdf=None) -> bytes:
    """The statement as PDF bytes (A4; amounts with separators and the currency).

    Example
    -------
    >>> Path("k1.pdf").write_bytes(render_pdf(statement(engine, "K1", d0, d1)))  # doctest: +SKIP
    """
    own = pdf is None
    # Latin-1 text prints in the built-in Helvetica (3 ms a statement); other scripts embed DejaVu Sans
    # (subsetting the font costs about 95 ms a statement).
    pdf = pdf or _pdf(unicode=not _latin1(company, st.customer_name, st.customer_id,
                                          *(x["document"] for x in st.lines)))
    pdf.add_page()
    f, t = pdf.font_name, (lambda v: _text(pdf, str(v)))
    cur = st.currency
    pdf.set_font(f, "B", 15)
    pdf.cell(0, 8, t(company), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(f, "", 10)
    pdf.cell(0, 6, t(f"Statement of account, {st.start:%d %b %Y} to {st.end:%d %b %Y}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(f, "B", 11)
    pdf.multi_cell(0, 6, t(st.customer_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(f, "", 10)
    pdf.cell(0, 6, t(f"Customer account {st.customer_id} · amounts in {cur}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    tot = st.totals
    summary = [("Balance brought forward", st.brought_forward_cents), ("Invoices and debit memos", tot["invoiced"]),
               ("Credits", tot["credits"]), ("Payments", tot["payments"]), ("Write-offs and adjustments", tot["other"]),
               ("Balance carried forward", st.carried_forward_cents)]
    for i, (label, cents) in enumerate(summary):
        pdf.set_font(f, "B" if i in (0, len(summary) - 1) else "", 10)
        pdf.cell(120, 6, t(label), border="B")
        pdf.cell(60, 6, t(money_text(cents, cur)), border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    def table(title, head, widths, rows, aligns):
        pdf.set_font(f, "B", 11)
        pdf.cell(0, 7, t(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(f, "B", 9)
        for h, w, a in zip(head, widths, aligns):
            pdf.cell(w, 6, t(h), border="B", align=a)
        pdf.ln()
        pdf.set_font(f, "", 9)
        if not rows:
            pdf.cell(0, 6, t("none"), new_x="LMARGIN", new_y="NEXT")
        for row in rows:
            for v, w, a in zip(row, widths, aligns):
                text = t(v)
                while pdf.get_string_width(text) > w - 1 and len(text) > 1:  # never spill into the next column
                    text = text[:-2] + "…" if pdf.font_name == "Body" else text[:-2] + "."
                pdf.cell(w, 5.5, text, align=a)
            pdf.ln()
        pdf.ln(3)

    table("Transactions in the period", ["Date", "Document", "Description", f"Amount ({cur})"], [25, 45, 70, 40],
          [(x["date"].isoformat(), x["document"], x["text"], money_text(x["amount_cents"])) for x in st.lines],
          ["L", "L", "L", "R"])
    table(f"Open items at {st.end:%d %b %Y}", ["Document", "Date", "Due", "Days past due", "Aging",
                                                f"Open ({cur})"], [40, 24, 24, 26, 26, 40],
          [(i["document"], i["date"].isoformat(), i["due"].isoformat(), str(i["days_past_due"]), i["bucket"],
            money_text(i["open_cents"])) for i in st.open_items], ["L", "L", "L", "R", "L", "R"])
    table("Aging of the balance carried forward", ["Bucket", f"Amount ({cur})"], [60, 40],
          [(k, money_text(v)) for k, v in st.aging.items()], ["L", "R"])
    return bytes(pdf.output()) if own else b""


def pdf_name(customer_id: str, start: dt.date, end: dt.date) -> str:
    """The file name of one statement's PDF (downloads, zips and e-mail attachments alike).

    Example
    -------
    >>> pdf_name("K1", dt.date(2024, 1, 1), dt.date(2024, 6, 30))
    'statement_K1_2024-01-01_2024-06-30.pdf'
    """
    return f"statement_{safe_file_name(customer_id)}_{start.isoformat()}_{end.isoformat()}.pdf"


def statement_pdf(conn: sa.Connection | sa.Engine, customer_id: str, start: dt.date, end: dt.date) -> bytes:
    """One customer's statement rendered as PDF (:func:`statement` then :func:`render_pdf`), so a page
    can cache the bytes instead of rendering them on every rerun.

    Example
    -------
    >>> Path(pdf_name("K1", d0, d1)).write_bytes(statement_pdf(engine, "K1", d0, d1))  # doctest: +SKIP
    """
    return render_pdf(statement(conn, customer_id, start, end))


def statements_zip(conn: sa.Connection | sa.Engine, start: dt.date, end: dt.date,
                   flt: LedgerFilter = NO_FILTER) -> tuple[bytes, int]:
    """A zip of one PDF per customer of the filter with a balance or a movement; (bytes, count).

    Example
    -------
    >>> blob, n = statements_zip(engine, dt.date(2026, 10, 1), dt.date(2026, 10, 31))  # doctest: +SKIP
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return statements_zip(c, start, end, flt)
    inv = schema.invoices
    stmt = flt.apply_to_invoices(sa.select(inv.c.customer_id).where(inv.c.invoice_date <= end).distinct())
    ids = sorted(conn.execute(stmt).scalars().all())
    buf, n = io.BytesIO(), 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for cid in ids:
            st = statement(conn, cid, start, end)
            if not st.lines and st.carried_forward_cents == 0 and st.brought_forward_cents == 0:
                continue
            zf.writestr(pdf_name(cid, start, end), render_pdf(st))
            n += 1
    return buf.getvalue(), n


def send_statement(engine: sa.Engine, user, customer_id: str, start: dt.date, end: dt.date, settings=None) -> str:
    """E-mail one statement (PDF attached) to the customer's address and log an ``email`` activity.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : analytics.auth.User
        Needs ``write_activity`` on the customer.
    customer_id : str
    start, end : datetime.date
    settings : analytics.mailer.SmtpSettings, optional
        Default from ``AR_SMTP_*``.

    Returns
    -------
    str
        The address it went to.

    Raises
    ------
    UserError
        No mail server, no address for the customer, or the server refused (nothing is logged then).

    Example
    -------
    >>> send_statement(engine, manager, "K1", dt.date(2024, 6, 1), dt.date(2024, 6, 30))  # doctest: +SKIP
    'ap@kappa.example'
    """
    from analytics import mailer
    from analytics.auth import require
    from analytics.workflow import log_activity

    settings = settings or mailer.settings_from_env()
    if settings is None:
        raise UserError("AR_SMTP_HOST: no mail server is configured; download the statement instead")
    require(user, "write_activity", customer_id, engine)
    st = statement(engine, customer_id, start, end)
    with engine.connect() as conn:
        address = (conn.execute(sa.select(schema.customers.c.email).where(schema.customers.c.id == customer_id))
                   .scalar() or "").strip()
    if not address:
        raise UserError(f"customer {customer_id!r} has no e-mail address (customers.email)")
    period = f"{start:%d %b %Y} to {end:%d %b %Y}"
    body = (f"Dear {st.customer_name},\n\nplease find attached your statement of account for {period}. "
            f"Balance carried forward: {money_text(st.carried_forward_cents, st.currency)}.\n")
    html = mailer.escape_html(body).replace("\n", "<br>")
    msg = mailer.build_message(settings, address, f"Statement of account {customer_id}, {period}", body, html, [
        (pdf_name(customer_id, start, end), render_pdf(st),
         "application/pdf")])
    mailer.send(settings, msg)
    log_activity(engine, user, customer_id, "email", outcome="statement sent",
                 note=f"statement {start.isoformat()}..{end.isoformat()} e-mailed to {address}")
    return address


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics statement --customer ID --from D --to D --out FILE | --all --out FILE.zip
# ------------------------------------------------------------------------------------------------
def configure_statement_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics statement``."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", help="customer id")
    who.add_argument("--all", action="store_true", help="every customer with a balance or movement (a zip)")
    parser.add_argument("--collector", action="append", default=[], help="with --all: only this collector's")
    parser.add_argument("--from", dest="start", required=True, help="first day YYYY-MM-DD")
    parser.add_argument("--to", dest="end", required=True, help="last day YYYY-MM-DD")
    parser.add_argument("--out", required=True, help="the PDF (or zip with --all) to write")
    parser.set_defaults(run=_run_cli)


configure_cli = configure_statement_cli


def _run_cli(args) -> int:
    from analytics import db

    try:
        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    except ValueError:
        raise UserError(f"--from/--to: not a date (YYYY-MM-DD): {args.start!r} / {args.end!r}") from None
    engine = db.connect(args.db)
    if args.all:
        blob, n = statements_zip(engine, start, end, LedgerFilter(collectors=tuple(args.collector)))
        Path(args.out).write_bytes(blob)
        print(f"wrote {n} statements to {args.out}")
    else:
        st = statement(engine, args.customer, start, end)
        Path(args.out).write_bytes(render_pdf(st))
        print(f"wrote {args.out}: brought forward {money_text(st.brought_forward_cents, st.currency)}, "
              f"carried forward {money_text(st.carried_forward_cents, st.currency)}")
    return 0
