"""audit hash chain, append-only protection on every backend, sign-in guard

* ``audit_log`` gets ``prev_hash`` and ``row_hash`` (see :mod:`analytics.audit`); the rows already
  there are hashed here, in id order, so the chain covers the whole history.
* ``audit_head`` (one row): id, hash and row count of the chain's last row.
* The append-only protection is installed here, not on the first write, so a freshly generated or
  restored ledger is protected from the start: PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE
  on ``audit_log``, SQLite triggers refuse UPDATE and DELETE. DuckDB has no triggers: there the chain
  is the protection (an edit is found by ``python -m analytics audit verify``).
* ``login_throttle``: failed sign-ins per user name, counted in the database.
* ``users.must_change_password``: an account with a documented (demo) password must change it at
  first sign-in outside demo mode.

The statements and the hash function come from :mod:`analytics.audit` (``append_only_ddl``,
``row_hash``); they are part of the stored format and must not change without a new revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

import pandas as pd

from analytics import db
from analytics.audit import GENESIS, HASHED_FIELDS, append_only_ddl, row_hash


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_TRIGGERS = {
    "postgresql": ["DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
                   "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"],
    "sqlite": ["DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete"],
}


def _hash_existing_rows(conn) -> tuple[int | None, str, int]:
    """Chain the rows already in audit_log (id order); returns (last id, last hash, row count)."""
    # Typed columns: SQLite hands back DateTime as text unless the column says what it is.
    log = sa.table("audit_log", sa.column("id", sa.Integer()), sa.column("logged_at", sa.DateTime()),
                   *[sa.column(f, sa.Text()) for f in HASHED_FIELDS[1:]])
    rows = conn.execute(sa.select(*log.c).order_by(log.c.id)).mappings().all()
    prev, last_id, updates = GENESIS, None, []
    for row in rows:
        digest = row_hash(row, prev)
        updates.append({"id": row["id"], "prev_hash": prev, "row_hash": digest})
        prev, last_id = digest, row["id"]
    if updates:  # one set-based UPDATE from a scratch table (row-by-row took 140 s for 100,000 rows on DuckDB)
        scratch = sa.Table("_migration_0004_hashes", sa.MetaData(), sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
                           sa.Column("prev_hash", sa.String(64)), sa.Column("row_hash", sa.String(64)))
        scratch.create(conn)
        db.bulk_insert(conn, scratch, pd.DataFrame(updates))
        conn.execute(sa.text("UPDATE audit_log SET prev_hash = h.prev_hash, row_hash = h.row_hash "
                             "FROM _migration_0004_hashes AS h WHERE audit_log.id = h.id"))
        scratch.drop(conn)
    return last_id, prev, len(rows)


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    for stmt in _TRIGGERS.get(dialect, []):  # installed by the old "first write" path: back after hashing
        op.execute(stmt)
    op.add_column('audit_log', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_log', sa.Column('row_hash', sa.String(length=64), nullable=True))
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(),
                                     nullable=False))
    op.create_table('audit_head',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=True),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_audit_head'))
    )
    op.create_table('login_throttle',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_failure_at', sa.DateTime(), nullable=True),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_login_throttle'))
    )
    last_id, last_hash, n = _hash_existing_rows(conn)
    conn.execute(sa.text("INSERT INTO audit_head (name, last_id, last_hash, row_count) VALUES "
                         "('audit_log', :i, :h, :n)"), {"i": last_id, "h": last_hash, "n": n})
    for stmt in append_only_ddl(dialect):
        op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for stmt in _TRIGGERS.get(dialect, []):
        op.execute(stmt)
    op.drop_table('login_throttle')
    op.drop_table('audit_head')
    op.drop_column('users', 'must_change_password')
    op.drop_column('audit_log', 'row_hash')
    op.drop_column('audit_log', 'prev_hash')
    for stmt in append_only_ddl(dialect):  # 0003 installed them on the first write; keep the log protected
        op.execute(stmt)
