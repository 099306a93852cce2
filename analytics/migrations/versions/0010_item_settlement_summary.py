"""derived per-item settlement summary (item_settlements) and its watermark

Every open amount is the item's amount plus its settlements dated on or before the as-of date. Summing a
million applications for each figure was most of the time of a KPI at 1M invoices, above all on
PostgreSQL. ``item_settlements`` keeps that sum per item (all dates) with the date of its last movement;
an open amount at a date is then the kept total less the few movements dated after it
(``analytics.ledger.open_items``). It is derived: ``analytics.summaries`` keeps it in step inside every
money write's transaction and ``python -m analytics summaries rebuild`` recomputes it.

This migration creates both tables and fills them from the ledger in the same statements the rebuild runs.
On PostgreSQL it also indexes the movements' dates, so the few movements dated after an as-of date (the
summary's corrections) are found without reading a million rows; DuckDB and SQLite scan them fast enough.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_FILL = """
INSERT INTO item_settlements (item_id, settled_cents, last_move, customer_id, currency)
SELECT moves.item_id, SUM(moves.delta_cents), MAX(moves.move_date), MIN(invoices.customer_id), MIN(invoices.currency)
FROM (
    SELECT invoice_id AS item_id, -amount_cents AS delta_cents, applied_date AS move_date FROM applications
    UNION ALL
    SELECT credit_memo_id, amount_cents, applied_date FROM applications WHERE credit_memo_id IS NOT NULL
    UNION ALL
    SELECT invoice_id, amount_cents, adj_date FROM adjustments
) AS moves JOIN invoices ON invoices.id = moves.item_id GROUP BY moves.item_id
"""
_STATE = """
INSERT INTO settlement_summary_state (id, applications_id, adjustments_id, applications_rows, adjustments_rows)
SELECT 1, (SELECT COALESCE(MAX(id), 0) FROM applications), (SELECT COALESCE(MAX(id), 0) FROM adjustments),
       (SELECT COUNT(*) FROM applications), (SELECT COUNT(*) FROM adjustments)
"""


#: PostgreSQL only: (index name, table, date column)
DATE_INDEXES = (("ix_applications_applied_date", "applications", "applied_date"),
                ("ix_adjustments_adj_date", "adjustments", "adj_date"))


def upgrade() -> None:
    op.create_table('item_settlements',
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('settled_cents', sa.BigInteger(), nullable=False),
    sa.Column('last_move', sa.Date(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False)
    )
    op.create_index('ix_item_settlements_item', 'item_settlements', ['item_id'], unique=False)
    op.create_table('settlement_summary_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('applications_id', sa.BigInteger(), nullable=False),
    sa.Column('adjustments_id', sa.BigInteger(), nullable=False),
    sa.Column('applications_rows', sa.BigInteger(), nullable=False),
    sa.Column('adjustments_rows', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlement_summary_state'))
    )
    op.execute(_FILL)
    op.execute(_STATE)
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in DATE_INDEXES:
            op.create_index(name, table, [column])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _column in DATE_INDEXES:
            op.drop_index(name, table_name=table)
    op.drop_table('settlement_summary_state')
    op.drop_index('ix_item_settlements_item', table_name='item_settlements')
    op.drop_table('item_settlements')
