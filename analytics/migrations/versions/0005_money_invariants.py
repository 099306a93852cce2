"""Money invariants in the database: no receipt applied beyond its amount, no item settled beyond its own

The product's posting functions check these under the ledger's write lock (``analytics.db.lock_ledger``);
these triggers make the database refuse the same states whatever writes them (a script, a bad import, a
second program):

* the applications of a receipt (net of unapplies) never exceed the receipt's amount;
* an invoice or debit memo is never settled (cash, credit memos, write-offs, deductions) beyond its amount,
  i.e. its open amount never goes below zero;
* a credit memo is never applied beyond its amount.

PostgreSQL: statement-level ``AFTER INSERT OR UPDATE`` triggers with transition tables (one grouped check
per statement, so a ``COPY`` of a million rows costs one query, not a million). SQLite: row-level
``AFTER INSERT`` triggers (indexed look-ups; SQLite has no statement triggers). DuckDB has no triggers:
there the lock and :func:`analytics.cash_app.ledger_integrity` (which the roll-forward runs) hold the line.

Also adds the index ``ix_applications_credit_memo`` that the credit-memo check (and the open-items
reconstruction) looks up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Messages start with the invariant's name so the product can recognise them.
RECEIPT_MSG = "money_invariant: applications exceed the receipt amount"
ITEM_MSG = "money_invariant: item settled beyond its amount"
CREDIT_MSG = "money_invariant: credit memo applied beyond its amount"

_OPEN = """(i.amount_cents
   - COALESCE((SELECT SUM(a.amount_cents) FROM applications a WHERE a.invoice_id = i.id), 0)
   + COALESCE((SELECT SUM(a.amount_cents) FROM applications a WHERE a.credit_memo_id = i.id), 0)
   + COALESCE((SELECT SUM(j.amount_cents) FROM adjustments j WHERE j.invoice_id = i.id), 0))"""



def _pg_items(touched: str) -> str:
    """PL/pgSQL: raise when an item named by the ``touched`` query is settled beyond its amount."""
    return f"""
    IF EXISTS (SELECT 1 FROM invoices i WHERE i.id IN ({touched})
               AND ((i.doc_type <> 'credit_memo' AND {_OPEN} < 0)
                    OR (i.doc_type = 'credit_memo' AND {_OPEN} > 0))) THEN
        RAISE EXCEPTION '{ITEM_MSG}';
    END IF;"""


PG_APPLICATIONS = f"""
CREATE OR REPLACE FUNCTION ar_check_applications() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM receipts r
               WHERE r.id IN (SELECT receipt_id FROM new_rows WHERE receipt_id IS NOT NULL)
               AND (SELECT SUM(a.amount_cents) FROM applications a WHERE a.receipt_id = r.id) > r.amount_cents) THEN
        RAISE EXCEPTION '{RECEIPT_MSG}';
    END IF;
    {_pg_items("SELECT invoice_id FROM new_rows UNION SELECT credit_memo_id FROM new_rows "
               "WHERE credit_memo_id IS NOT NULL")}
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

PG_ADJUSTMENTS = f"""
CREATE OR REPLACE FUNCTION ar_check_adjustments() RETURNS trigger AS $$
BEGIN
    {_pg_items("SELECT invoice_id FROM new_rows")}
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

SQLITE = [
    f"""CREATE TRIGGER applications_within_receipt AFTER INSERT ON applications
    WHEN NEW.receipt_id IS NOT NULL
    BEGIN
        SELECT RAISE(ABORT, '{RECEIPT_MSG}')
        WHERE (SELECT SUM(amount_cents) FROM applications WHERE receipt_id = NEW.receipt_id)
            > (SELECT amount_cents FROM receipts WHERE id = NEW.receipt_id);
    END""",
    f"""CREATE TRIGGER applications_within_item AFTER INSERT ON applications
    BEGIN
        SELECT RAISE(ABORT, '{ITEM_MSG}')
        FROM invoices i WHERE i.id = NEW.invoice_id AND i.doc_type <> 'credit_memo' AND {_OPEN} < 0;
    END""",
    f"""CREATE TRIGGER applications_within_credit AFTER INSERT ON applications
    WHEN NEW.credit_memo_id IS NOT NULL
    BEGIN
        SELECT RAISE(ABORT, '{CREDIT_MSG}')
        FROM invoices i WHERE i.id = NEW.credit_memo_id AND {_OPEN} > 0;
    END""",
    f"""CREATE TRIGGER adjustments_within_item AFTER INSERT ON adjustments
    BEGIN
        SELECT RAISE(ABORT, '{ITEM_MSG}')
        FROM invoices i WHERE i.id = NEW.invoice_id
        AND ((i.doc_type <> 'credit_memo' AND {_OPEN} < 0) OR (i.doc_type = 'credit_memo' AND {_OPEN} > 0));
    END""",
]
SQLITE_NAMES = ("applications_within_receipt", "applications_within_item", "applications_within_credit",
                "adjustments_within_item")


def upgrade() -> None:
    op.create_index('ix_applications_credit_memo', 'applications', ['credit_memo_id'], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_APPLICATIONS)
        op.execute(PG_ADJUSTMENTS)
        for table, fn in (("applications", "ar_check_applications"), ("adjustments", "ar_check_adjustments")):
            # PostgreSQL allows one event per trigger with transition tables
            op.execute(f"CREATE TRIGGER {table}_money_invariants AFTER INSERT ON {table} "
                       f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
    elif dialect == "sqlite":
        for sql in SQLITE:
            op.execute(sql)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in ("applications", "adjustments"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_money_invariants ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ar_check_applications()")
        op.execute("DROP FUNCTION IF EXISTS ar_check_adjustments()")
    elif dialect == "sqlite":
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_applications_credit_memo', table_name='applications')
