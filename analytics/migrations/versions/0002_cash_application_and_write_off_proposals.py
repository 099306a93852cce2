"""cash application and write-off proposals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from analytics.migrations._util import create_sequences, drop_sequences, serial_id

SERIAL_TABLES = ("match_proposals", "writeoff_proposals")


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_sequences(*SERIAL_TABLES)
    op.create_table('match_proposals',
    serial_id('match_proposals'),
    sa.Column('receipt_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='proposed', nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('proposed', 'accepted', 'rejected', 'auto_applied')", name=op.f('ck_match_proposals_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_match_proposals_amount_pos')),
    sa.CheckConstraint('confidence >= 0 AND confidence <= 1', name=op.f('ck_match_proposals_confidence_range')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_match_proposals_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_match_proposals_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_proposals'))
    )
    with op.batch_alter_table('match_proposals', schema=None) as batch_op:
        batch_op.create_index('ix_match_proposals_receipt', ['receipt_id'], unique=False)

    op.create_table('receipt_truth',
    sa.Column('receipt_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_receipt_truth_amount_pos')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_receipt_truth_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_receipt_truth_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('receipt_id', 'invoice_id', name=op.f('pk_receipt_truth'))
    )
    op.create_table('writeoff_proposals',
    serial_id('writeoff_proposals'),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('proposed_by', sa.String(length=64), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='proposed', nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('proposed', 'approved', 'rejected')", name=op.f('ck_writeoff_proposals_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_writeoff_proposals_amount_pos')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_writeoff_proposals_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_writeoff_proposals'))
    )


def downgrade() -> None:
    drop_sequences(*SERIAL_TABLES)
    op.drop_table('writeoff_proposals')
    op.drop_table('receipt_truth')
    with op.batch_alter_table('match_proposals', schema=None) as batch_op:
        batch_op.drop_index('ix_match_proposals_receipt')

    op.drop_table('match_proposals')
