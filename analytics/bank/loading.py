"""Load a parsed bank statement into the ledger: credits become receipts, returns reverse them.

* **Each line once.** A line's key is the SHA-256 of the account, value date, direction, amount,
  currency, bank and customer references, payer account and remittance text, plus its rank among
  identical lines of the same file. A line already in ``bank_lines`` is skipped, so loading the same
  statement twice changes nothing and an overlapping statement adds only its new lines.
* **All or nothing.** The file is parsed and checked before anything is written; a bad line refuses
  the file naming its line (:mod:`analytics.bank.parsers`) and the database is unchanged.
* **Credits** become receipts ``BNK-<key>`` (method ``wire``, no customer: the matcher identifies
  the payer), with the payer's name and account, the bank reference and the statement id; the
  remittance text goes to ``remittance_ref``, the text the matcher reads.
* **Returns** (a bounced or recalled credit) name the receipt they reverse: the receipt whose bank
  reference the return quotes (``/RTRN/``), else the latest receipt of the same payer account,
  amount and currency dated on or before the return. Cash that receipt had applied is unapplied
  with :func:`analytics.cash_app.posting.unapply` (negative applications, audited), and the matcher
  no longer proposes it. **Other debits** (fees, transfers out) are kept as statement lines only.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import sqlalchemy as sa

from analytics import db, schema
from analytics.bank.parsers import ParsedStatement, parse
from analytics.errors import UserError
from analytics.ledger import as_date, returned_receipts

bs = schema.bank_statements
bl_t = schema.bank_lines
rc = schema.receipts
ap = schema.applications


@dataclasses.dataclass
class BankLoadReport:
    """What a statement load did (counts of lines by outcome, the statements written)."""

    file_name: str | None
    format: str
    lines_read: int = 0
    lines_new: int = 0
    lines_duplicate: int = 0
    receipts: int = 0
    debits: int = 0
    returns: int = 0
    returns_unmatched: int = 0
    unapplied: int = 0
    statement_ids: list[int] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        """The report as a plain dict (for ``--json``)."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line for people."""
        return (f"{self.file_name or 'statement'} ({self.format}): {self.lines_read} line(s) read, "
                f"{self.lines_new} new ({self.receipts} receipt(s), {self.debits} debit(s), {self.returns} "
                f"return(s)), {self.lines_duplicate} already loaded")


def line_keys(parsed: ParsedStatement) -> list[str]:
    """The identity of each line (see the module docstring), in file order.

    Example
    -------
    >>> line_keys(parse(open("tests/fixtures/bank/statement.bai2", "rb").read()))[0][:8]  # doctest: +SKIP
    '3f1c9a0b'
    """
    seen: dict[str, int] = {}
    out = []
    for ln in parsed.lines:
        base = "|".join(str(v or "") for v in (ln.account, ln.value_date.isoformat(), ln.direction, ln.amount_cents,
                                               ln.currency, ln.bank_reference, ln.customer_reference,
                                               ln.payer_account, ln.remittance_text))
        rank = seen.get(base, 0)
        seen[base] = rank + 1
        out.append(hashlib.sha256(f"{base}|{rank}".encode()).hexdigest())
    return out


def _existing_keys(conn: sa.Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for k in range(0, len(keys), 5000):
        chunk = keys[k:k + 5000]
        found |= set(conn.execute(sa.select(bl_t.c.line_key).where(bl_t.c.line_key.in_(chunk))).scalars())
    return found


def _returned_receipt(conn: sa.Connection, ln, new_receipts: list[dict]) -> str | None:
    if ln.returned_reference:
        for r in new_receipts:
            if r["bank_reference"] == ln.returned_reference:
                return r["id"]
        hit = _first(conn, sa.select(rc.c.id).where(rc.c.bank_reference == ln.returned_reference)
                     .order_by(rc.c.receipt_date.desc(), rc.c.id).limit(1))
        if hit:
            return hit
    if ln.payer_account:
        for r in reversed(new_receipts):
            if (r["payer_account"], r["amount_cents"], r["currency"]) == (ln.payer_account, ln.amount_cents,
                                                                           ln.currency) \
                    and r["receipt_date"] <= ln.value_date:
                return r["id"]
        return _first(conn, sa.select(rc.c.id).where(
            rc.c.payer_account == ln.payer_account, rc.c.amount_cents == ln.amount_cents,
            rc.c.currency == ln.currency, rc.c.receipt_date <= ln.value_date)
            .order_by(rc.c.receipt_date.desc(), rc.c.id.desc()).limit(1))
    return None


def _first(conn: sa.Connection, stmt: sa.Select):
    rows = conn.execute(stmt).all()  # fetched whole: DuckDB refuses a bulk insert beside an open result
    return rows[0][0] if rows else None


def load_statement(engine: sa.Engine, source, fmt: str | None = None, file_name: str | None = None,
                   user=None) -> BankLoadReport:
    """Parse a bank statement and write its new lines in one transaction (see the module docstring).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger.
    source : path, bytes or binary file-like (a Streamlit ``UploadedFile``)
    fmt : {"bai2", "mt940", "camt053"}, optional
        Detected from the content when omitted.
    file_name : str, optional
        Name recorded and used in messages (default: from the path or file object).
    user : analytics.auth.User, optional
        Who loads (recorded; needs ``cash_application`` to unapply a returned receipt's cash; default a
        system user ``bank-import`` with the finance role).

    Returns
    -------
    BankLoadReport

    Raises
    ------
    UserError
        A malformed file (naming the line) or a read-only database; nothing is written.

    Example
    -------
    >>> load_statement(engine, "tests/fixtures/bank/statement.camt053.xml").receipts  # doctest: +SKIP
    3
    """
    from analytics.auth import User
    from analytics.loaders.files import read_source

    db.require_writable(engine, "load a bank statement")
    data, name = read_source(source, file_name)
    name = file_name or name or "statement"
    parsed = parse(data, fmt, name)
    if not parsed.lines:
        raise UserError(f"bank statement {name}: no transaction lines; nothing was loaded.")
    user = user or User("bank-import", "finance")
    sha = hashlib.sha256(data).hexdigest()
    keys = line_keys(parsed)
    report = BankLoadReport(name, parsed.format, lines_read=len(parsed.lines))
    reversals: list[str] = []
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with db.bulk_write(engine) as conn:
        have = _existing_keys(conn, keys)
        fresh = [(ln, k) for ln, k in zip(parsed.lines, keys) if k not in have]
        report.lines_duplicate = len(parsed.lines) - len(fresh)
        report.lines_new = len(fresh)
        if not fresh:
            return report
        batch_id = conn.execute(schema.import_batches.insert().values(
            loaded_at=now, source=f"bank_{parsed.format}", file_name=name[:500], file_sha256=sha,
            rows_inserted=len(fresh), rows_skipped=report.lines_duplicate).returning(
            schema.import_batches.c.id)).scalar_one()
        groups: dict[tuple, list] = {}
        for ln, k in fresh:
            groups.setdefault((ln.account, ln.currency), []).append((ln, k))
        new_receipts: list[dict] = []
        line_rows: list[dict] = []
        for (account, currency), items in groups.items():
            dates = [ln.value_date for ln, _ in items]
            sid = conn.execute(bs.insert().values(
                format=parsed.format, account=account or "(none)", statement_ref=items[0][0].statement_ref,
                currency=currency, from_date=min(dates), to_date=max(dates), file_name=name[:500], file_sha256=sha,
                loaded_at=now, loaded_by=user.username, lines_new=len(items),
                lines_duplicate=report.lines_duplicate, import_batch_id=batch_id).returning(bs.c.id)).scalar_one()
            report.statement_ids.append(int(sid))
            for ln, k in items:
                receipt_id = None
                if ln.direction == "credit":
                    receipt_id = f"BNK-{k[:24]}"
                    new_receipts.append(dict(
                        id=receipt_id, customer_id=None, receipt_date=ln.value_date, amount_cents=ln.amount_cents,
                        currency=ln.currency, method="wire", remittance_ref=ln.remittance_text,
                        import_batch_id=batch_id, payer_name=ln.payer_name, payer_account=ln.payer_account,
                        bank_reference=ln.bank_reference, statement_id=int(sid)))
                    report.receipts += 1
                elif ln.direction == "return":
                    receipt_id = _returned_receipt(conn, ln, new_receipts)
                    report.returns += 1
                    if receipt_id is None:
                        report.returns_unmatched += 1
                    else:
                        reversals.append(receipt_id)
                else:
                    report.debits += 1
                line_rows.append(dict(
                    statement_id=int(sid), line_key=k, file_line=ln.file_line, value_date=ln.value_date,
                    direction=ln.direction, amount_cents=ln.amount_cents, currency=ln.currency,
                    payer_name=ln.payer_name, payer_account=ln.payer_account, bank_reference=ln.bank_reference,
                    customer_reference=ln.customer_reference, type_code=ln.type_code,
                    remittance_text=ln.remittance_text, receipt_id=receipt_id))
        if new_receipts:
            db.bulk_insert(conn, rc, new_receipts)
        db.bulk_insert(conn, bl_t, line_rows)
        db.bump_ledger_version(conn)
    report.unapplied = reverse_returned(engine, user)
    return report


def returned_receipt_ids(conn: sa.Connection) -> set[str]:
    """Receipts a bank return reversed (the matcher leaves them alone).

    Example
    -------
    >>> returned_receipt_ids(conn)  # doctest: +SKIP
    {'BNK-3f1c9a0b...'}
    """
    return set(conn.execute(returned_receipts()).scalars())


def reverse_returned(engine: sa.Engine, user) -> int:
    """Unapply every returned receipt's remaining applications (each an audited negative application).

    Runs after each load; a load interrupted between the two steps is healed by the next one.

    Returns
    -------
    int
        Applications reversed.

    Example
    -------
    >>> reverse_returned(engine, User("bank-import", "finance"))  # doctest: +SKIP
    0
    """
    from analytics.cash_app.posting import unapply

    with engine.connect() as conn:
        returned = returned_receipt_ids(conn)
        if not returned:
            return 0
        net = sa.select(ap.c.receipt_id, ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("net"),
                        sa.func.max(ap.c.applied_date).label("last")) \
            .where(ap.c.receipt_id.in_(sorted(returned))).group_by(ap.c.receipt_id, ap.c.invoice_id)
        todo = [r for r in conn.execute(net).all() if int(r.net) > 0]
        ret_day = dict(conn.execute(sa.select(bl_t.c.receipt_id, sa.func.max(bl_t.c.value_date))
                                    .where(bl_t.c.direction == "return").group_by(bl_t.c.receipt_id)).all())
    for r in todo:
        day = max(as_date(r.last), as_date(ret_day.get(r.receipt_id) or r.last))
        unapply(engine, user, r.receipt_id, r.invoice_id, applied_date=day, reason="bank return")
    return len(todo)
