"""exchange rates (daily, EUR-based as the ECB publishes them) and invoice instalment schedules

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exchange_rates',
    sa.Column('base', sa.String(length=3), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('rate_date', sa.Date(), nullable=False),
    sa.Column('rate_scaled', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.CheckConstraint('rate_scaled > 0', name=op.f('ck_exchange_rates_rate_pos')),
    sa.CheckConstraint('currency <> base', name=op.f('ck_exchange_rates_not_base')),
    sa.PrimaryKeyConstraint('base', 'currency', 'rate_date', name=op.f('pk_exchange_rates'))
    )
    op.create_table('invoice_instalments',
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_invoice_instalments_amount_pos')),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_invoice_instalments_seq_pos')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_invoice_instalments_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('invoice_id', 'seq', name=op.f('pk_invoice_instalments'))
    )


def downgrade() -> None:
    op.drop_table('invoice_instalments')
    op.drop_table('exchange_rates')
