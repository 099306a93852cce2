"""Format-independent half of every loader: canonical rows, validation, idempotent all-or-nothing write.

A format module (``ibm``, ``highradius``, ``generic``) turns a file into a :class:`Staged` object: one
*canonical row* per source row (the keys of :data:`FIELDS`) and the :class:`RowError` list of cells
it could not parse. From there everything is shared:

1. :func:`validate` adds the cross-field rules (due before document date, amount sign against the
   document type, duplicate document id inside the file, cleared credit memos without an invoice).
2. :func:`write` checks the rows against the database (an existing document with the same id and
   the same content is a duplicate and skipped; with different content it is a row error
   "conflicts with existing ..."), then either refuses the file (any error, default) or drops the
   bad rows (``skip_invalid``), and writes the rest in ONE transaction with ``db.bulk_insert``,
   recording an ``import_batches`` row (with the file's SHA-256) and bumping the ledger version.
   When there is nothing new, nothing at all is written (no batch, no version bump).

Rows are validated in plain Python rather than pydantic: the rules are few, most are cross-row
(duplicates, clearing groups, database conflicts) where a per-row model does not help, and a direct
loop reports each problem against the *source* column name and spreadsheet row number the user sees.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

import pandas as pd
import sqlalchemy as sa

from analytics import db, schema
from analytics.errors import RowError, UserError, ValidationFailed

# Canonical row: everything one source row can say about the ledger.
FIELDS = (
    "row",
    # customer
    "customer_id", "customer_name", "country", "region", "business_unit", "customer_currency",
    "payment_terms_days", "paperless", "paperless_since",
    # document
    "invoice_id", "doc_type", "invoice_date", "due_date", "amount_cents", "currency", "reference",
    # settlement: rows sharing a receipt_id are cleared together by one receipt
    "clear_date", "receipt_id", "receipt_method", "remittance_ref",
    # dispute
    "dispute_opened", "dispute_resolved", "dispute_outcome", "dispute_reason",
)
CUSTOMER_ATTRS = ("customer_name", "country", "region", "business_unit", "customer_currency",
                  "payment_terms_days", "paperless", "paperless_since")
TABLES = ("customers", "invoices", "receipts", "applications", "disputes")
_CHUNK = 500


def blank_row(row: int) -> dict[str, Any]:
    rec = dict.fromkeys(FIELDS)
    rec["row"] = row
    return rec


@dataclasses.dataclass
class Staged:
    """A parsed file: canonical rows, parse errors, and which source column feeds each field."""

    fmt: str
    rows: list[dict[str, Any]]
    errors: list[RowError]
    columns: dict[str, str]
    file_name: str | None
    sha256: str
    ignored: int = 0  # rows left out on purpose (a doc type mapped to ``skip``)
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. "read as Windows-1252, check lines ..."

    def col(self, field: str) -> str:
        return self.columns.get(field, field)

    def frame(self) -> pd.DataFrame:
        """The canonical rows as a DataFrame (columns :data:`FIELDS`; integer columns nullable Int64)."""
        frame = pd.DataFrame(self.rows, columns=list(FIELDS))
        for col in ("row", "amount_cents", "payment_terms_days"):
            frame[col] = frame[col].astype("Int64")
        return frame


@dataclasses.dataclass
class LoadReport:
    """What a load did.

    Attributes
    ----------
    fmt, file_name, sha256 : the input.
    rows_read : int
        Data rows in the file (blank lines not counted).
    inserted : dict
        Rows inserted per table (customers, invoices, receipts, applications, disputes).
    duplicates : dict
        Rows per table already present with identical content, skipped.
    rows_duplicate : int
        File rows whose document was already in the ledger, identical (skipped).
    rows_invalid : int
        File rows refused (``skip_invalid=True``): listed in ``errors``.
    rows_ignored : int
        File rows left out on purpose (document types the mapping marks ``skip``).
    errors : list of RowError
    notes : list of str
        Things to check that are not errors (a file read as Windows-1252: which lines to look at).
    batch_id : int or None
        ``import_batches.id`` of this load; None when nothing was new.
    already_loaded : bool
        A batch with the same file SHA-256 was loaded before.
    ledger_version : int
        Ledger version after the load.
    """

    fmt: str
    file_name: str | None
    sha256: str
    rows_read: int = 0
    inserted: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    duplicates: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    rows_duplicate: int = 0
    rows_invalid: int = 0
    rows_ignored: int = 0
    errors: list[RowError] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    batch_id: int | None = None
    already_loaded: bool = False
    ledger_version: int = 0

    @property
    def rows_inserted(self) -> int:
        return self.rows_read - self.rows_duplicate - self.rows_invalid - self.rows_ignored

    def errors_frame(self) -> pd.DataFrame:
        """The row errors as a DataFrame[row, column, value, reason] (for a CSV download)."""
        return errors_frame(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (errors included)."""
        return {
            "format": self.fmt, "file_name": self.file_name, "sha256": self.sha256,
            "rows_read": self.rows_read, "rows_inserted": self.rows_inserted,
            "rows_duplicate": self.rows_duplicate, "rows_invalid": self.rows_invalid,
            "rows_ignored": self.rows_ignored,
            "inserted": dict(self.inserted), "duplicates": dict(self.duplicates),
            "batch_id": self.batch_id, "already_loaded": self.already_loaded,
            "ledger_version": self.ledger_version,
            "errors": [dataclasses.asdict(e) for e in self.errors],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """A few human-readable lines."""
        ins = ", ".join(f"{n} {t}" for t, n in self.inserted.items())
        lines = [f"{self.file_name or 'input'} ({self.fmt}): {self.rows_read} rows read; inserted {ins}."]
        lines += [f"Note: {n}" for n in self.notes]
        if self.rows_duplicate:
            lines.append(f"{self.rows_duplicate} rows already in the ledger (identical), skipped.")
        if self.rows_ignored:
            lines.append(f"{self.rows_ignored} rows ignored (document types the mapping skips).")
        if self.rows_invalid:
            lines.append(f"{self.rows_invalid} invalid rows skipped:")
            lines += [f"  {e}" for e in self.errors[:20]]
            if len(self.errors) > 20:
                lines.append(f"  ... and {len(self.errors) - 20} more")
        if not any(self.inserted.values()):
            lines.append("Nothing new: the ledger is unchanged" + (" (file loaded before)." if self.already_loaded
                                                                    else "."))
        else:
            lines.append(f"Import batch {self.batch_id}; ledger version {self.ledger_version}.")
        return "\n".join(lines)


def errors_frame(errors: Iterable[RowError]) -> pd.DataFrame:
    """DataFrame[row, column, value, reason] of row errors, sorted by row."""
    frame = pd.DataFrame([dataclasses.asdict(e) for e in errors], columns=["row", "column", "value", "reason"])
    frame["row"] = frame["row"].astype("int64")
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def cents_to_str(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------
def validate(st: Staged) -> list[RowError]:
    """Cross-field and cross-row rules; returns new errors (also appended to ``st.errors``)."""
    errors: list[RowError] = []
    first_seen: dict[str, int] = {}
    for r in st.rows:
        n = r["row"]
        inv, due, amt, kind = r["invoice_date"], r["due_date"], r["amount_cents"], r["doc_type"]
        if inv is not None and due is not None and due < inv:
            errors.append(RowError(n, st.col("due_date"), str(due),
                                   f"due date is before the document date {inv.isoformat()}"))
        if amt is not None and kind is not None:
            if kind == "credit_memo" and amt >= 0:
                errors.append(RowError(n, st.col("amount_cents"), cents_to_str(amt),
                                       "a credit memo must have a negative amount" if amt else "amount is zero"))
            elif kind != "credit_memo" and amt <= 0:
                errors.append(RowError(n, st.col("amount_cents"), cents_to_str(amt),
                                       f"amount must be greater than 0 for {_article(kind)}"
                                       if amt else "amount is zero"))
        if r["clear_date"] is not None and inv is not None and r["clear_date"] < inv:
            # A receipt dated before the document it pays would sit in no balance at dates in between (the
            # application reduces an invoice that does not exist yet), so the row is refused.
            errors.append(RowError(n, st.col("clear_date"), str(r["clear_date"]),
                                   f"cleared (paid) before the document date {inv.isoformat()}"))
        if r["dispute_opened"] is not None and r["dispute_resolved"] is not None \
                and r["dispute_resolved"] < r["dispute_opened"]:
            errors.append(RowError(n, st.col("dispute_resolved"), str(r["dispute_resolved"]),
                                   "dispute resolved before it was opened"))
        for field, limit in (("customer_id", 64), ("invoice_id", 64), ("receipt_id", 64), ("currency", 3)):
            if r[field] is not None and len(r[field]) > limit:
                errors.append(RowError(n, st.col("clear_date" if field == "receipt_id" else field), r[field],
                                       f"longer than {limit} characters"))
        doc = r["invoice_id"]
        if doc is not None:
            if doc in first_seen:
                errors.append(RowError(n, st.col("invoice_id"), doc,
                                       f"duplicate document id in the file (first on row {first_seen[doc]})"))
            else:
                first_seen[doc] = n
    # Clearing groups: credit memos must be covered by invoices cleared with them; one currency.
    bad = {e.row for e in st.errors} | {e.row for e in errors}
    for rid, rows in _groups([r for r in st.rows if r["row"] not in bad]).items():
        currencies = {r["currency"] for r in rows}
        if len(currencies) > 1:
            for r in rows[1:]:
                if r["currency"] != rows[0]["currency"]:
                    errors.append(RowError(r["row"], st.col("currency"), str(r["currency"]),
                                           f"cleared by {rid} together with {rows[0]['currency']} items"))
            continue
        latest_invoice = max((r["invoice_date"] for r in rows if r["amount_cents"] > 0), default=None)
        early = [r for r in rows if r["amount_cents"] < 0 and latest_invoice and r["clear_date"] < latest_invoice]
        for r in early:  # its credit would be applied to an invoice before that invoice exists
            errors.append(RowError(r["row"], st.col("clear_date"), str(r["clear_date"]),
                                   f"credit memo cleared under {rid} before the document date "
                                   f"{latest_invoice.isoformat()} of an invoice cleared with it"))
        if early:
            continue
        debit = sum(r["amount_cents"] for r in rows if r["amount_cents"] > 0)
        credit = -sum(r["amount_cents"] for r in rows if r["amount_cents"] < 0)
        if credit > debit:
            for r in rows:
                if r["amount_cents"] < 0:
                    errors.append(RowError(r["row"], st.col("clear_date"), str(r["clear_date"]),
                                           f"cleared credit memo is not covered by invoices cleared with it "
                                           f"({cents_to_str(credit)} credit vs {cents_to_str(debit)} invoiced"
                                           f" under {rid})"))
    st.errors.extend(errors)
    return errors


def _article(kind: str) -> str:
    words = kind.replace("_", " ")
    return ("an " if words[0] in "aeiou" else "a ") + words


def _groups(rows: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = collections.OrderedDict()
    for r in rows:
        if r["receipt_id"] is not None and r["clear_date"] is not None:
            groups.setdefault(r["receipt_id"], []).append(r)
    return groups


# ------------------------------------------------------------------------------------------------
# Building table rows
# ------------------------------------------------------------------------------------------------
def _mode(values: list) -> Any:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return collections.Counter(values).most_common(1)[0][0]


def build_tables(rows: list[dict]) -> tuple[dict[str, list[dict]], dict[str, int], dict[str, list[int]]]:
    """Table rows from canonical rows.

    Returns
    -------
    tables : {table: [row dict]} (every dict of a table has the same keys)
    invoice_rows : {invoice id: file row}
    receipt_rows : {receipt id: [file rows]}
    """
    by_customer: dict[str, list[dict]] = collections.OrderedDict()
    for r in rows:
        by_customer.setdefault(r["customer_id"], []).append(r)
    customers = []
    for cid, rs in by_customer.items():
        attrs = {a: _mode([r[a] for r in rs]) for a in CUSTOMER_ATTRS}
        customers.append({
            "id": cid, "name": _cut(attrs["customer_name"] or cid, 200), "country": _cut(attrs["country"], 64),
            "region": _cut(attrs["region"], 64), "business_unit": _cut(attrs["business_unit"], 64),
            "currency": attrs["customer_currency"] or _mode([r["currency"] for r in rs]) or "USD",
            "payment_terms_days": 30 if attrs["payment_terms_days"] is None else int(attrs["payment_terms_days"]),
            "paperless": bool(attrs["paperless"]), "paperless_since": attrs["paperless_since"],
        })
    invoices = [{
        "id": r["invoice_id"], "customer_id": r["customer_id"], "doc_type": r["doc_type"],
        "invoice_date": r["invoice_date"], "due_date": r["due_date"], "amount_cents": int(r["amount_cents"]),
        "currency": r["currency"], "reference": _cut(r["reference"], 200),
    } for r in rows]
    invoice_rows = {r["invoice_id"]: r["row"] for r in rows}

    receipts, applications, receipt_rows = [], [], {}
    for rid, rs in _groups(rows).items():
        receipt_rows[rid] = [r["row"] for r in rs]
        day = max(r["clear_date"] for r in rs)
        remaining = collections.OrderedDict((r["invoice_id"], r["amount_cents"]) for r in rs if r["amount_cents"] > 0)
        for cm in (r for r in rs if r["amount_cents"] < 0):
            credit = -cm["amount_cents"]
            for inv_id in remaining:
                take = min(credit, remaining[inv_id])
                if take > 0:
                    applications.append(_application(None, cm["invoice_id"], inv_id, take, cm["clear_date"]))
                    remaining[inv_id] -= take
                    credit -= take
        cash = sum(remaining.values())
        if cash > 0:
            first = rs[0]
            receipts.append({
                "id": rid, "customer_id": first["customer_id"], "receipt_date": day, "amount_cents": cash,
                "currency": first["currency"], "method": first["receipt_method"] or "other",
                "remittance_ref": first["remittance_ref"] or " ".join(r["invoice_id"] for r in rs)[:2000],
            })
            for inv_id, amount in remaining.items():
                if amount > 0:
                    applications.append(_application(rid, None, inv_id, amount, day))
    disputes = [{
        "invoice_id": r["invoice_id"], "customer_id": r["customer_id"], "opened_date": r["dispute_opened"],
        "reason_code": r["dispute_reason"] or "unspecified", "amount_cents": abs(int(r["amount_cents"])),
        "resolved_date": r["dispute_resolved"], "outcome": r["dispute_outcome"], "created_by": "import",
    } for r in rows if r["dispute_opened"] is not None]
    tables = {"customers": customers, "invoices": invoices, "receipts": receipts,
              "applications": applications, "disputes": disputes}
    return tables, invoice_rows, receipt_rows


def _cut(value: str | None, limit: int) -> str | None:
    """Free text trimmed to its column's width (names, references); ids are checked, never cut."""
    return value[:limit] if value is not None else None


def _application(receipt_id, credit_memo_id, invoice_id, amount, day) -> dict:
    return {"receipt_id": receipt_id, "credit_memo_id": credit_memo_id, "invoice_id": invoice_id,
            "amount_cents": int(amount), "applied_date": day, "source": "import", "rule": None}


# ------------------------------------------------------------------------------------------------
# Database comparison and write
# ------------------------------------------------------------------------------------------------
def _fetch(conn: sa.Connection, table: sa.Table, cols: list[str], key: sa.Column, ids: list) -> list[sa.Row]:
    """Rows of ``table`` whose ``key`` is in ``ids``.

    A few ids go in an IN list; many go into a temporary table (bulk-inserted) joined to ``table``:
    long IN lists are slow to bind and compile (seconds per 50k ids on DuckDB).
    """
    ids = list(dict.fromkeys(i for i in ids if i is not None))
    select = sa.select(*[table.c[c] for c in cols])
    if len(ids) <= _CHUNK:
        return list(conn.execute(select.where(key.in_(ids))).all()) if ids else []
    tmp = sa.Table(f"_load_keys_{table.name}", sa.MetaData(), sa.Column("k", sa.String(64)),
                   prefixes=["TEMPORARY"])
    tmp.create(conn)
    try:
        db.bulk_insert(conn, tmp, pd.DataFrame({"k": ids}))
        return list(conn.execute(select.join(tmp, key == tmp.c.k)).all())
    finally:
        tmp.drop(conn)


_INVOICE_CMP = ("customer_id", "doc_type", "invoice_date", "due_date", "amount_cents", "currency")
_RECEIPT_CMP = ("customer_id", "receipt_date", "amount_cents", "currency", "method")


def _differences(new: dict, old: sa.Row, fields: tuple[str, ...]) -> list[str]:
    diffs = []
    for f in fields:
        a, b = new[f], getattr(old, f)
        if isinstance(b, dt.datetime):
            b = b.date()
        if a != b:
            diffs.append(f"{f} {b} in the ledger vs {a} in the file")
    return diffs


def _check_existing(conn, st: Staged, tables, invoice_rows, receipt_rows):
    """Row errors for conflicts with the ledger, and the sets of ids already present identically."""
    errors: list[RowError] = []
    same_invoices, same_receipts = set(), set()
    inv_t, rec_t = schema.invoices, schema.receipts
    new_inv = {r["id"]: r for r in tables["invoices"]}
    for old in _fetch(conn, inv_t, ["id", *_INVOICE_CMP], inv_t.c.id, list(new_inv)):
        diffs = _differences(new_inv[old.id], old, _INVOICE_CMP)
        if diffs:
            errors.append(RowError(invoice_rows[old.id], st.col("invoice_id"), old.id,
                                   f"conflicts with existing invoice {old.id}: " + "; ".join(diffs)))
        else:
            same_invoices.add(old.id)
    new_rec = {r["id"]: r for r in tables["receipts"]}
    conflicting_rows = {e.row for e in errors}
    for old in _fetch(conn, rec_t, ["id", *_RECEIPT_CMP], rec_t.c.id, list(new_rec)):
        diffs = _differences(new_rec[old.id], old, _RECEIPT_CMP)
        if diffs and conflicting_rows.isdisjoint(receipt_rows[old.id]):  # else already reported on the invoice
            errors.append(RowError(receipt_rows[old.id][0], st.col("clear_date"), old.id,
                                   f"conflicts with existing receipt {old.id}: " + "; ".join(diffs)))
        elif not diffs:
            same_receipts.add(old.id)
    return errors, same_invoices, same_receipts


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    # Columns that are empty everywhere are left out (the database default, NULL, applies): an
    # all-None object column has no type for DuckDB's frame scan.
    keep = [c for c in frame.columns if frame[c].notna().any()]
    return frame[keep]


def write(engine: sa.Engine, st: Staged, *, skip_invalid: bool = False, rows_read: int | None = None) -> LoadReport:
    """Validate against the ledger and write ``st`` in one transaction. See the module docstring."""
    report = LoadReport(st.fmt, st.file_name, st.sha256, rows_read=len(st.rows) if rows_read is None else rows_read,
                        rows_ignored=st.ignored, notes=list(st.notes))
    batches = schema.import_batches
    db.require_writable(engine, "load data")
    with db.bulk_write(engine) as conn:
        report.already_loaded = conn.execute(
            sa.select(sa.func.count()).select_from(batches).where(batches.c.file_sha256 == st.sha256)).scalar() > 0
        for _ in range(10):  # dropping rows can change clearing groups; converges in one or two rounds
            bad = {e.row for e in st.errors}
            good = [r for r in st.rows if r["row"] not in bad]
            tables, invoice_rows, receipt_rows = build_tables(good)
            conflicts, same_inv, same_rec = _check_existing(conn, st, tables, invoice_rows, receipt_rows)
            if not conflicts:
                break
            st.errors.extend(conflicts)
            if not skip_invalid:
                break
        if st.errors and not skip_invalid:
            raise ValidationFailed(sorted(st.errors, key=lambda e: e.row), st.file_name or "input")
        report.errors = sorted(st.errors, key=lambda e: e.row)
        report.rows_invalid = len({e.row for e in st.errors})

        existing_customers = {r.id for r in _fetch(conn, schema.customers, ["id"], schema.customers.c.id,
                                                   [c["id"] for c in tables["customers"]])}
        inv_ids = [r["id"] for r in tables["invoices"]]
        old_apps = {(a.receipt_id, a.credit_memo_id, a.invoice_id, int(a.amount_cents), _as_date(a.applied_date))
                    for a in _fetch(conn, schema.applications,
                                    ["receipt_id", "credit_memo_id", "invoice_id", "amount_cents", "applied_date"],
                                    schema.applications.c.invoice_id, inv_ids)}
        old_disputes = {(d.invoice_id, _as_date(d.opened_date), d.reason_code, int(d.amount_cents))
                        for d in _fetch(conn, schema.disputes, ["invoice_id", "opened_date", "reason_code",
                                                                "amount_cents"], schema.disputes.c.invoice_id,
                                        inv_ids)}
        keep = {
            "customers": [c for c in tables["customers"] if c["id"] not in existing_customers],
            "invoices": [r for r in tables["invoices"] if r["id"] not in same_inv],
            "receipts": [r for r in tables["receipts"] if r["id"] not in same_rec],
            "applications": [a for a in tables["applications"]
                             if (a["receipt_id"], a["credit_memo_id"], a["invoice_id"], a["amount_cents"],
                                 a["applied_date"]) not in old_apps],
            "disputes": [d for d in tables["disputes"]
                         if (d["invoice_id"], d["opened_date"], d["reason_code"], d["amount_cents"]) not in old_disputes],
        }
        report.duplicates = {t: len(tables[t]) - len(keep[t]) for t in TABLES}
        report.rows_duplicate = len(same_inv)
        if not any(keep.values()):
            report.ledger_version = db.ledger_version(conn)
            if report.already_loaded:
                report.batch_id = conn.execute(sa.select(sa.func.max(batches.c.id))
                                               .where(batches.c.file_sha256 == st.sha256)).scalar()
            return report  # nothing new: write nothing (no batch row, no version bump)

        batch_id = conn.execute(batches.insert().values(
            loaded_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), source=st.fmt,
            file_name=(st.file_name or None) and st.file_name[:500], file_sha256=st.sha256,
            rows_inserted=0, rows_skipped=0).returning(batches.c.id)).scalar_one()
        for name in TABLES:
            rows = keep[name]
            if name in ("invoices", "receipts"):
                rows = [{**r, "import_batch_id": batch_id} for r in rows]
            if rows:
                report.inserted[name] = db.bulk_insert(conn, getattr(schema, name), _frame(rows))
        conn.execute(batches.update().where(batches.c.id == batch_id).values(
            rows_inserted=report.rows_inserted, rows_skipped=report.rows_duplicate + report.rows_invalid))
        report.batch_id = batch_id
        report.ledger_version = db.bump_ledger_version(conn)
    return report


def _as_date(value):
    return value.date() if isinstance(value, dt.datetime) else value


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
