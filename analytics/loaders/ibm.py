"""IBM Watson Analytics "Accounts Receivable" sample (``WA_Fn-UseC_-Accounts-Receivable.csv``).

Columns: countryCode, customerID, PaperlessDate, invoiceNumber, InvoiceDate, DueDate, InvoiceAmount,
Disputed, SettledDate, PaperlessBill, DaysToSettle, DaysLate. Dates are US ``M/D/YYYY``; ids are
strings with leading zeros (kept).

Mapping (assumptions marked *):

* customers: id = customerID, name = "Customer <customerID>"* (the file has no names),
  country = countryCode, payment terms 30 days (every DueDate is InvoiceDate + 30), currency USD*
  (the file has no currency), paperless = true since PaperlessDate (the date is constant per customer).
* invoices: id = invoiceNumber, doc_type invoice, InvoiceDate, DueDate, amount_cents = InvoiceAmount
  in cents, currency USD*.
* receipts: every row is settled: one receipt per invoice, id ``PAY-<invoiceNumber>``, receipt_date =
  SettledDate, amount = InvoiceAmount, method ``eft`` when PaperlessBill is Electronic, ``check`` when
  Paper, remittance_ref = invoiceNumber; applied in full to the invoice on SettledDate.
* disputes (Disputed = Yes): the file says only *that* an invoice was disputed, not when. We assume*
  the dispute was opened on the InvoiceDate (the earliest date it could be raised) and resolved on the
  SettledDate with outcome ``customer_paid`` (the invoice was paid in full, no credit was issued);
  reason_code ``unspecified``; amount = the invoice amount. Dispute duration therefore equals
  DaysToSettle.

DaysToSettle and DaysLate are derived columns and are not loaded.
"""
from __future__ import annotations

from analytics.loaders._core import Staged, blank_row
from analytics.loaders._parse import Checker
from analytics.loaders._source import RawTable

COLUMNS = ("countryCode", "customerID", "PaperlessDate", "invoiceNumber", "InvoiceDate", "DueDate",
           "InvoiceAmount", "Disputed", "SettledDate", "PaperlessBill")
US_DATE = ("%m/%d/%Y",)
METHODS = {"electronic": "eft", "paper": "check"}
FIELD_COLUMNS = {
    "customer_id": "customerID", "country": "countryCode", "paperless_since": "PaperlessDate",
    "invoice_id": "invoiceNumber", "invoice_date": "InvoiceDate", "due_date": "DueDate",
    "amount_cents": "InvoiceAmount", "clear_date": "SettledDate", "receipt_method": "PaperlessBill",
    "dispute_opened": "Disputed", "dispute_resolved": "SettledDate",
}


def stage(raw: RawTable) -> Staged:
    """Canonical rows from the IBM sample (see the module docstring for the mapping)."""
    raw.require_columns(COLUMNS, "the IBM AR sample")
    ck = Checker()
    ck.errors.extend(raw.errors)
    rows = []
    for n, rec in raw.records():
        r = blank_row(n)
        r["customer_id"] = ck.ident(n, rec, "customerID", required=True, what="customer id")
        r["customer_name"] = f"Customer {r['customer_id']}" if r["customer_id"] else None
        r["country"] = ck.text(n, rec, "countryCode")
        r["customer_currency"] = "USD"
        r["payment_terms_days"] = 30
        r["paperless_since"] = ck.date(n, rec, "PaperlessDate", US_DATE)
        r["paperless"] = r["paperless_since"] is not None
        r["invoice_id"] = ck.ident(n, rec, "invoiceNumber", required=True, what="invoice number")
        r["doc_type"] = "invoice"
        r["invoice_date"] = ck.date(n, rec, "InvoiceDate", US_DATE, required=True)
        r["due_date"] = ck.date(n, rec, "DueDate", US_DATE, required=True)
        r["amount_cents"] = ck.amount(n, rec, "InvoiceAmount", decimal=".", thousands=",", currency="USD")
        r["currency"] = "USD"
        r["clear_date"] = ck.date(n, rec, "SettledDate", US_DATE)
        if r["clear_date"] is not None and r["invoice_id"]:
            r["receipt_id"] = f"PAY-{r['invoice_id']}"
            r["remittance_ref"] = r["invoice_id"]
            bill = (rec.get("PaperlessBill") or "").strip().lower()
            if bill not in METHODS:
                ck.error(n, "PaperlessBill", rec.get("PaperlessBill"), "expected Electronic or Paper")
            r["receipt_method"] = METHODS.get(bill, "other")
        disputed = (rec.get("Disputed") or "").strip().lower()
        if disputed not in ("yes", "no"):
            ck.error(n, "Disputed", rec.get("Disputed"), "expected Yes or No")
        elif disputed == "yes":
            r["dispute_opened"] = r["invoice_date"]
            r["dispute_reason"] = "unspecified"
            if r["clear_date"] is not None:
                r["dispute_resolved"] = r["clear_date"]
                r["dispute_outcome"] = "customer_paid"
        rows.append(r)
    return Staged("ibm", rows, ck.errors, dict(FIELD_COLUMNS), raw.file_name, raw.sha256)
