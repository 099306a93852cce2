"""bank statements: statements, their lines, and the bank columns of receipts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

from analytics.migrations._util import create_sequences, drop_sequences, serial_id

SERIAL_TABLES = ("bank_statements", "bank_lines")
RECEIPT_COLUMNS = (
    ("payer_name", sa.String(length=200)),
    ("payer_account", sa.String(length=64)),
    ("bank_reference", sa.String(length=64)),
    ("statement_id", sa.Integer()),
)

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = set(op.get_bind().execute(sa.text('SELECT * FROM receipts LIMIT 0')).keys())
    missing = [(n, t) for n, t in RECEIPT_COLUMNS if n not in have]  # (kept by a DuckDB downgrade)
    if missing:
        with op.batch_alter_table('receipts', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))
    create_sequences(*SERIAL_TABLES)
    op.create_table('bank_statements',
    serial_id('bank_statements'),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('statement_ref', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('from_date', sa.Date(), nullable=False),
    sa.Column('to_date', sa.Date(), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=True),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.Column('loaded_by', sa.String(length=64), nullable=True),
    sa.Column('lines_new', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lines_duplicate', sa.Integer(), server_default='0', nullable=False),
    sa.Column('import_batch_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("format IN ('bai2', 'mt940', 'camt053')", name=op.f('ck_bank_statements_format')),
    sa.ForeignKeyConstraint(['import_batch_id'], ['import_batches.id'],
                            name=op.f('fk_bank_statements_import_batch_id_import_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_statements'))
    )
    op.create_table('bank_lines',
    serial_id('bank_lines'),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('line_key', sa.String(length=64), nullable=False),
    sa.Column('file_line', sa.Integer(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=True),
    sa.Column('payer_account', sa.String(length=64), nullable=True),
    sa.Column('bank_reference', sa.String(length=64), nullable=True),
    sa.Column('customer_reference', sa.String(length=64), nullable=True),
    sa.Column('type_code', sa.String(length=16), nullable=True),
    sa.Column('remittance_text', sa.Text(), nullable=True),
    sa.Column('receipt_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_bank_lines_amount_pos')),
    sa.CheckConstraint("direction IN ('credit', 'debit', 'return')", name=op.f('ck_bank_lines_direction')),
    sa.ForeignKeyConstraint(['statement_id'], ['bank_statements.id'],
                            name=op.f('fk_bank_lines_statement_id_bank_statements')),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_bank_lines_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_lines')),
    sa.UniqueConstraint('line_key', name=op.f('uq_bank_lines_line_key'))
    )
    op.create_index('ix_bank_lines_statement', 'bank_lines', ['statement_id'], unique=False)
    op.create_index('ix_bank_lines_receipt', 'bank_lines', ['receipt_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_bank_lines_receipt', table_name='bank_lines')
    op.drop_index('ix_bank_lines_statement', table_name='bank_lines')
    op.drop_table('bank_lines')
    op.drop_table('bank_statements')
    drop_sequences(*SERIAL_TABLES)
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':  # native DROP COLUMN: a batch copy of receipts trips 0005's triggers that name it
        for name, _ in reversed(RECEIPT_COLUMNS):
            op.execute(f'ALTER TABLE receipts DROP COLUMN {name}')
    elif dialect != 'duckdb':  # DuckDB cannot drop a column of a referenced table: they stay
        with op.batch_alter_table('receipts', schema=None) as batch_op:
            for name, _ in reversed(RECEIPT_COLUMNS):
                batch_op.drop_column(name)
