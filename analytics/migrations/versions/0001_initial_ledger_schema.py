"""initial ledger schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from analytics.migrations._util import create_sequences, drop_sequences, serial_id


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


# Tables whose integer ids the database fills in.
SERIAL_TABLES = ("applications", "adjustments", "disputes", "promises", "activities", "audit_log", "import_batches")


def upgrade() -> None:
    create_sequences(*SERIAL_TABLES)
    op.create_table('audit_log',
    serial_id('audit_log'),
    sa.Column('logged_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('row_id', sa.String(length=64), nullable=True),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_table('collectors',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collectors'))
    )
    op.create_table('import_batches',
    serial_id('import_batches'),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=True),
    sa.Column('rows_inserted', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rows_skipped', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches'))
    )
    op.create_table('ledger_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ledger_meta'))
    )
    op.create_table('customers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('business_unit', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('credit_limit_cents', sa.BigInteger(), nullable=True),
    sa.Column('payment_terms_days', sa.Integer(), server_default='30', nullable=False),
    sa.Column('collector_id', sa.String(length=32), nullable=True),
    sa.Column('paperless', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('paperless_since', sa.Date(), nullable=True),
    sa.Column('customer_since', sa.Date(), nullable=True),
    sa.CheckConstraint('credit_limit_cents IS NULL OR credit_limit_cents >= 0', name=op.f('ck_customers_credit_limit_nonneg')),
    sa.CheckConstraint('payment_terms_days >= 0', name=op.f('ck_customers_terms_nonneg')),
    sa.ForeignKeyConstraint(['collector_id'], ['collectors.id'], name=op.f('fk_customers_collector_id_collectors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('collector_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'collector', 'finance')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['collector_id'], ['collectors.id'], name=op.f('fk_users_collector_id_collectors')),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_users'))
    )
    op.create_table('customer_truth',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('segment', sa.String(length=32), nullable=False),
    sa.Column('mean_days_late', sa.Float(), nullable=False),
    sa.Column('sd_days_late', sa.Float(), nullable=False),
    sa.Column('drift_days_per_year', sa.Float(), nullable=False),
    sa.Column('default_probability', sa.Float(), nullable=False),
    sa.Column('partial_payment_rate', sa.Float(), nullable=False),
    sa.Column('dispute_rate', sa.Float(), nullable=False),
    sa.CheckConstraint("segment IN ('early', 'on_time', 'chronic_late', 'deteriorating', 'defaulting')", name=op.f('ck_customer_truth_segment')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_truth_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_truth'))
    )
    op.create_table('invoices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('doc_type', sa.String(length=16), server_default='invoice', nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('import_batch_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("(doc_type = 'credit_memo' AND amount_cents < 0) OR (doc_type <> 'credit_memo' AND amount_cents > 0)", name=op.f('ck_invoices_amount_sign')),
    sa.CheckConstraint("doc_type IN ('invoice', 'credit_memo', 'debit_memo')", name=op.f('ck_invoices_doc_type')),
    sa.CheckConstraint('due_date >= invoice_date', name=op.f('ck_invoices_due_after_invoice')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_invoices_customer_id_customers')),
    sa.ForeignKeyConstraint(['import_batch_id'], ['import_batches.id'], name=op.f('fk_invoices_import_batch_id_import_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_invoices_invoice_date', ['invoice_date'], unique=False)

    op.create_table('receipts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('receipt_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('method', sa.String(length=16), server_default='eft', nullable=False),
    sa.Column('remittance_ref', sa.Text(), nullable=True),
    sa.Column('import_batch_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("method IN ('check', 'eft', 'wire', 'card', 'other')", name=op.f('ck_receipts_method')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_receipts_amount_pos')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_receipts_customer_id_customers')),
    sa.ForeignKeyConstraint(['import_batch_id'], ['import_batches.id'], name=op.f('fk_receipts_import_batch_id_import_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index('ix_receipts_customer', ['customer_id'], unique=False)

    op.create_table('activities',
    serial_id('activities'),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('collector_id', sa.String(length=32), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("type IN ('call', 'email', 'letter', 'portal', 'escalation', 'note')", name=op.f('ck_activities_type')),
    sa.ForeignKeyConstraint(['collector_id'], ['collectors.id'], name=op.f('fk_activities_collector_id_collectors')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_activities_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_activities_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index('ix_activities_customer', ['customer_id'], unique=False)

    op.create_table('adjustments',
    serial_id('adjustments'),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('adj_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint("kind IN ('write_off', 'adjustment', 'deduction')", name=op.f('ck_adjustments_kind')),
    sa.CheckConstraint('amount_cents <> 0', name=op.f('ck_adjustments_amount_nonzero')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_adjustments_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustments'))
    )
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.create_index('ix_adjustments_invoice', ['invoice_id'], unique=False)

    op.create_table('applications',
    serial_id('applications'),
    sa.Column('receipt_id', sa.String(length=64), nullable=True),
    sa.Column('credit_memo_id', sa.String(length=64), nullable=True),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('applied_date', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=16), server_default='import', nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=True),
    sa.Column('applied_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint('(receipt_id IS NOT NULL AND credit_memo_id IS NULL) OR (receipt_id IS NULL AND credit_memo_id IS NOT NULL)', name=op.f('ck_applications_one_source')),
    sa.CheckConstraint('amount_cents <> 0', name=op.f('ck_applications_amount_nonzero')),
    sa.ForeignKeyConstraint(['credit_memo_id'], ['invoices.id'], name=op.f('fk_applications_credit_memo_id_invoices')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_applications_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_applications_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applications'))
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index('ix_applications_invoice', ['invoice_id'], unique=False)
        batch_op.create_index('ix_applications_receipt', ['receipt_id'], unique=False)

    op.create_table('disputes',
    serial_id('disputes'),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('opened_date', sa.Date(), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('resolved_date', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('credit_issued', 'customer_paid', 'written_off', 'rejected', 'withdrawn')", name=op.f('ck_disputes_outcome')),
    sa.CheckConstraint('(resolved_date IS NULL) = (outcome IS NULL)', name=op.f('ck_disputes_resolved_has_outcome')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_disputes_amount_pos')),
    sa.CheckConstraint('resolved_date IS NULL OR resolved_date >= opened_date', name=op.f('ck_disputes_resolved_after_opened')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_disputes_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_disputes_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index('ix_disputes_customer', ['customer_id'], unique=False)

    op.create_table('promises',
    serial_id('promises'),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=True),
    sa.Column('made_on', sa.Date(), nullable=False),
    sa.Column('promised_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_promises_amount_pos')),
    sa.CheckConstraint('promised_date >= made_on', name=op.f('ck_promises_promised_after_made')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_promises_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_promises_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promises'))
    )
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.create_index('ix_promises_customer', ['customer_id'], unique=False)



def downgrade() -> None:
    drop_sequences(*SERIAL_TABLES)
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.drop_index('ix_promises_customer')

    op.drop_table('promises')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index('ix_disputes_customer')

    op.drop_table('disputes')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('ix_applications_receipt')
        batch_op.drop_index('ix_applications_invoice')

    op.drop_table('applications')
    with op.batch_alter_table('adjustments', schema=None) as batch_op:
        batch_op.drop_index('ix_adjustments_invoice')

    op.drop_table('adjustments')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index('ix_activities_customer')

    op.drop_table('activities')
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_receipts_customer')

    op.drop_table('receipts')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_invoice_date')
        batch_op.drop_index('ix_invoices_customer')

    op.drop_table('invoices')
    op.drop_table('customer_truth')
    op.drop_table('users')
    op.drop_table('customers')
    op.drop_table('ledger_meta')
    op.drop_table('import_batches')
    op.drop_table('collectors')
    op.drop_table('audit_log')
