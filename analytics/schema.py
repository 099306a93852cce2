"""The AR ledger schema (SQLAlchemy 2 Core).

One ``MetaData`` holds every table. Conventions, fixed for every module:

* **Money** is integer cents in ``*_cents`` columns (``BigInteger``). The ledger keeps one currency per
  document; amounts are never converted inside the database.
* **Signs.** ``invoices.amount_cents`` is signed by document type: invoices and debit memos are
  positive, credit memos negative. Receipts, applications, disputes and promises are positive.
  ``adjustments.amount_cents`` is signed as its effect on the item's open amount (a write-off is negative).
* **Dates** are ``Date``; event times (activities, audit) are ``DateTime`` in UTC.
* Text identifiers (``invoices.id``, ``customers.id``, ``receipts.id``) are the source system's document
  numbers kept as strings (leading zeros matter). Rows the product creates itself get integer ids
  from a sequence (works on DuckDB and PostgreSQL; SQLite uses its rowid).
* Constraints live in the database (keys, NOT NULL, CHECK), so a row that breaks them is refused
  whatever wrote it.

The open amount of an item at a date D is derived, never stored: see :mod:`analytics.ledger`.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DOC_TYPES = ("invoice", "credit_memo", "debit_memo")
RECEIPT_METHODS = ("check", "eft", "wire", "card", "other")
ACTIVITY_TYPES = ("call", "email", "letter", "portal", "escalation", "note")
ADJUSTMENT_KINDS = ("write_off", "adjustment", "deduction")
DISPUTE_OUTCOMES = ("credit_issued", "customer_paid", "written_off", "rejected", "withdrawn")
SEGMENTS = ("early", "on_time", "chronic_late", "deteriorating", "defaulting")
ROLES = ("admin", "manager", "collector", "finance")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _id_seq(table: str) -> sa.Sequence:
    return sa.Sequence(f"{table}_id_seq")


def _serial_pk(table: str) -> sa.Column:
    return sa.Column("id", sa.Integer, _id_seq(table), primary_key=True)


def _money(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=kw.pop("nullable", False), **kw)


collectors = sa.Table(
    "collectors",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(200)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("country", sa.String(64)),
    sa.Column("region", sa.String(64)),
    sa.Column("business_unit", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    _money("credit_limit_cents", nullable=True),
    sa.Column("payment_terms_days", sa.Integer, nullable=False, server_default="30"),
    sa.Column("collector_id", sa.String(32), sa.ForeignKey("collectors.id")),
    sa.Column("paperless", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paperless_since", sa.Date),
    sa.Column("customer_since", sa.Date),
    sa.Column("email", sa.String(200)),  # where dunning letters and statements go (0006)
    sa.CheckConstraint("credit_limit_cents IS NULL OR credit_limit_cents >= 0", name="credit_limit_nonneg"),
    sa.CheckConstraint("payment_terms_days >= 0", name="terms_nonneg"),
)

# Ground truth written only by the synthetic generator, so risk models can be checked against it.
customer_truth = sa.Table(
    "customer_truth",
    metadata,
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("segment", sa.String(32), nullable=False),
    sa.Column("mean_days_late", sa.Double, nullable=False),
    sa.Column("sd_days_late", sa.Double, nullable=False),
    sa.Column("drift_days_per_year", sa.Double, nullable=False),
    sa.Column("default_probability", sa.Double, nullable=False),
    sa.Column("partial_payment_rate", sa.Double, nullable=False),
    sa.Column("dispute_rate", sa.Double, nullable=False),
    sa.CheckConstraint(_in("segment", SEGMENTS), name="segment"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("doc_type", sa.String(16), nullable=False, server_default="invoice"),
    sa.Column("invoice_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    _money("amount_cents"),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("reference", sa.String(200)),
    sa.Column("import_batch_id", sa.Integer, sa.ForeignKey("import_batches.id")),
    sa.CheckConstraint(_in("doc_type", DOC_TYPES), name="doc_type"),
    sa.CheckConstraint(
        "(doc_type = 'credit_memo' AND amount_cents < 0) OR (doc_type <> 'credit_memo' AND amount_cents > 0)",
        name="amount_sign",
    ),
    sa.CheckConstraint("due_date >= invoice_date", name="due_after_invoice"),
)
sa.Index("ix_invoices_customer", invoices.c.customer_id)
sa.Index("ix_invoices_invoice_date", invoices.c.invoice_date)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # NULL customer = unidentified cash (no remittance, unknown payer), waiting for cash application.
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id")),
    sa.Column("receipt_date", sa.Date, nullable=False),
    _money("amount_cents"),
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("method", sa.String(16), nullable=False, server_default="eft"),
    sa.Column("remittance_ref", sa.Text),
    sa.Column("import_batch_id", sa.Integer, sa.ForeignKey("import_batches.id")),
    # From a bank statement line (0007): who paid, from which account, the bank's reference and the
    # statement (bank_statements.id; no foreign key: DuckDB cannot add one to an existing table).
    # The line's remittance text is ``remittance_ref``, which the matcher reads.
    sa.Column("payer_name", sa.String(200)),
    sa.Column("payer_account", sa.String(64)),
    sa.Column("bank_reference", sa.String(64)),
    sa.Column("statement_id", sa.Integer),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint(_in("method", RECEIPT_METHODS), name="method"),
)
sa.Index("ix_receipts_customer", receipts.c.customer_id)

# Cash or a credit memo applied to an invoice. Exactly one source: a receipt or a credit memo.
# An unapply is a new row with a negative amount (history is never rewritten).
applications = sa.Table(
    "applications",
    metadata,
    _serial_pk("applications"),
    sa.Column("receipt_id", sa.String(64), sa.ForeignKey("receipts.id")),
    sa.Column("credit_memo_id", sa.String(64), sa.ForeignKey("invoices.id")),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), nullable=False),
    _money("amount_cents"),
    sa.Column("applied_date", sa.Date, nullable=False),
    sa.Column("source", sa.String(16), nullable=False, server_default="import"),
    sa.Column("rule", sa.String(64)),
    sa.Column("applied_by", sa.String(64)),
    sa.CheckConstraint("amount_cents <> 0", name="amount_nonzero"),
    sa.CheckConstraint(
        "(receipt_id IS NOT NULL AND credit_memo_id IS NULL) OR (receipt_id IS NULL AND credit_memo_id IS NOT NULL)",
        name="one_source",
    ),
)
sa.Index("ix_applications_invoice", applications.c.invoice_id)
sa.Index("ix_applications_receipt", applications.c.receipt_id)
sa.Index("ix_applications_credit_memo", applications.c.credit_memo_id)

# Write-offs, manual adjustments and deductions (short-payment differences) against one item.
adjustments = sa.Table(
    "adjustments",
    metadata,
    _serial_pk("adjustments"),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("adj_date", sa.Date, nullable=False),
    _money("amount_cents"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200)),
    sa.Column("created_by", sa.String(64)),
    sa.CheckConstraint("amount_cents <> 0", name="amount_nonzero"),
    sa.CheckConstraint(_in("kind", ADJUSTMENT_KINDS), name="kind"),
)
sa.Index("ix_adjustments_invoice", adjustments.c.invoice_id)

disputes = sa.Table(
    "disputes",
    metadata,
    _serial_pk("disputes"),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("opened_date", sa.Date, nullable=False),
    sa.Column("reason_code", sa.String(32), nullable=False),
    _money("amount_cents"),
    sa.Column("resolved_date", sa.Date),
    sa.Column("outcome", sa.String(16)),
    sa.Column("created_by", sa.String(64)),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint("resolved_date IS NULL OR resolved_date >= opened_date", name="resolved_after_opened"),
    sa.CheckConstraint("outcome IS NULL OR " + _in("outcome", DISPUTE_OUTCOMES), name="outcome"),
    sa.CheckConstraint("(resolved_date IS NULL) = (outcome IS NULL)", name="resolved_has_outcome"),
)
sa.Index("ix_disputes_customer", disputes.c.customer_id)

promises = sa.Table(
    "promises",
    metadata,
    _serial_pk("promises"),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id")),
    sa.Column("made_on", sa.Date, nullable=False),
    sa.Column("promised_date", sa.Date, nullable=False),
    _money("amount_cents"),
    sa.Column("recorded_by", sa.String(64)),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint("promised_date >= made_on", name="promised_after_made"),
)
sa.Index("ix_promises_customer", promises.c.customer_id)

activities = sa.Table(
    "activities",
    metadata,
    _serial_pk("activities"),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id")),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("collector_id", sa.String(32), sa.ForeignKey("collectors.id")),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(64)),
    sa.Column("note", sa.Text),
    sa.CheckConstraint(_in("type", ACTIVITY_TYPES), name="type"),
)
sa.Index("ix_activities_customer", activities.c.customer_id)

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("collector_id", sa.String(32), sa.ForeignKey("collectors.id")),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # Set for accounts with a documented password (demo users): changed at first sign-in (migration 0004).
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint(_in("role", ROLES), name="role"),
)

# Append-only record of every write made through the product (who, when, what, before/after as JSON).
audit_log = sa.Table(
    "audit_log",
    metadata,
    _serial_pk("audit_log"),
    sa.Column("logged_at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("row_id", sa.String(64)),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    # Hash chain (migration 0004, analytics.audit): previous row's hash, SHA-256 of this row + prev_hash.
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("row_hash", sa.String(64)),
)
# The audit chain's last row (one row, name 'audit_log'): every append updates it first, which
# serialises appenders on every backend, and `audit verify` checks the log still ends there.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("last_id", sa.Integer),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
)
# Failed sign-ins per user name typed (known or not), counted in the database (analytics.auth.sign_in).
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_failure_at", sa.DateTime),
    sa.Column("locked_until", sa.DateTime),
)

# One row per import or generation run: provenance, idempotency (file hash) and cache invalidation.
import_batches = sa.Table(
    "import_batches",
    metadata,
    _serial_pk("import_batches"),
    sa.Column("loaded_at", sa.DateTime, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("file_name", sa.String(500)),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("rows_inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_skipped", sa.Integer, nullable=False, server_default="0"),
)

# Monotonic counter bumped by every write (imports, workflow writes); part of every cache key.
ledger_meta = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

# Generator ground truth for cash application: which invoices each receipt really pays.
receipt_truth = sa.Table(
    "receipt_truth",
    metadata,
    sa.Column("receipt_id", sa.String(64), sa.ForeignKey("receipts.id"), primary_key=True),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), primary_key=True),
    _money("amount_cents"),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
)

PROPOSAL_STATUSES = ("proposed", "accepted", "rejected", "auto_applied")

# Cash-application proposals: receipt -> invoice, with the rule that produced it and its confidence.
match_proposals = sa.Table(
    "match_proposals",
    metadata,
    _serial_pk("match_proposals"),
    sa.Column("receipt_id", sa.String(64), sa.ForeignKey("receipts.id"), nullable=False),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), nullable=False),
    _money("amount_cents"),
    sa.Column("confidence", sa.Double, nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="proposed"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", sa.DateTime),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
    sa.CheckConstraint(_in("status", PROPOSAL_STATUSES), name="status"),
)
sa.Index("ix_match_proposals_receipt", match_proposals.c.receipt_id)

WRITEOFF_STATUSES = ("proposed", "approved", "rejected")

# A collector proposes a write-off; a manager approves it (which posts an adjustment of kind write_off).
writeoff_proposals = sa.Table(
    "writeoff_proposals",
    metadata,
    _serial_pk("writeoff_proposals"),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), nullable=False),
    _money("amount_cents"),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("proposed_by", sa.String(64), nullable=False),
    sa.Column("proposed_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="proposed"),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", sa.DateTime),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint(_in("status", WRITEOFF_STATUSES), name="status"),
)

# ---- dunning (revision 0006) -----------------------------------------------------------------
NOTICE_CHANNELS = ("email", "file")
NOTICE_STATUSES = ("pending", "sent", "produced", "failed")

# A dunning block set by hand: the customer (invoice_id NULL) or one item gets no letter until released.
dunning_blocks = sa.Table(
    "dunning_blocks",
    metadata,
    _serial_pk("dunning_blocks"),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id")),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("blocked_by", sa.String(64), nullable=False),
    sa.Column("blocked_at", sa.DateTime, nullable=False),
    sa.Column("released_by", sa.String(64)),
    sa.Column("released_at", sa.DateTime),
)
sa.Index("ix_dunning_blocks_customer", dunning_blocks.c.customer_id)

# One row per dunning run (dry runs write nothing).
dunning_runs = sa.Table(
    "dunning_runs",
    metadata,
    _serial_pk("dunning_runs"),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("procedure", sa.String(200), nullable=False),
    sa.Column("notices", sa.Integer, nullable=False, server_default="0"),
)

# One letter to one account (customer and currency) in a run; at most one per account and as-of date.
dunning_notices = sa.Table(
    "dunning_notices",
    metadata,
    _serial_pk("dunning_notices"),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dunning_runs.id"), nullable=False),
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    _money("amount_cents"),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("recipient", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("activity_id", sa.Integer, sa.ForeignKey("activities.id")),
    sa.UniqueConstraint("customer_id", "currency", "as_of"),
    sa.CheckConstraint("level >= 1", name="level_pos"),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint(_in("channel", NOTICE_CHANNELS), name="channel"),
    sa.CheckConstraint(_in("status", NOTICE_STATUSES), name="status"),
)
sa.Index("ix_dunning_notices_run", dunning_notices.c.run_id)

# The items a notice listed, with the dunning level each reached (an item's level is its highest here).
dunning_notice_items = sa.Table(
    "dunning_notice_items",
    metadata,
    sa.Column("notice_id", sa.Integer, sa.ForeignKey("dunning_notices.id"), primary_key=True),
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("level_before", sa.Integer, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("days_past_due", sa.Integer, nullable=False),
    _money("open_cents"),
    sa.CheckConstraint("level >= level_before", name="level_raised"),
)
sa.Index("ix_dunning_notice_items_invoice", dunning_notice_items.c.invoice_id)

# ---- bank statements (revision 0007) ---------------------------------------------------------
BANK_FORMATS = ("bai2", "mt940", "camt053")
BANK_DIRECTIONS = ("credit", "debit", "return")

# One loaded bank statement (a file may hold several accounts or days: one row per account and file).
bank_statements = sa.Table(
    "bank_statements",
    metadata,
    _serial_pk("bank_statements"),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("statement_ref", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("from_date", sa.Date, nullable=False),
    sa.Column("to_date", sa.Date, nullable=False),
    sa.Column("file_name", sa.String(500)),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("loaded_at", sa.DateTime, nullable=False),
    sa.Column("loaded_by", sa.String(64)),
    sa.Column("lines_new", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lines_duplicate", sa.Integer, nullable=False, server_default="0"),
    sa.Column("import_batch_id", sa.Integer, sa.ForeignKey("import_batches.id")),
    sa.CheckConstraint(_in("format", BANK_FORMATS), name="format"),
)

# Every statement line once (``line_key`` identifies it across overlapping statements): a credit made a
# receipt; a return names the receipt it reverses; other debits are kept as they are.
bank_lines = sa.Table(
    "bank_lines",
    metadata,
    _serial_pk("bank_lines"),
    sa.Column("statement_id", sa.Integer, sa.ForeignKey("bank_statements.id"), nullable=False),
    sa.Column("line_key", sa.String(64), nullable=False, unique=True),
    sa.Column("file_line", sa.Integer, nullable=False),
    sa.Column("value_date", sa.Date, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    _money("amount_cents"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payer_name", sa.String(200)),
    sa.Column("payer_account", sa.String(64)),
    sa.Column("bank_reference", sa.String(64)),
    sa.Column("customer_reference", sa.String(64)),
    sa.Column("type_code", sa.String(16)),
    sa.Column("remittance_text", sa.Text),
    sa.Column("receipt_id", sa.String(64), sa.ForeignKey("receipts.id")),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint(_in("direction", BANK_DIRECTIONS), name="direction"),
)
sa.Index("ix_bank_lines_statement", bank_lines.c.statement_id)
sa.Index("ix_bank_lines_receipt", bank_lines.c.receipt_id)

# ---- currencies and instalments (revision 0008) ----------------------------------------------
#: Exchange rates are stored as integers: the rate times RATE_SCALE (10 decimal places, exact).
RATE_SCALE = 10**10

# Daily reference rates as published (the ECB: units of ``currency`` per 1 ``base``, base EUR).
exchange_rates = sa.Table(
    "exchange_rates",
    metadata,
    sa.Column("base", sa.String(3), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("rate_date", sa.Date, primary_key=True),
    sa.Column("rate_scaled", sa.BigInteger, nullable=False),  # rate x RATE_SCALE
    sa.Column("source", sa.String(200)),
    sa.CheckConstraint("rate_scaled > 0", name="rate_pos"),
    sa.CheckConstraint("currency <> base", name="not_base"),
)

# An invoice's payment schedule (instalments, as ERPNext's payment schedule): due dates with portions
# that add up to the invoice amount. Invoices without rows here have one due date (invoices.due_date).
invoice_instalments = sa.Table(
    "invoice_instalments",
    metadata,
    sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("due_date", sa.Date, nullable=False),
    _money("amount_cents"),
    sa.CheckConstraint("amount_cents > 0", name="amount_pos"),
    sa.CheckConstraint("seq >= 1", name="seq_pos"),
)

# ---- derived settlement summary (revision 0010) -----------------------------------------------
# Kept beside the ledger for speed, never edited by hand: analytics.summaries maintains it in every money
# write's transaction and rebuilds it with `python -m analytics summaries rebuild`.

# Per item with any settlement: the sum of its settlement movements (cash and credit applied to it, credit
# used from it, adjustments; signed as their effect on its open amount) and the date of the last one,
# over the applications and adjustments rows up to the ids in settlement_summary_state.
item_settlements = sa.Table(
    "item_settlements",
    metadata,
    sa.Column("item_id", sa.String(64), nullable=False),
    _money("settled_cents"),
    sa.Column("last_move", sa.Date, nullable=False),
    # the item's own (never changed): sums per currency and filters by customer need no join to invoices
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
)
# Not unique on purpose: DuckDB checks unique keys eagerly, so re-writing an item's row in one transaction
# (delete then insert) would fail there. analytics.summaries keeps one row per item.
sa.Index("ix_item_settlements_item", item_settlements.c.item_id)

# One row (id 1): the highest applications and adjustments ids item_settlements includes, and how many rows
# each table had then (a different count at the next write means rows were removed or re-numbered: rebuild).
settlement_summary_state = sa.Table(
    "settlement_summary_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applications_id", sa.BigInteger, nullable=False),
    sa.Column("adjustments_id", sa.BigInteger, nullable=False),
    sa.Column("applications_rows", sa.BigInteger, nullable=False),
    sa.Column("adjustments_rows", sa.BigInteger, nullable=False),
)

LEDGER_TABLES = (
    collectors, customers, customer_truth, invoices, receipts, applications, adjustments,
    disputes, promises, activities, users, audit_log, import_batches, ledger_meta, receipt_truth,
    match_proposals, writeoff_proposals, dunning_blocks, dunning_runs, dunning_notices, dunning_notice_items,
    bank_statements, bank_lines,
    exchange_rates, invoice_instalments,
)
#: Security state that is not ledger data: not exported by backups (a restore keeps the target's).
SECURITY_TABLES = (audit_head, login_throttle)
#: Derived from the ledger tables (analytics.summaries): not backed up, rebuilt after a restore.
DERIVED_TABLES = (item_settlements, settlement_summary_state)
