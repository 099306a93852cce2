"""Bank statement parsers: BAI2, SWIFT MT940 and ISO 20022 camt.053, each read by a library.

* **BAI2** — ``bai2`` (Ministry of Justice, maintained since 2016; parses every record type, checks the
  control totals and record counts of the account, group and file trailers, and also writes files).
* **MT940** — ``mt-940`` (WoLpH/mt940, the most used MT940 parser on PyPI; tags 20/25/28C/60F/61/86/62F,
  reversal marks ``RC``/``RD``).
* **camt.053** — ``pycamt`` (lxml with entity resolution and network access off, so a hostile XML file
  cannot read local files; versions .02 to .12, one row per ``TxDtls``).

What the libraries leave to us: the line number of a bad line, the sign and kind of a line (credit,
debit, return), and the payer details inside free text. BAI2 and MT940 carry them in the text field
(``88`` continuation / ``:86:``); we read the keyed form most banks use there,
``/NAME/<payer>/IBAN/<account>/EREF/<end-to-end id>/RTRN/<returned bank reference>/REMI/<remittance>``
(``REMI`` last, taking the rest of the text); text without keys is all remittance text. camt.053 has
them as elements (``Dbtr/Nm``, ``DbtrAcct/Id/IBAN``, ``RmtInf/Ustrd``, ``Refs/EndToEndId``,
``AcctSvcrRef``).

IBANs are checked with ``schwifty`` (country format, length and the ISO 7064 mod-97 check digits); an
account that is not IBAN-shaped (a US account number) is kept as it is.
"""
from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from analytics.errors import UserError

FORMATS = ("bai2", "mt940", "camt053")
#: BAI2 detail type codes of a returned (bounced) deposit or credit: a debit that reverses a receipt.
BAI2_RETURN_CODES = frozenset({"555", "557", "566", "568", "423", "468"})
#: MT940 transaction type codes of a returned item.
MT940_RETURN_TYPES = frozenset({"NRTI", "NRET"})
#: camt.053 bank transaction sub-family codes of a returned credit transfer or direct debit.
CAMT_RETURN_SUBFAMILIES = frozenset({"RRTN", "ARET", "RRCT", "UPDD"})
_KEYS = re.compile(r"/(NAME|IBAN|ACCT|EREF|RTRN|REMI)/")
_IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{8,30}$")


@dataclasses.dataclass
class BankLine:
    """One statement line as read from the file (amount positive; ``direction`` gives its sense)."""

    file_line: int
    account: str
    currency: str
    value_date: dt.date
    direction: str  # credit | debit | return
    amount_cents: int
    statement_ref: str | None = None
    payer_name: str | None = None
    payer_account: str | None = None
    bank_reference: str | None = None
    customer_reference: str | None = None
    type_code: str | None = None
    remittance_text: str | None = None
    returned_reference: str | None = None


@dataclasses.dataclass
class ParsedStatement:
    """A parsed file: its format and lines, in file order."""

    format: str
    lines: list[BankLine]


def _fail(name: str, line: int | None, reason: str) -> UserError:
    where = f", line {line}" if line else ""
    return UserError(f"bank statement {name}{where}: {reason}; nothing was loaded.")


def normalise_account(value: str | None, name: str, line: int) -> str | None:
    """The payer's account as stored: an IBAN in compact upper case, checked; other numbers as given.

    Parameters
    ----------
    value : str or None
    name : str
        The file's name, for the error message.
    line : int
        The file line, for the error message.

    Returns
    -------
    str or None

    Raises
    ------
    UserError
        An IBAN-shaped account whose country format or check digits are wrong.

    Example
    -------
    >>> normalise_account("de89 3704 0044 0532 0130 00", "x.sta", 3)
    'DE89370400440532013000'
    """
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    if value is None or not str(value).strip():
        return None
    compact = re.sub(r"\s+", "", str(value)).upper()
    if not _IBAN_SHAPE.match(compact):
        return str(value).strip()[:64]
    try:
        return str(IBAN(compact).compact)
    except SchwiftyException as exc:
        raise _fail(name, line, f"payer account {value!r} is not a valid IBAN ({exc})") from None


def split_text(text: str | None) -> dict[str, str]:
    """The keyed fields of a BAI2 / MT940 text (``/NAME/…/IBAN/…/REMI/…``); no keys: all ``REMI``.

    Example
    -------
    >>> split_text("/NAME/Acme Ltd/IBAN/DE89370400440532013000/REMI/INV-0001234")
    {'NAME': 'Acme Ltd', 'IBAN': 'DE89370400440532013000', 'REMI': 'INV-0001234'}
    """
    text = (text or "").strip()
    parts = _KEYS.split(text)
    if len(parts) == 1:
        return {"REMI": text} if text else {}
    out: dict[str, str] = {}
    lead = parts[0].strip()
    k = 1
    while k < len(parts):
        key = parts[k]
        if key == "REMI":
            out["REMI"] = "".join(p if j % 2 == 0 else f"/{p}/" for j, p in enumerate(parts[k + 1:])).strip()
            break
        out.setdefault(key, parts[k + 1].strip())
        k += 2
    if lead and "REMI" not in out:
        out["REMI"] = lead
    return {key: v for key, v in out.items() if v}


def _cents(amount, name: str, line: int) -> int:
    try:
        d = Decimal(str(amount).replace(",", ".")) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise _fail(name, line, f"amount {amount!r} is not a number") from None
    if not d.is_finite():
        raise _fail(name, line, f"amount {amount!r} is not a number")
    cents = d * 100
    if cents != cents.to_integral_value():
        raise _fail(name, line, f"amount {amount} has more than two decimals")
    cents = abs(int(cents))
    if cents == 0:
        raise _fail(name, line, "amount is zero")
    if cents > 10_000_000_000_00:
        raise _fail(name, line, f"amount {amount} is above 10,000,000,000.00")
    return cents


def _currency(value, name: str, line: int) -> str:
    cur = (value or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", cur):
        raise _fail(name, line, f"currency {value!r} is not a three-letter ISO 4217 code")
    return cur


def _with_text(bl: BankLine, text: str | None, name: str) -> BankLine:
    keyed = split_text(text)
    bl.payer_name = (keyed.get("NAME") or bl.payer_name or None)
    bl.payer_name = bl.payer_name[:200] if bl.payer_name else None
    bl.payer_account = normalise_account(keyed.get("IBAN") or keyed.get("ACCT") or bl.payer_account, name,
                                         bl.file_line)
    bl.customer_reference = (keyed.get("EREF") or bl.customer_reference or None)
    bl.returned_reference = keyed.get("RTRN") or bl.returned_reference
    bl.remittance_text = keyed.get("REMI") or None
    return bl


# ------------------------------------------------------------------------------------------------
# BAI2
# ------------------------------------------------------------------------------------------------
def parse_bai2(text: str, name: str = "statement") -> ParsedStatement:
    """Parse a BAI2 file with the ``bai2`` library (control totals and record counts checked).

    Parameters
    ----------
    text : str
    name : str
        The file's name, for messages.

    Returns
    -------
    ParsedStatement
        Detail records (``16``) with their ``88`` continuations; amounts in cents as BAI2 writes them.

    Raises
    ------
    UserError
        Naming the line where the file stops being BAI2 (or the trailer whose totals disagree).

    Example
    -------
    >>> parse_bai2(open("tests/fixtures/bank/statement.bai2").read()).lines[0].amount_cents  # doctest: +SKIP
    125000
    """
    from bai2.constants import TypeCodeLevel, TypeCodeTransaction
    from bai2.helpers import IteratorHelper
    from bai2.parsers import Bai2FileParser

    numbered = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not numbered:
        raise _fail(name, None, "the file is empty")
    for n, raw in numbered:
        if not re.match(r"^(01|02|03|16|49|88|98|99),", raw):
            raise _fail(name, n, f"{raw[:20]!r} does not start with a BAI2 record code (01, 02, 03, 16, 49, 88, "
                                 "98, 99)")
    consumed = {"line": numbered[0][0]}

    def lines():
        for n, raw in numbered:
            consumed["line"] = n
            yield raw

    rows_by_text: dict[tuple[str, str], list[int]] = {}
    for n, raw in numbered:
        rows_by_text.setdefault((raw[:2], raw[3:]), []).append(n)
    helper = None
    try:
        helper = IteratorHelper(lines())
        parsed = Bai2FileParser(helper).parse()
    except Exception as exc:  # the library raises ParsingException, IntegrityException, ValueError...
        where = consumed["line"]
        if helper is not None and helper.current_record is not None and helper.current_record.rows:
            code, rest = helper.current_record.rows[0]
            cands = [n for n in rows_by_text.get((code.value, rest), []) if n <= consumed["line"]]
            where = cands[-1] if cands else where
        trailer = next((code for cls, code in (("for Account", "49"), ("for Group", "98"), ("for Bai2File", "99"))
                        if cls in str(exc)), None)
        if trailer:  # a total or count that disagrees: name the trailer that states it
            where = max((n for n, raw in numbered if raw.startswith(trailer) and n <= consumed["line"]), default=where)
        raise _fail(name, where, f"not valid BAI2: {exc}") from None
    out: list[BankLine] = []
    for group in parsed.children:
        as_of = group.header.as_of_date
        for account in group.children:
            acct = (account.header.customer_account_number or "").strip()
            cur = _currency(account.header.currency or group.header.currency or "USD", name, numbered[0][0])
            for det in account.children:
                code, rest = det.rows[0]
                cands = rows_by_text.get((code.value, rest), [0])
                line = cands.pop(0) if len(cands) > 1 else cands[0]
                tc = det.type_code
                if tc.level != TypeCodeLevel.detail and tc.transaction is None:
                    raise _fail(name, line, f"type code {tc.code} is a status code, not a transaction")
                if tc.transaction == TypeCodeTransaction.credit:
                    direction = "credit"
                elif tc.code in BAI2_RETURN_CODES:
                    direction = "return"
                elif tc.transaction == TypeCodeTransaction.debit:
                    direction = "debit"
                else:
                    continue  # informational (misc) records move no money
                avail = det.availability if isinstance(det.availability, dict) else {}
                value_date = avail.get("date") or as_of
                bl = BankLine(file_line=line, account=acct, currency=cur, value_date=value_date,
                              direction=direction, amount_cents=_cents(Decimal(int(det.amount or 0)) / 100, name, line),
                              statement_ref=str(parsed.header.file_id or "") or None,
                              bank_reference=(det.bank_reference or "").strip()[:64] or None,
                              customer_reference=(det.customer_reference or "").strip()[:64] or None,
                              type_code=tc.code)
                out.append(_with_text(bl, _bai2_text(det), name))
    return ParsedStatement("bai2", out)


def _bai2_text(det) -> str | None:
    """The text field of a ``16`` record with its ``88`` continuations joined as written.

    The library joins a continuation of the text with a space, while its own writer (and banks)
    break the text anywhere, even inside a word; we join them as they are.
    """
    if len(det.rows) < 2:
        return det.text
    full = det.rows[0][1] + "".join(row[1] for row in det.rows[1:])
    avail = det.availability or {}
    funds = getattr(det.funds_type, "value", det.funds_type)
    n_avail = {"V": 2, "S": 3}.get(funds, 1 + 2 * len(avail) if funds == "D" else 0)
    parts = full.split(",", 5 + n_avail)
    return parts[-1].rstrip("/") if len(parts) == 6 + n_avail else det.text


# ------------------------------------------------------------------------------------------------
# MT940
# ------------------------------------------------------------------------------------------------
_MT_TAG = re.compile(r"^:(?P<tag>[0-9]{2}[A-Z]?|NS):", re.MULTILINE)


def parse_mt940(text: str, name: str = "statement") -> ParsedStatement:
    """Parse a SWIFT MT940 file with the ``mt-940`` library.

    Parameters
    ----------
    text : str
    name : str

    Returns
    -------
    ParsedStatement
        One line per ``:61:``; ``C`` credit, ``D`` debit, ``RC`` (reversal of a credit) or a return
        type code (``NRTI``) a return. Account from ``:25:``, statement number from ``:28C:``.

    Raises
    ------
    UserError
        Naming the line of the first tag the library cannot read.

    Example
    -------
    >>> parse_mt940(open("tests/fixtures/bank/statement.mt940").read()).lines[0].direction  # doctest: +SKIP
    'credit'
    """
    import mt940

    text = text.replace("\r\n", "\n").replace("\r", "\n")
    matches = list(_MT_TAG.finditer(text))
    newlines = [k for k, ch in enumerate(text) if ch == "\n"]
    tags = [(m.group("tag"), bisect.bisect_left(newlines, m.start()) + 1) for m in matches]
    if not any(t == "61" for t, _ in tags) and not any(t.startswith("20") for t, _ in tags):
        raise _fail(name, 1, "no MT940 tags (:20:, :25:, :61:) found")
    for t, n in tags:
        if t[:2] not in {"20", "21", "25", "28", "60", "61", "62", "64", "65", "86", "13", "34", "90", "NS"}:
            raise _fail(name, n, f"unknown MT940 tag :{t}:")
    lines_61, context, current = [], [], {}
    for k, ((t, n), m) in enumerate(zip(tags, matches)):
        if t in ("25", "28C", "20"):  # the statement a :61: belongs to (the library keeps only the last one's)
            end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
            current[t] = text[m.end():end].strip().splitlines()[0].strip() if text[m.end():end].strip() else ""
        elif t == "61":
            lines_61.append(n)
            context.append(dict(current))
    try:
        transactions = mt940.models.Transactions()
        transactions.parse(text)
    except Exception as exc:  # the library raises RuntimeError / ValueError with the tag's text
        bad = _mt940_bad_line(text, tags)
        what = repr(text.splitlines()[bad - 1][:80]) if bad else str(exc.args[0] if exc.args else exc)[:200]
        raise _fail(name, bad, f"not valid MT940: {what} cannot be read") from None
    out: list[BankLine] = []
    # the library keeps statement-level tags in each transaction's data (the latest seen)
    txs = [t for t in transactions if t.data.get("amount") is not None]
    if len(txs) != len(lines_61):
        raise _fail(name, lines_61[len(txs)] if len(txs) < len(lines_61) else None,
                    ":61: line the library could not read")
    for tx, line, ctx in zip(txs, lines_61, context):
        data = tx.data
        status = str(data.get("status") or "")
        kind = str(data.get("id") or "").strip()
        amount = data["amount"]
        cur = _currency(getattr(amount, "currency", None) or data.get("currency"), name, line)
        if status == "RC" or (status.endswith("D") and kind in MT940_RETURN_TYPES):
            direction = "return"
        elif status in ("C", "RD"):
            direction = "credit" if status == "C" else "debit"
        else:
            direction = "debit"
        acct = ctx.get("25", "")
        date = data.get("date")
        if date is None:
            raise _fail(name, line, "no value date")
        bank_ref = (data.get("bank_reference") or "").strip() or None
        cust_ref = (data.get("customer_reference") or "").strip()
        bl = BankLine(file_line=line, account=acct, currency=cur,
                      value_date=dt.date(date.year, date.month, date.day), direction=direction,
                      amount_cents=_cents(amount.amount, name, line),
                      statement_ref=(ctx.get("28C") or ctx.get("20") or None),
                      bank_reference=bank_ref[:64] if bank_ref else None,
                      customer_reference=None if cust_ref in ("", "NONREF") else cust_ref[:64],
                      type_code=kind or None)
        out.append(_with_text(bl, data.get("transaction_details"), name))
    return ParsedStatement("mt940", out)


def _mt940_bad_line(text: str, tags) -> int | None:
    """The line of the first tag the library refuses on its own (to name it in the error)."""
    import mt940

    registry = mt940.tags.TAG_BY_ID
    starts = [m for m in _MT_TAG.finditer(text)]
    for k, m in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        key = m.group("tag")
        tag = registry.get(key) or (registry.get(int(key[:2])) if key[:2].isdigit() else registry.get(key))
        if tag is None:
            continue
        try:
            if tag.parse(mt940.models.Transactions(), text[m.end():end].strip()) is None:
                return tags[k][1]
        except Exception:
            return tags[k][1]
    return None


# ------------------------------------------------------------------------------------------------
# camt.053
# ------------------------------------------------------------------------------------------------
def parse_camt053(data: bytes, name: str = "statement") -> ParsedStatement:
    """Parse an ISO 20022 camt.053 (Bank-to-Customer Statement) with ``pycamt``.

    Parameters
    ----------
    data : bytes
    name : str

    Returns
    -------
    ParsedStatement
        One line per ``TxDtls`` (an entry without details is one line). ``CRDT`` credit; ``DBIT`` a
        debit, or a return when it reverses a credit (``RvslInd`` true, or a return sub-family such
        as ``RRTN``). Payer from ``Dbtr/Nm`` and ``DbtrAcct/Id/IBAN``, bank reference from
        ``AcctSvcrRef``, end-to-end id, remittance from every ``Ustrd`` (or ``Strd/CdtrRefInf/Ref``).

    Raises
    ------
    UserError
        Not XML (the line the XML parser stopped at), not camt.053, or an entry without amount,
        currency, sign or date (its line).

    Example
    -------
    >>> parse_camt053(open("tests/fixtures/bank/statement.camt053.xml", "rb").read()).format  # doctest: +SKIP
    'camt053'
    """
    from lxml import etree
    from pycamt.parser import Camt053Parser

    try:
        parser = Camt053Parser(data)
    except etree.XMLSyntaxError as exc:
        raise _fail(name, exc.lineno, f"not well-formed XML ({exc.msg})") from None
    root = parser.tree
    if "camt.053" not in (root.tag or "") and "camt.052" not in (root.tag or ""):
        raise _fail(name, root.sourceline, f"the document is not ISO 20022 camt.053 (root {root.tag!r})")
    ns = root.nsmap.get(None)
    q = (lambda t: f"{{{ns}}}{t}") if ns else (lambda t: t)
    try:
        rows = parser.get_transactions()
    except Exception as exc:
        raise _fail(name, None, f"not valid camt.053: {exc}") from None
    entry_lines = []
    for stmt in root.iter(q("Stmt"), q("Rpt")):
        acct_el = stmt.find(f"{q('Acct')}/{q('Id')}")
        acct = "".join(acct_el.itertext()).strip() if acct_el is not None else ""
        stmt_id = stmt.findtext(q("Id"))
        ccy = stmt.find(f"{q('Acct')}/{q('Ccy')}")
        for entry in stmt.iter(q("Ntry")):
            n_tx = len(list(entry.iter(q("TxDtls"))))
            subfam = entry.findtext(f"{q('BkTxCd')}/{q('Domn')}/{q('Fmly')}/{q('SubFmlyCd')}")
            for _ in range(max(1, n_tx)):
                entry_lines.append((entry.sourceline, acct, stmt_id, ccy.text if ccy is not None else None, subfam))
    if len(entry_lines) != len(rows):
        raise _fail(name, None, f"read {len(rows)} transactions but the file has {len(entry_lines)}")
    out: list[BankLine] = []
    for row, (line, acct, stmt_id, acct_ccy, subfam) in zip(rows, entry_lines):
        sign = (row.get("CreditDebitIndicator") or "").upper()
        if sign not in ("CRDT", "DBIT"):
            raise _fail(name, line, f"credit/debit indicator {sign or 'missing'!r} is not CRDT or DBIT")
        reversal = str(row.get("ReversalIndicator") or "").lower() == "true"
        if sign == "CRDT":
            direction = "debit" if reversal else "credit"  # a reversed debit gives money back: not a receipt
        else:
            direction = "return" if (reversal or subfam in CAMT_RETURN_SUBFAMILIES) else "debit"
        if row.get("Amount") is None:
            raise _fail(name, line, "entry has no amount")
        raw_date = row.get("ValueDate") or row.get("BookingDate")
        try:
            value_date = dt.date.fromisoformat(str(raw_date)[:10])
        except (TypeError, ValueError):
            raise _fail(name, line, f"value date {raw_date!r} is not a date (YYYY-MM-DD)") from None
        remit = row.get("RemittanceInformationFull") or row.get("RemittanceInformation")
        if row.get("AdditionalRemittanceInformation"):
            remit = " ".join(p for p in (remit, row["AdditionalRemittanceInformation"]) if p)
        if direction == "credit":
            payer, payer_acct = row.get("DebtorName"), row.get("DebtorIBAN")
        else:
            payer, payer_acct = row.get("CreditorName") or row.get("DebtorName"), \
                row.get("CreditorIBAN") or row.get("DebtorIBAN")
        e2e = row.get("EndToEndId")
        ref = row.get("TransactionID")
        bl = BankLine(file_line=line, account=row.get("AccountIBAN") or acct, currency=_currency(
                          row.get("Currency") or acct_ccy, name, line),
                      value_date=value_date, direction=direction, amount_cents=_cents(row["Amount"], name, line),
                      statement_ref=(stmt_id or None), payer_name=(payer or "").strip()[:200] or None,
                      payer_account=normalise_account(payer_acct, name, line),
                      bank_reference=ref.strip()[:64] if ref else None,
                      customer_reference=None if not e2e or e2e == "NOTPROVIDED" else e2e.strip()[:64],
                      type_code=subfam, remittance_text=(remit or "").strip() or None)
        if direction != "credit":
            keyed = split_text(bl.remittance_text or row.get("AdditionalEntryInformation"))
            bl.returned_reference = keyed.get("RTRN")
            bl.remittance_text = keyed.get("REMI") or None
        out.append(bl)
    return ParsedStatement("camt053", out)


# ------------------------------------------------------------------------------------------------
def detect_format(data: bytes) -> str:
    """Which statement format ``data`` is: ``camt053`` (XML), ``bai2`` (starts ``01,``) or ``mt940``.

    Example
    -------
    >>> detect_format(b"01,BANK,ACME,261031,0800,1,,,2/")
    'bai2'
    """
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "camt053"
    if head.startswith(b"01,"):
        return "bai2"
    if re.search(rb"(^|\n):(20|25|60F|61):", head) or head.startswith(b"{1:"):
        return "mt940"
    raise UserError("the file is not a bank statement this product reads: BAI2 starts with '01,', MT940 "
                    "has tags such as ':20:' and ':61:', camt.053 is XML")


def parse(data: bytes, fmt: str | None = None, name: str = "statement") -> ParsedStatement:
    """Parse a statement file of any supported format (detected when ``fmt`` is None).

    Parameters
    ----------
    data : bytes
    fmt : {"bai2", "mt940", "camt053"}, optional
    name : str
        File name for messages.

    Returns
    -------
    ParsedStatement

    Example
    -------
    >>> parse(open("tests/fixtures/bank/statement.bai2", "rb").read()).format  # doctest: +SKIP
    'bai2'
    """
    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise UserError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "camt053":
        return parse_camt053(data, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise _fail(name, text[: text.index("\x00")].count("\n") + 1, "NUL character in the file")
    return parse_bai2(text, name) if fmt == "bai2" else parse_mt940(text, name)


__all__ = ["FORMATS", "BankLine", "ParsedStatement", "parse", "parse_bai2", "parse_mt940", "parse_camt053",
           "detect_format", "normalise_account", "split_text"]
