"""covering indexes for the as-of settlement sums (PostgreSQL)

Every as-of figure sums an item's settlements dated on or before a date
(``analytics.ledger.settled_parts``). On PostgreSQL these indexes hold exactly what that sum reads, in
item order: ``applications (invoice_id, applied_date) INCLUDE (amount_cents)`` and ``adjustments
(invoice_id, adj_date) INCLUDE (amount_cents)``, so the per-item sums stream an index-only scan
(GroupAggregate, no hashing of a million text keys, no spill) once the table is vacuumed
(``analytics.db.bulk_write`` runs ``VACUUM ANALYZE`` after a bulk load on PostgreSQL).

DuckDB and SQLite: nothing (DuckDB's ART indexes are not used for these aggregates and slow its bulk
loads; SQLite's plans for them do not change).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

#: (index name, table, key columns, included column)
INDEXES = (
    ("ix_applications_invoice_asof", "applications", ["invoice_id", "applied_date"], "amount_cents"),
    ("ix_adjustments_invoice_asof", "adjustments", ["invoice_id", "adj_date"], "amount_cents"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, cols, include in INDEXES:
        op.create_index(name, table, cols, postgresql_include=[include])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _cols, _include in INDEXES:
        op.drop_index(name, table_name=table)
