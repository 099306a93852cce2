"""Alembic environment: migrations run on the connection handed over by analytics.db.init_db."""
from alembic import context
from alembic.ddl.impl import DefaultImpl

from analytics.schema import metadata

config = context.config


class DuckDBImpl(DefaultImpl):
    """Alembic knows no DuckDB dialect; its DDL is PostgreSQL-like, so the default implementation fits."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` command line: build an engine from sqlalchemy.url
        from analytics.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
