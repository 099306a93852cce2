"""dunning history: runs, notices and the items they listed, dunning blocks, customer e-mail

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

from analytics.migrations._util import create_sequences, drop_sequences, serial_id

SERIAL_TABLES = ("dunning_blocks", "dunning_runs", "dunning_notices")


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if 'email' not in op.get_bind().execute(sa.text('SELECT * FROM customers LIMIT 0')).keys():
        with op.batch_alter_table('customers', schema=None) as batch_op:  # (kept by a DuckDB downgrade)
            batch_op.add_column(sa.Column('email', sa.String(length=200), nullable=True))
    create_sequences(*SERIAL_TABLES)
    op.create_table('dunning_blocks',
    serial_id('dunning_blocks'),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('blocked_by', sa.String(length=64), nullable=False),
    sa.Column('blocked_at', sa.DateTime(), nullable=False),
    sa.Column('released_by', sa.String(length=64), nullable=True),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_dunning_blocks_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_dunning_blocks_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_blocks'))
    )
    op.create_index('ix_dunning_blocks_customer', 'dunning_blocks', ['customer_id'], unique=False)
    op.create_table('dunning_runs',
    serial_id('dunning_runs'),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('procedure', sa.String(length=200), nullable=False),
    sa.Column('notices', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_runs'))
    )
    op.create_table('dunning_notices',
    serial_id('dunning_notices'),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('activity_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('level >= 1', name=op.f('ck_dunning_notices_level_pos')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_dunning_notices_amount_pos')),
    sa.CheckConstraint("channel IN ('email', 'file')", name=op.f('ck_dunning_notices_channel')),
    sa.CheckConstraint("status IN ('pending', 'sent', 'produced', 'failed')", name=op.f('ck_dunning_notices_status')),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_dunning_notices_activity_id_activities')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_dunning_notices_customer_id_customers')),
    sa.ForeignKeyConstraint(['run_id'], ['dunning_runs.id'], name=op.f('fk_dunning_notices_run_id_dunning_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_notices')),
    sa.UniqueConstraint('customer_id', 'currency', 'as_of', name=op.f('uq_dunning_notices_customer_id'))
    )
    op.create_index('ix_dunning_notices_run', 'dunning_notices', ['run_id'], unique=False)
    op.create_table('dunning_notice_items',
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('level_before', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('days_past_due', sa.Integer(), nullable=False),
    sa.Column('open_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('level >= level_before', name=op.f('ck_dunning_notice_items_level_raised')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_dunning_notice_items_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['notice_id'], ['dunning_notices.id'], name=op.f('fk_dunning_notice_items_notice_id_dunning_notices')),
    sa.PrimaryKeyConstraint('notice_id', 'invoice_id', name=op.f('pk_dunning_notice_items'))
    )
    op.create_index('ix_dunning_notice_items_invoice', 'dunning_notice_items', ['invoice_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dunning_notice_items_invoice', table_name='dunning_notice_items')
    op.drop_table('dunning_notice_items')
    op.drop_index('ix_dunning_notices_run', table_name='dunning_notices')
    op.drop_table('dunning_notices')
    op.drop_table('dunning_runs')
    op.drop_index('ix_dunning_blocks_customer', table_name='dunning_blocks')
    op.drop_table('dunning_blocks')
    drop_sequences(*SERIAL_TABLES)
    if op.get_bind().dialect.name != 'duckdb':  # DuckDB cannot drop a column of a referenced table: it stays
        with op.batch_alter_table('customers', schema=None) as batch_op:
            batch_op.drop_column('email')
