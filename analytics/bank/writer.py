"""Write receipts as bank statements (BAI2, MT940, camt.053), so tests and the demo use real formats.

:func:`statement_bytes` turns statement lines into a file: BAI2 through the ``bai2`` library's writer
(models and trailers with their control totals); MT940 and camt.053 written field by field to the
published layouts (MT940: ``:20:/:25:/:28C:/:60F:/:61:/:86:/:62F:``; camt.053.001.02 with
``Ntry/NtryDtls/TxDtls``, debtor name and IBAN, ``Ustrd`` remittance). Payer details go in the keyed text
the parsers read (``/NAME/…/IBAN/…/REMI/…``). :func:`export_statement` writes a ledger's receipts (a
date range) or, for the demo, simulated payments of open items.

Payer accounts: a customer's account is a German IBAN derived from its id (valid check digits,
made with ``schwifty``), the same in every export.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random
from decimal import Decimal
from xml.sax.saxutils import escape

import sqlalchemy as sa

from analytics import schema
from analytics.bank.parsers import BankLine
from analytics.ledger import as_date

OUR_ACCOUNT = {"bai2": "123456789", "mt940": "NL91ABNA0417164300", "camt053": "NL91ABNA0417164300"}
_BAI2_CODES = {"credit": "195", "debit": "698", "return": "555"}


def customer_iban(customer_id: str) -> str:
    """The demo IBAN of a customer: German, bank 37040044, account from a hash of the id.

    Example
    -------
    >>> customer_iban("C0001")[:4]
    'DE..'  # doctest: +SKIP
    """
    from schwifty import IBAN

    digits = str(int(hashlib.sha256(customer_id.encode()).hexdigest(), 16))[:10]
    return str(IBAN.generate("DE", bank_code="37040044", account_code=digits).compact)


def _text(ln: BankLine) -> str:
    parts = []
    if ln.payer_name:
        parts.append(f"/NAME/{ln.payer_name.replace('/', '-')}")
    if ln.payer_account:
        parts.append(f"/IBAN/{ln.payer_account}")
    if ln.returned_reference:
        parts.append(f"/RTRN/{ln.returned_reference}")
    if ln.remittance_text:
        parts.append(f"/REMI/{ln.remittance_text.rstrip('/')}")
    return "".join(parts)


def _amount(cents: int, sep: str) -> str:
    return f"{Decimal(cents) / 100:.2f}".replace(".", sep)


def _by_day(lines: list[BankLine]) -> dict[dt.date, dict[str, list[BankLine]]]:
    """Lines grouped by value date then currency, both sorted; file order kept inside a group."""
    out: dict[dt.date, dict[str, list[BankLine]]] = {}
    for ln in lines:
        out.setdefault(ln.value_date, {}).setdefault(ln.currency, []).append(ln)
    return {d: dict(sorted(out[d].items())) for d in sorted(out)}


def _bai2(lines: list[BankLine]) -> str:
    from bai2 import models
    from bai2.constants import FundsType, GroupStatus, TypeCodes as codes
    from bai2.models import Account, AccountIdentifier, Bai2File, Group, GroupHeader, TransactionDetail

    groups = []
    for day, by_cur in _by_day(lines).items():
        accounts = []
        for cur, todays in by_cur.items():
            details = [TransactionDetail(type_code=codes[_BAI2_CODES[ln.direction]], amount=ln.amount_cents,
                                         funds_type=FundsType.immediate_availability,
                                         bank_reference=ln.bank_reference or "", customer_reference=ln.customer_reference
                                         or "", text=_text(ln))
                       for ln in todays]
            accounts.append(Account(header=AccountIdentifier(customer_account_number=OUR_ACCOUNT["bai2"],
                                                             currency=cur), children=details))
        groups.append(Group(header=GroupHeader(ultimate_receiver_id="ACMEAR", originator_id="BANKUS33",
                                               group_status=GroupStatus.update, as_of_date=day, as_of_time=dt.time(8, 0),
                                               currency=None), children=accounts))
    f = Bai2File(header=models.Bai2FileHeader(sender_id="BANKUS33", receiver_id="ACMEAR",
                                              creation_date=max(ln.value_date for ln in lines),
                                              creation_time=dt.time(8, 0), file_id="1", version_number=2),
                 children=groups)
    from bai2.bai2 import write

    return write(f) + "\n"


def _mt940(lines: list[BankLine]) -> str:
    out = []
    for n, (day, by_cur) in enumerate(_by_day(lines).items(), start=1):
        for cur, todays in by_cur.items():
            out += [f":20:STMT{day:%y%m%d}", f":25:{OUR_ACCOUNT['mt940']}", f":28C:{n}/1",
                    f":60F:C{day:%y%m%d}{cur}0,00"]
            bal = 0
            for ln in todays:
                mark = {"credit": "C", "debit": "D", "return": "D"}[ln.direction]
                kind = "NRTI" if ln.direction == "return" else "NTRF"
                cref = (ln.customer_reference or "NONREF")[:16]
                out.append(f":61:{day:%y%m%d}{day:%m%d}{mark}{_amount(ln.amount_cents, ',')}{kind}{cref}"
                           f"//{(ln.bank_reference or '')[:16]}")
                out.append(f":86:{_text(ln)}")
                bal += ln.amount_cents if mark == "C" else -ln.amount_cents
            out.append(f":62F:{'C' if bal >= 0 else 'D'}{day:%y%m%d}{cur}{_amount(abs(bal), ',')}")
    return "\n".join(out) + "\n"


def _camt053(lines: list[BankLine]) -> str:
    e = escape
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">', "<BkToCstmrStmt>",
           "<GrpHdr><MsgId>AR-EXPORT</MsgId><CreDtTm>"
           f"{max(ln.value_date for ln in lines).isoformat()}T08:00:00</CreDtTm></GrpHdr>"]
    for day, by_cur in _by_day(lines).items():
        for cur, todays in by_cur.items():
            out.append(f"<Stmt><Id>STMT-{day:%Y%m%d}-{cur}</Id><CreDtTm>{day.isoformat()}T08:00:00</CreDtTm>"
                       f"<Acct><Id><IBAN>{OUR_ACCOUNT['camt053']}</IBAN></Id><Ccy>{cur}</Ccy></Acct>")
            for ln in todays:
                sign = "CRDT" if ln.direction == "credit" else "DBIT"
                rvsl = "<RvslInd>true</RvslInd>" if ln.direction == "return" else ""
                sub = {"credit": "ESCT", "debit": "CHRG", "return": "RRTN"}[ln.direction]
                party = ""
                if ln.payer_name or ln.payer_account:
                    party = "<RltdPties>"
                    if ln.payer_name:
                        party += f"<Dbtr><Nm>{e(ln.payer_name)}</Nm></Dbtr>"
                    if ln.payer_account:
                        party += f"<DbtrAcct><Id><IBAN>{ln.payer_account}</IBAN></Id></DbtrAcct>"
                    party += "</RltdPties>"
                remit = ln.remittance_text or ""
                if ln.returned_reference:
                    remit = f"/RTRN/{ln.returned_reference}/REMI/{remit}"
                rmt = f"<RmtInf><Ustrd>{e(remit)}</Ustrd></RmtInf>" if remit else ""
                e2e = e(ln.customer_reference or "NOTPROVIDED")
                out.append(f'<Ntry><Amt Ccy="{cur}">{_amount(ln.amount_cents, ".")}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
                           f"{rvsl}<Sts>BOOK</Sts><BookgDt><Dt>{day.isoformat()}</Dt></BookgDt><ValDt><Dt>"
                           f"{day.isoformat()}</Dt></ValDt><AcctSvcrRef>{e(ln.bank_reference or '')}</AcctSvcrRef>"
                           f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn>"
                           f"</BkTxCd><NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>{party}{rmt}"
                           "</TxDtls></NtryDtls></Ntry>")
            out.append("</Stmt>")
    out += ["</BkToCstmrStmt>", "</Document>"]
    return "\n".join(out) + "\n"


def statement_bytes(lines: list[BankLine], fmt: str) -> bytes:
    """A statement file of ``lines`` in ``fmt`` (one statement per value date and currency).

    Parameters
    ----------
    lines : list of BankLine
    fmt : {"bai2", "mt940", "camt053"}

    Returns
    -------
    bytes
        UTF-8.

    Example
    -------
    >>> statement_bytes([BankLine(0, "", "USD", dt.date(2026, 11, 2), "credit", 100)], "mt940")[:4]
    b':20:'
    """
    if not lines:
        raise ValueError("no lines to write")
    return {"bai2": _bai2, "mt940": _mt940, "camt053": _camt053}[fmt](lines).encode("utf-8")


def receipt_lines(conn: sa.Connection, date_from: dt.date | None = None, date_to: dt.date | None = None,
                  simulate: int = 0, seed: int = 7) -> list[BankLine]:
    """Statement lines for the ledger's receipts in a date range, or ``simulate`` new payments.

    Simulated payments (the demo): ``simulate`` open items, each paid in full the day after the
    ledger's last date by its customer (name and IBAN); 70 % quote the invoice number, 20 % send no
    remittance text, 10 % come from an unknown payer.

    Example
    -------
    >>> len(receipt_lines(conn, simulate=50))  # doctest: +SKIP
    50
    """
    rc, cu = schema.receipts, schema.customers
    if not simulate:
        q = (sa.select(rc.c.id, rc.c.receipt_date, rc.c.amount_cents, rc.c.currency, rc.c.remittance_ref,
                       rc.c.customer_id, cu.c.name).select_from(rc.outerjoin(cu, cu.c.id == rc.c.customer_id))
             .order_by(rc.c.receipt_date, rc.c.id))
        if date_from:
            q = q.where(rc.c.receipt_date >= date_from)
        if date_to:
            q = q.where(rc.c.receipt_date <= date_to)
        ibans: dict[str, str] = {}
        out = []
        for r in conn.execute(q).all():
            acct = None
            if r.customer_id:
                acct = ibans.get(r.customer_id) or ibans.setdefault(r.customer_id, customer_iban(r.customer_id))
            out.append(BankLine(0, "", r.currency, as_date(r.receipt_date), "credit", int(r.amount_cents),
                                payer_name=r.name, payer_account=acct, bank_reference=str(r.id)[:16],
                                remittance_text=r.remittance_ref))
        return out
    from analytics.ledger import default_as_of, open_items

    day = default_as_of(conn)
    oi = open_items(day)
    items = conn.execute(sa.select(oi.c.invoice_id, oi.c.customer_id, oi.c.currency, oi.c.open_cents, cu.c.name)
                         .select_from(oi.join(cu, cu.c.id == oi.c.customer_id))
                         .where(oi.c.open_cents > 0).order_by(oi.c.invoice_id)).all()
    rng = random.Random(seed)
    picked = rng.sample(items, min(simulate, len(items)))
    out = []
    for k, it in enumerate(sorted(picked, key=lambda r: r.invoice_id)):
        u = rng.random()
        name, acct = it.name, customer_iban(it.customer_id)
        text = it.invoice_id if u < 0.7 else None
        if u >= 0.9:
            name, acct, text = "UNKNOWN REMITTER", None, None
        out.append(BankLine(0, "", it.currency, day + dt.timedelta(days=1), "credit", int(it.open_cents),
                            payer_name=name, payer_account=acct, bank_reference=f"SIM{seed}-{k:06d}",
                            remittance_text=text))
    return out


def export_statement(engine: sa.Engine, fmt: str, out_path: str, date_from: dt.date | None = None,
                     date_to: dt.date | None = None, simulate: int = 0, seed: int = 7) -> int:
    """Write the ledger's receipts (or simulated payments) to ``out_path`` as a ``fmt`` statement.

    Returns
    -------
    int
        Lines written.

    Example
    -------
    >>> export_statement(engine, "camt053", "demo.xml", simulate=200)  # doctest: +SKIP
    200
    """
    from analytics.errors import UserError

    with engine.connect() as conn:
        lines = receipt_lines(conn, date_from, date_to, simulate, seed)
    if not lines:
        raise UserError("no receipts to write (check --from/--to, or use --simulate N)")
    with open(out_path, "wb") as fh:
        fh.write(statement_bytes(lines, fmt))
    return len(lines)
