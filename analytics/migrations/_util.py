"""Helpers shared by migration scripts: integer ids that the database fills in on every backend."""
import sqlalchemy as sa
from alembic import op


def serial_id(table: str) -> sa.Column:
    """``id`` column filled by the database: a sequence default where there are sequences, else the rowid."""
    if op.get_bind().dialect.supports_sequences:
        return sa.Column("id", sa.Integer(), server_default=sa.text(f"nextval('{table}_id_seq')"), nullable=False)
    return sa.Column("id", sa.Integer(), nullable=False)


def create_sequences(*tables: str) -> None:
    if op.get_bind().dialect.supports_sequences:
        for table in tables:
            op.execute(sa.schema.CreateSequence(sa.Sequence(f"{table}_id_seq")))


def drop_sequences(*tables: str) -> None:
    if op.get_bind().dialect.supports_sequences:
        for table in tables:
            op.execute(sa.schema.DropSequence(sa.Sequence(f"{table}_id_seq")))
