"""Generic ledger/aging export (CSV or Excel) described by a column-mapping file (YAML or TOML).

A mapping says which source column feeds each ledger field and how to read the values, so an SAP
FBL5N or Oracle Receivables aging export loads without code. Examples:
``analytics/loaders/mappings/sap_fbl5n.yaml`` and ``oracle_ar_aging.toml``.

Mapping keys
------------
``columns`` (required) : field -> source column header. Fields:

* required: ``customer_id``, ``invoice_id`` (document number), ``invoice_date`` (document date), ``amount``
* due date: ``due_date``, or ``terms_days`` (a column of days), or the top-level ``default_terms_days``
  (a blank due date falls back to the terms; credit memos without one are due on their date)
* optional: ``customer_name``, ``doc_type``, ``currency``, ``clearing_date``, ``clearing_doc``,
  ``business_unit``, ``region``, ``country``, ``reference``

``doc_types`` : source value -> ``invoice`` | ``credit_memo`` | ``debit_memo`` | ``skip`` (rows of a
``skip`` type, e.g. payments in an FBL5N line-item list, are ignored). Matching ignores case and
surrounding spaces. A value not in the map is a row error. Without a ``doc_type`` column every row is
an invoice, or a credit memo when its amount is negative.

``sign`` : ``signed`` (default; amounts carry their sign, credit memos negative; trailing minus
``1.234,50-`` and parentheses accepted) or ``doc_type`` (amounts are positive and the document type
decides; a credit memo's amount is negated).

``date_format`` : a ``strptime`` format or a list tried in order (default ``%Y-%m-%d``). Excel date
cells are taken as they are.

``decimal`` (default ``.``), ``thousands`` (default ``,``; ``""`` for none), ``delimiter`` (CSV,
default ``,``), ``encoding`` (CSV, default auto: BOM / UTF-8 / Windows-1252 / Latin-1), ``header_row``
(1-based, default 1), ``sheet`` (Excel: name or 0-based index, default the first),
``default_currency`` (when no currency column), ``default_terms_days``, ``receipt_method``
(method of the receipts created for cleared items, default ``other``), ``name``, ``description``.

Cleared items (a ``clearing_date``) are settled by a receipt dated on the clearing date. Items that
share a ``clearing_doc`` are settled together: credit memos in the group are applied to its invoices
first, and one receipt with the clearing document's number pays the rest. Without ``clearing_doc``
each cleared item gets its own receipt ``PAY-<document number>``.

Amounts: map ``amount`` to the original document amount together with ``clearing_date``; for an
open-items-only aging report without clearing data, map it to the remaining (open) amount.

Errors: an unknown key or field, a required field left unmapped, or a mapped column missing from
the file are clear :class:`UserError` messages before any row is read.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from analytics.errors import UserError
from analytics.loaders._core import Staged, blank_row
from analytics.loaders._parse import MAX_TERMS_DAYS, Checker, is_blank, normalise_id, parse_amount, parse_date, text
from analytics.loaders._source import RawTable

REQUIRED_FIELDS = ("customer_id", "invoice_id", "invoice_date", "amount")
OPTIONAL_FIELDS = ("customer_name", "doc_type", "due_date", "terms_days", "currency", "clearing_date",
                   "clearing_doc", "business_unit", "region", "country", "reference")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
DOC_KINDS = ("invoice", "credit_memo", "debit_memo", "skip")
_KEYS = {"name", "description", "format", "columns", "doc_types", "sign", "date_format", "decimal", "thousands",
         "delimiter", "encoding", "header_row", "sheet", "default_currency", "default_terms_days",
         "receipt_method"}
# canonical field of the core <- mapping field (for naming columns in row errors)
_CANONICAL = {"amount": "amount_cents", "clearing_date": "clear_date", "terms_days": "payment_terms_days"}


@dataclasses.dataclass
class Mapping:
    """A parsed, checked column mapping (see the module docstring for the keys)."""

    columns: dict[str, str]
    doc_types: dict[str, str] = dataclasses.field(default_factory=dict)
    sign: str = "signed"
    date_format: tuple[str, ...] = ("%Y-%m-%d",)
    decimal: str = "."
    thousands: str | None = ","
    delimiter: str = ","
    encoding: str | None = None
    header_row: int = 1
    sheet: str | int | None = None
    default_currency: str | None = None
    default_terms_days: int | None = None
    receipt_method: str = "other"
    name: str | None = None

    def check_columns(self, raw: RawTable) -> None:
        """Every mapped column must exist in the file."""
        missing = [(f, c) for f, c in self.columns.items() if c not in raw.columns]
        if missing:
            named = "; ".join(f"column {c!r} for field {f!r}" for f, c in missing)
            raise UserError(f"{raw.file_name or 'input'}: the mapping names {named}, but the file has no such "
                            f"column. The file's columns are: {', '.join(map(repr, raw.columns))}")
        raw.refuse_duplicates(self.columns.values())


MAX_MAPPING_BYTES = 256 * 1024  # a mapping is a few dozen lines; anything near this is not a mapping


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a mapping never needs them, and nested aliases ("billion laughs")
    make a few hundred bytes expand to gigabytes when the values are turned into text."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a mapping file")
        return super().compose_node(parent, index)


def _yaml(text: str):
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def _check_mapping_size(size: int, name: str) -> None:
    if size > MAX_MAPPING_BYTES:
        raise UserError(f"mapping {name} is {size:,} bytes; a mapping file is at most {MAX_MAPPING_BYTES:,}")


def _read_mapping_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"mapping file not found: {path}")
    _check_mapping_size(path.stat().st_size, path.name)
    data = path.read_bytes()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(data.decode("utf-8-sig"))
        return _yaml(data.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"mapping file {path.name} is not valid {'TOML' if suffix == '.toml' else 'YAML'}: "
                        f"{exc}") from None


def _read_mapping_text(data: str) -> dict:
    _check_mapping_size(len(data), "text")
    try:
        return tomllib.loads(data)
    except tomllib.TOMLDecodeError:
        pass
    try:
        return _yaml(data)
    except yaml.YAMLError as exc:
        raise UserError(f"mapping is neither valid TOML nor valid YAML: {exc}") from None


def load_mapping(mapping: Any) -> Mapping:
    """Parse and check a mapping.

    Parameters
    ----------
    mapping : Mapping, dict, path (``.yaml``/``.yml``/``.toml``), bytes or file-like (uploaded file)

    Returns
    -------
    Mapping

    Raises
    ------
    UserError
        Unknown keys or fields, required field unmapped, bad values.

    Example
    -------
    >>> m = load_mapping({"columns": {"customer_id": "Cust", "invoice_id": "Doc", "invoice_date": "Date",
    ...                               "amount": "Amt"}, "default_terms_days": 30, "default_currency": "EUR"})
    >>> m.columns["amount"]
    'Amt'
    """
    if isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, (str, os.PathLike)):
        spec = _read_mapping_file(Path(mapping))
    elif isinstance(mapping, (bytes, bytearray)):
        _check_mapping_size(len(mapping), "text")
        spec = _read_mapping_text(_decode_mapping(bytes(mapping)))
    elif hasattr(mapping, "read"):
        data = mapping.read(MAX_MAPPING_BYTES + 1)
        _check_mapping_size(len(data), getattr(mapping, "name", "file"))
        spec = _read_mapping_text(_decode_mapping(data) if isinstance(data, bytes) else data)
    elif isinstance(mapping, dict):
        spec = mapping
    else:
        raise UserError(f"cannot read a mapping from {type(mapping).__name__}")
    if not isinstance(spec, dict):
        raise UserError("a mapping must be a table of keys (columns, date_format, ...)")
    unknown = set(spec) - _KEYS
    if unknown:
        raise UserError(f"unknown mapping key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise UserError("the mapping has no 'columns' table (field: source column header)")
    bad_fields = set(columns) - set(FIELDS)
    if bad_fields:
        raise UserError(f"unknown field(s) {sorted(bad_fields)} in the mapping's columns; fields are: "
                        f"{', '.join(FIELDS)}")
    columns = {f: str(c).strip() for f, c in columns.items() if c not in (None, "")}
    unmapped = [f for f in REQUIRED_FIELDS if f not in columns]
    if unmapped:
        raise UserError(f"the mapping leaves required field(s) {unmapped} unmapped: name the source column "
                        "for each under 'columns'")
    if "due_date" not in columns and "terms_days" not in columns and spec.get("default_terms_days") is None:
        raise UserError("the mapping gives no due date: map 'due_date' or 'terms_days', or set "
                        "'default_terms_days'")
    if "currency" not in columns and not spec.get("default_currency"):
        raise UserError("the mapping gives no currency: map 'currency' or set 'default_currency'")
    doc_types = {str(k).strip().upper(): str(v).strip().lower() for k, v in (spec.get("doc_types") or {}).items()}
    wrong = {k: v for k, v in doc_types.items() if v not in DOC_KINDS}
    if wrong:
        raise UserError(f"doc_types values must be one of {DOC_KINDS}: got {wrong}")
    if "doc_type" in columns and not doc_types:
        raise UserError("'doc_type' is mapped but 'doc_types' (source value -> invoice/credit_memo/debit_memo/skip) "
                        "is missing")
    sign = str(spec.get("sign", "signed")).strip().lower()
    if sign not in ("signed", "doc_type"):
        raise UserError(f"sign must be 'signed' or 'doc_type', not {sign!r}")
    if sign == "doc_type" and "doc_type" not in columns:
        raise UserError("sign: doc_type needs a 'doc_type' column in the mapping")
    fmt = spec.get("date_format", "%Y-%m-%d")
    formats = tuple([fmt] if isinstance(fmt, str) else fmt)
    for f in formats:
        try:
            dt.date(2024, 1, 31).strftime(f)
        except (ValueError, TypeError):
            raise UserError(f"bad date_format {f!r}") from None
    decimal = str(spec.get("decimal", "."))
    thousands = spec.get("thousands", ",")
    thousands = str(thousands) if thousands not in (None, "") else None
    if decimal == thousands:
        raise UserError("decimal and thousands separators must differ")
    header_row = spec.get("header_row", 1)
    if not isinstance(header_row, int) or header_row < 1:
        raise UserError("header_row must be a whole number >= 1")
    method = str(spec.get("receipt_method", "other"))
    from analytics.schema import RECEIPT_METHODS

    if method not in RECEIPT_METHODS:
        raise UserError(f"receipt_method must be one of {RECEIPT_METHODS}")
    terms = spec.get("default_terms_days")
    if terms is not None and (not isinstance(terms, int) or terms < 0):
        raise UserError("default_terms_days must be a whole number >= 0")
    currency = spec.get("default_currency")
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", str(currency)):
        raise UserError("default_currency must be a 3-letter code such as EUR")
    return Mapping(columns=columns, doc_types=doc_types, sign=sign, date_format=formats, decimal=decimal,
                   thousands=thousands, delimiter=str(spec.get("delimiter", ",")).replace("\\t", "\t"),
                   encoding=spec.get("encoding"), header_row=header_row, sheet=spec.get("sheet"),
                   default_currency=currency, default_terms_days=terms, receipt_method=method,
                   name=spec.get("name"))


def _decode_mapping(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"the mapping is not UTF-8 text (byte {exc.start})") from None


def _currency(value) -> str:
    s = text(value).upper()
    if not re.fullmatch(r"[A-Z]{3}", s):
        raise ValueError("not a 3-letter currency code")
    return s


def _days(value) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (float(value).is_integer() and value >= 0):
            raise ValueError("payment terms must be a whole number of days >= 0")
        days = int(value)
    else:
        m = re.search(r"\d+", str(value))
        if not m:
            raise ValueError("no number of days in the payment terms")
        days = int(m.group(0))
    if days > MAX_TERMS_DAYS:
        raise ValueError(f"payment terms longer than {MAX_TERMS_DAYS} days")
    return days


def stage(raw: RawTable, m: Mapping, fmt: str = "csv") -> Staged:
    """Canonical rows from a generic export using mapping ``m``."""
    m.check_columns(raw)
    c = m.columns.get
    ck = Checker()
    ck.errors.extend(raw.errors)
    rows = []
    ignored = 0
    for n, rec in raw.records():
        r = blank_row(n)
        kind = None
        if c("doc_type"):
            value = ck.text(n, rec, c("doc_type"), required=True, what="document type")
            if value is not None:
                kind = m.doc_types.get(value.upper())
                if kind is None:
                    ck.error(n, c("doc_type"), value, f"unknown document type (the mapping knows "
                                                      f"{', '.join(sorted(m.doc_types))})")
                elif kind == "skip":
                    ignored += 1
                    continue
        r["customer_id"] = ck.ident(n, rec, c("customer_id"), required=True, what="customer id")
        r["customer_name"] = ck.text(n, rec, c("customer_name"))
        r["business_unit"] = ck.text(n, rec, c("business_unit"))
        r["region"] = ck.text(n, rec, c("region"))
        r["country"] = ck.text(n, rec, c("country"))
        r["invoice_id"] = ck.ident(n, rec, c("invoice_id"), required=True, what="document number")
        r["reference"] = ck.text(n, rec, c("reference"))
        r["invoice_date"] = ck.date(n, rec, c("invoice_date"), m.date_format, required=True, what="document date")
        r["currency"] = (ck.parse(n, rec, c("currency"), _currency, required=True, what="currency")
                         if c("currency") else m.default_currency)
        amount = ck.amount(n, rec, c("amount"), decimal=m.decimal, thousands=m.thousands, currency=r["currency"])
        if amount is not None:
            if m.sign == "doc_type" and kind is not None:
                if amount < 0:
                    ck.error(n, c("amount"), rec.get(c("amount")),
                             "negative amount, but this mapping expects positive amounts (sign: doc_type)")
                elif kind == "credit_memo":
                    amount = -amount
            if kind is None and not c("doc_type"):
                kind = "credit_memo" if amount < 0 else "invoice"
        r["amount_cents"], r["doc_type"] = amount, kind
        terms = ck.parse(n, rec, c("terms_days"), _days) if c("terms_days") else None
        due = ck.date(n, rec, c("due_date"), m.date_format) if c("due_date") else None
        if due is None and not (c("due_date") and not is_blank(rec.get(c("due_date")))):  # blank, not bad
            days = terms if terms is not None else m.default_terms_days
            if r["invoice_date"] is not None:
                if kind == "credit_memo":
                    due = r["invoice_date"]
                elif days is not None:
                    due = r["invoice_date"] + dt.timedelta(days=days)
                elif c("due_date"):
                    ck.error(n, c("due_date"), "", "missing due date (and no terms to compute it)")
        r["due_date"] = due
        if terms is None and kind != "credit_memo" and due is not None and r["invoice_date"] is not None \
                and due >= r["invoice_date"]:
            terms = (due - r["invoice_date"]).days
        r["payment_terms_days"] = terms if terms is not None else m.default_terms_days
        clear = ck.date(n, rec, c("clearing_date"), m.date_format) if c("clearing_date") else None
        clearing_doc = ck.ident(n, rec, c("clearing_doc")) if c("clearing_doc") else None
        if clearing_doc is not None and clear is None and is_blank(rec.get(c("clearing_date"))):
            ck.error(n, c("clearing_date") or c("clearing_doc"), "", f"cleared by {clearing_doc} but no clearing date")
        if clear is not None and r["invoice_id"]:
            r["clear_date"] = clear
            r["receipt_id"] = clearing_doc or f"PAY-{r['invoice_id']}"
            r["receipt_method"] = m.receipt_method
        rows.append(r)
    columns = {_CANONICAL.get(f, f): col for f, col in m.columns.items()}
    return Staged(fmt, rows, ck.errors, columns, raw.file_name, raw.sha256, ignored=ignored)
