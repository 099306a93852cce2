"""8-byte floats for customer_truth and match_proposals.confidence on DuckDB

On DuckDB ``sa.Float`` (revisions 0001/0002) is a 4-byte FLOAT: 0.1 came back as 0.10000000149, and a
confidence of 0.9 compared below an auto-apply threshold of 0.9. PostgreSQL's ``FLOAT`` is already
``double precision`` and SQLite's ``REAL`` is already an 8-byte IEEE double, so on those two backends
this revision changes nothing (``schema.py`` now says ``sa.Double``, which is the same type there).

DuckDB refuses ``ALTER COLUMN ... TYPE`` on a table with a CHECK constraint, so both tables are rebuilt,
in the migration's single transaction: copy the rows aside, drop the table, create it again exactly as
0001/0002 define it (columns, defaults, keys, foreign keys, CHECKs, indexes) but with DOUBLE columns,
copy the rows back (ids kept; ``match_proposals_id_seq`` is a separate sequence and simply continues),
drop the copy. No table references these two (checked at run time: the migration stops with a clear
error if one does). Existing values are converted through their shortest decimal text, which names the
same FLOAT exactly, so a stored 0.1 reads 0.1 afterwards instead of 0.10000000149 (the digits a
4-byte FLOAT did not keep cannot be recovered). A table already DOUBLE is left alone.

Downgrade rebuilds them back to FLOAT on DuckDB (lossy by nature: values are rounded to 4 bytes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

from analytics.migrations._util import serial_id


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _customer_truth(float_type) -> list:
    """customer_truth as revision 0001 creates it, with ``float_type`` for its six float columns."""
    return [
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('segment', sa.String(length=32), nullable=False),
        sa.Column('mean_days_late', float_type(), nullable=False),
        sa.Column('sd_days_late', float_type(), nullable=False),
        sa.Column('drift_days_per_year', float_type(), nullable=False),
        sa.Column('default_probability', float_type(), nullable=False),
        sa.Column('partial_payment_rate', float_type(), nullable=False),
        sa.Column('dispute_rate', float_type(), nullable=False),
        sa.CheckConstraint("segment IN ('early', 'on_time', 'chronic_late', 'deteriorating', 'defaulting')",
                           name=op.f('ck_customer_truth_segment')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_customer_truth_customer_id_customers')),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_truth')),
    ]


def _match_proposals(float_type) -> list:
    """match_proposals as revision 0002 creates it, with ``float_type`` for ``confidence``."""
    return [
        serial_id('match_proposals'),
        sa.Column('receipt_id', sa.String(length=64), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('confidence', float_type(), nullable=False),
        sa.Column('rule', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='proposed', nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('proposed', 'accepted', 'rejected', 'auto_applied')",
                           name=op.f('ck_match_proposals_status')),
        sa.CheckConstraint('amount_cents > 0', name=op.f('ck_match_proposals_amount_pos')),
        sa.CheckConstraint('confidence >= 0 AND confidence <= 1', name=op.f('ck_match_proposals_confidence_range')),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_match_proposals_invoice_id_invoices')),
        sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_match_proposals_receipt_id_receipts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_match_proposals')),
    ]


# table -> (definition, float columns, indexes {name: columns})
TABLES = {
    'customer_truth': (_customer_truth, ('mean_days_late', 'sd_days_late', 'drift_days_per_year',
                                         'default_probability', 'partial_payment_rate', 'dispute_rate'), {}),
    'match_proposals': (_match_proposals, ('confidence',), {'ix_match_proposals_receipt': ['receipt_id']}),
}


def _column_types(conn, table: str, columns) -> set:
    rows = conn.execute(sa.text("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = :t AND table_schema = current_schema()"), {"t": table})
    return {dtype.upper() for name, dtype in rows if name in columns}


def _rebuild(table: str, float_type, sql_type: str, via_text: bool) -> None:
    """Recreate ``table`` (DuckDB) with its float columns as ``sql_type``, keeping every row."""
    conn = op.get_bind()
    define, float_cols, indexes = TABLES[table]
    if _column_types(conn, table, float_cols) == {sql_type}:
        return
    referencing = conn.execute(sa.text(
        "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY' "
        "AND referenced_table = :t AND table_name <> :t"), {"t": table}).scalars().all()
    if referencing:
        raise RuntimeError(f"migration 0003 cannot rebuild {table}: table(s) {', '.join(referencing)} reference it "
                           f"(DuckDB cannot drop a referenced table); drop those foreign keys and run it again")
    elements = define(float_type)
    columns = [e.name for e in elements if isinstance(e, sa.Column)]
    q = conn.dialect.identifier_preparer.quote  # "rule" is a keyword in DuckDB
    before = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    aside = f"_migration_0003_{table}"
    op.execute(f"CREATE TABLE {aside} AS SELECT * FROM {table}")
    for name in indexes:
        op.drop_index(name, table_name=table)
    op.drop_table(table)
    op.create_table(table, *elements)
    # Shortest decimal text of a 4-byte FLOAT parses back to that same FLOAT, and as DOUBLE is the value meant.
    select = ", ".join(f"CAST(CAST({q(c)} AS VARCHAR) AS DOUBLE)" if c in float_cols and via_text else q(c)
                       for c in columns)
    op.execute(f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) SELECT {select} FROM {aside}")
    op.drop_table(aside)
    for name, cols in indexes.items():
        op.create_index(name, table, cols, unique=False)
    after = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    if after != before:  # cannot happen short of a DuckDB bug; the transaction is rolled back
        raise RuntimeError(f"migration 0003: {table} had {before} rows before the rebuild and {after} after")


def upgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return  # PostgreSQL FLOAT = double precision, SQLite REAL = 8-byte double: nothing to change
    for table in TABLES:
        _rebuild(table, sa.Double, "DOUBLE", via_text=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    for table in TABLES:
        _rebuild(table, sa.Float, "FLOAT", via_text=False)
