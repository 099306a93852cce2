"""HighRadius payment-date-prediction export (19 columns, one row per invoice).

Columns (exactly): business_code, cust_number, name_customer, clear_date, buisness_year, doc_id,
posting_date, document_create_date, document_create_date.1, due_in_date, invoice_currency,
document type, posting_id, area_business, total_open_amount, baseline_create_date,
cust_payment_terms, invoice_id, isOpen.

Quirks handled:

* Dates come as ``YYYY-MM-DD 00:00:00``, ``YYYY-MM-DD``, integer ``YYYYMMDD`` or float ``YYYYMMDD.0``
  (often several encodings in one file); all are accepted in every date column.
* Ids written as floats (``1930438491.0``) lose the ``.0``.
* Customer numbers appear with and without leading zeros (``0200769623`` and ``200769623``): all-digit
  numbers are stored without leading zeros so both are one customer. Non-numeric numbers
  (``CCU013``) are kept as they are.
* Open items (``isOpen`` = 1) have an empty ``clear_date``; a cleared item (``isOpen`` = 0) must have one.

Mapping:

* customers: id = normalised cust_number, name = the most frequent name_customer of that number
  (names vary slightly between rows), business_unit = business_code (most frequent), currency = most
  frequent invoice_currency, payment terms: see below.
* invoices: id = doc_id, doc_type ``invoice`` (document type RV and X2 both are customer invoices;
  any other value is a row error), invoice_date = baseline_create_date (the date terms run from;
  document_create_date.1, then posting_date, when it is empty), due_date = due_in_date,
  amount = total_open_amount (must be > 0), currency = invoice_currency, reference = invoice_id.
* cleared items: one receipt ``PAY-<doc_id>`` dated clear_date for the full amount (method ``other``:
  the export does not say how the customer paid), applied to the invoice on clear_date.

Payment terms rule: a ``cust_payment_terms`` code that ends in two or three digits gives that many
days (``NA32`` -> 32, ``CA10`` -> 10, ``NET60`` -> 60). Other codes (``NAH4``, ``NAA8``: the last
character is a variant letter/digit, not a day count) take the observed ``due_in_date −
baseline_create_date`` of the row. A customer's terms are the most frequent value over its rows.
"""
from __future__ import annotations

import re

from analytics.loaders._core import Staged, blank_row
from analytics.loaders._parse import Checker, normalise_id, parse_amount, parse_mixed_date, strip_zeros, text
from analytics.loaders._source import RawTable

COLUMNS = ("business_code", "cust_number", "name_customer", "clear_date", "buisness_year", "doc_id",
           "posting_date", "document_create_date", "document_create_date.1", "due_in_date", "invoice_currency",
           "document type", "posting_id", "area_business", "total_open_amount", "baseline_create_date",
           "cust_payment_terms", "invoice_id", "isOpen")
DOC_TYPES = {"RV": "invoice", "X2": "invoice"}
_TERMS = re.compile(r"^[A-Z]*?(\d{2,3})$")
FIELD_COLUMNS = {
    "customer_id": "cust_number", "customer_name": "name_customer", "business_unit": "business_code",
    "invoice_id": "doc_id", "doc_type": "document type", "invoice_date": "baseline_create_date",
    "due_date": "due_in_date", "amount_cents": "total_open_amount", "currency": "invoice_currency",
    "clear_date": "clear_date", "payment_terms_days": "cust_payment_terms", "reference": "invoice_id",
}


def terms_days(code: str | None) -> int | None:
    """Days of a payment-terms code when the code states them (``NA32`` -> 32), else None.

    Example
    -------
    >>> terms_days("NA32"), terms_days("NAH4")
    (32, None)
    """
    if not code:
        return None
    m = _TERMS.match(code.strip().upper())
    return int(m.group(1)) if m else None


def _customer_id(value) -> str:
    s = normalise_id(value)
    if s is None:
        raise ValueError("missing customer number")
    return strip_zeros(s)


def _is_open(value) -> bool:
    s = text(value)
    if s in ("0", "0.0", "False", "false"):
        return False
    if s in ("1", "1.0", "True", "true"):
        return True
    raise ValueError("isOpen must be 0 or 1")


def _currency(value) -> str:
    s = text(value).upper()
    if not re.fullmatch(r"[A-Z]{3}", s):
        raise ValueError("not a 3-letter currency code")
    return s


def stage(raw: RawTable) -> Staged:
    """Canonical rows from a HighRadius export (see the module docstring for the mapping)."""
    raw.require_columns(COLUMNS, "a HighRadius export")
    ck = Checker()
    ck.errors.extend(raw.errors)
    rows = []
    for n, rec in raw.records():
        r = blank_row(n)
        start = len(ck.errors)
        r["customer_id"] = ck.parse(n, rec, "cust_number", _customer_id, required=True, what="customer number")
        r["customer_name"] = ck.text(n, rec, "name_customer")
        r["business_unit"] = ck.text(n, rec, "business_code")
        r["invoice_id"] = ck.ident(n, rec, "doc_id", required=True, what="document id")
        r["reference"] = ck.ident(n, rec, "invoice_id")
        kind = ck.text(n, rec, "document type", required=True, what="document type")
        if kind is not None:
            r["doc_type"] = DOC_TYPES.get(kind.upper())
            if r["doc_type"] is None:
                ck.error(n, "document type", kind, f"unknown document type (expected one of {sorted(DOC_TYPES)})")
        posting = ck.parse(n, rec, "posting_date", parse_mixed_date)
        created = ck.parse(n, rec, "document_create_date.1", parse_mixed_date)
        ck.parse(n, rec, "document_create_date", parse_mixed_date)
        baseline = ck.parse(n, rec, "baseline_create_date", parse_mixed_date)
        r["invoice_date"] = baseline or created or posting
        if r["invoice_date"] is None and not any(
                e.column in ("baseline_create_date", "document_create_date.1", "posting_date")
                for e in ck.errors[start:]):
            ck.error(n, "baseline_create_date", "", "missing date (baseline_create_date, document_create_date.1 "
                                                    "and posting_date are all empty)")
        r["due_date"] = ck.parse(n, rec, "due_in_date", parse_mixed_date, required=True, what="due date")
        r["currency"] = ck.parse(n, rec, "invoice_currency", _currency, required=True, what="currency")
        r["amount_cents"] = ck.parse(n, rec, "total_open_amount",
                                     lambda v: parse_amount(v, ".", None, r["currency"]), required=True, what="amount")
        code = ck.text(n, rec, "cust_payment_terms")
        days = terms_days(code)
        if days is None and r["invoice_date"] and r["due_date"] and r["due_date"] >= r["invoice_date"]:
            days = (r["due_date"] - r["invoice_date"]).days
        r["payment_terms_days"] = days
        is_open = ck.parse(n, rec, "isOpen", _is_open, required=True, what="isOpen flag")
        clear = ck.parse(n, rec, "clear_date", parse_mixed_date)
        if is_open is True and clear is not None:
            ck.error(n, "clear_date", rec.get("clear_date"), "an open item (isOpen=1) must have an empty clear_date")
        elif is_open is False and clear is None and not any(e.column == "clear_date"
                                                            for e in ck.errors[start:]):
            ck.error(n, "clear_date", "", "a cleared item (isOpen=0) needs a clear_date")
        if clear is not None and r["invoice_id"]:
            r["clear_date"] = clear
            r["receipt_id"] = f"PAY-{r['invoice_id']}"
            r["receipt_method"] = "other"
            r["remittance_ref"] = r["reference"] or r["invoice_id"]
        rows.append(r)
    return Staged("highradius", rows, ck.errors, dict(FIELD_COLUMNS), raw.file_name, raw.sha256)
