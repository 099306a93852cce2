"""Database access: engines, migrations, portable SQL helpers and bulk loading.

The same code runs on the embedded DuckDB file (default), SQLite and PostgreSQL. Everything
dialect-specific lives here, so KPI and loader modules write plain SQLAlchemy Core.

Example
-------
>>> from analytics import db
>>> engine = db.connect("duckdb:///:memory:")
>>> db.ledger_version(engine)
0
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from analytics import schema
from analytics.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = ROOT / "data" / "demo.db"
ENV_VAR = "AR_DB_URL"
#: DuckDB's memory limit (its buffer pool; it spills to ``<file>.tmp`` beyond it). DuckDB's own default is
#: 80 % of RAM, which it then keeps; 1GB was as fast or faster on every KPI query at 5M invoices
#: (docs/scale.md). Override with ``$AR_DUCKDB_MEMORY`` (any DuckDB size, e.g. ``4GB``).
DUCKDB_MEMORY_ENV = "AR_DUCKDB_MEMORY"
DUCKDB_MEMORY_DEFAULT = "1GB"


def default_url() -> str:
    """The database URL to use: ``$AR_DB_URL`` if set, else the embedded DuckDB demo file.

    Returns
    -------
    str
        A SQLAlchemy URL.

    Example
    -------
    >>> default_url().startswith(("duckdb://", "sqlite://", "postgresql"))
    True
    """
    return os.environ.get(ENV_VAR) or f"duckdb:///{DEFAULT_DB_PATH}"


def duckdb_memory_limit() -> str:
    """DuckDB memory limit for this process: ``$AR_DUCKDB_MEMORY`` or :data:`DUCKDB_MEMORY_DEFAULT`.

    >>> os.environ.pop(DUCKDB_MEMORY_ENV, None) and None; duckdb_memory_limit()
    '1GB'
    """
    return os.environ.get(DUCKDB_MEMORY_ENV, "").strip() or DUCKDB_MEMORY_DEFAULT


def make_engine(url: str | None = None, **kwargs) -> sa.Engine:
    """Create an engine for ``url`` (default :func:`default_url`) with per-dialect settings.

    DuckDB gets a memory limit (:func:`duckdb_memory_limit`) and no progress bar. SQLite gets ``PRAGMA foreign_keys=ON`` on every connection so foreign keys are enforced as on
    the other databases. PostgreSQL URLs without a driver use psycopg 3.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL. ``postgresql://`` is rewritten to ``postgresql+psycopg://``.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    sqlalchemy.Engine
    """
    url = url or default_url()
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite") or url.startswith("duckdb"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "duckdb":

        @sa.event.listens_for(engine, "connect")
        def _duckdb_settings(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.execute("SET enable_progress_bar = false")  # it writes to stderr in CLI runs
            limit = duckdb_memory_limit()
            try:
                dbapi_conn.execute("SET memory_limit = $1", [limit])
            except Exception as exc:  # duckdb.ParserException / InvalidInputException
                raise UserError(f"{DUCKDB_MEMORY_ENV}={limit!r} is not a DuckDB memory size such as 1GB or "
                                f"512MB ({exc})") from None

    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def init_db(engine: sa.Engine) -> None:
    """Bring the database schema to the newest migration (Alembic ``upgrade head``).

    Safe to call on every start: an up-to-date database is left as it is.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def connect(url: str | None = None) -> sa.Engine:
    """Engine for ``url`` with the schema migrated to head. The usual entry point.

    Example
    -------
    >>> engine = connect("sqlite://")
    >>> sorted(sa.inspect(engine).get_table_names())[:2]
    ['activities', 'adjustments']
    """
    engine = make_engine(url)
    init_db(engine)
    return engine


def connection(conn_or_engine: sa.Engine | sa.Connection):
    """Context manager yielding a Connection: a new one for an Engine (closed on exit), else the one given.

    Lets analytics functions accept either, as the dashboard passes cached connections and the CLI engines.

    Example
    -------
    >>> with connection(make_engine("sqlite://")) as conn:
    ...     conn.execute(sa.text("SELECT 1")).scalar()
    1
    """
    if isinstance(conn_or_engine, sa.Engine):
        return conn_or_engine.connect()
    return contextlib.nullcontext(conn_or_engine)


# --------------------------------------------------------------------------------------------
# Ledger version: a counter every write bumps; cache keys include it so a new import or a logged
# activity invalidates cached results.
# --------------------------------------------------------------------------------------------
_VERSION_KEY = "ledger_version"


def ledger_version(conn_or_engine: sa.Engine | sa.Connection) -> int:
    """Current ledger version (0 for an empty ledger)."""
    stmt = sa.select(schema.ledger_meta.c.value).where(schema.ledger_meta.c.key == _VERSION_KEY)
    with connection(conn_or_engine) as conn:
        value = conn.execute(stmt).scalar()
    return int(value) if value is not None else 0


def bump_ledger_version(conn: sa.Connection) -> int:
    """Increment the ledger version inside the caller's transaction; returns the new value."""
    t = schema.ledger_meta
    # Incremented in the database (not read-then-write), so concurrent writers never lose a bump.
    bumped = sa.cast(sa.cast(t.c.value, sa.Integer) + 1, sa.String(200))
    updated = conn.execute(t.update().where(t.c.key == _VERSION_KEY).values(value=bumped)).rowcount
    if not updated:
        conn.execute(t.insert().values(key=_VERSION_KEY, value="1"))
    rows = conn.execute(sa.select(t.c.value).where(t.c.key == _VERSION_KEY)).all()  # consumed (DuckDB)
    return int(rows[0][0])


def recreate_duckdb_tables(conn: sa.Connection, names: list[str]) -> None:
    """Empty DuckDB tables by dropping and re-creating them from the catalog's own DDL (with their indexes).

    DuckDB cannot delete parent rows whose children were deleted in the same transaction (its foreign-key
    checks still see them); DDL is transactional there, so this stays inside the caller's transaction.
    ``names`` are ordered children first.
    """
    in_list = ", ".join(f"'{n}'" for n in names)
    ddl = dict(conn.execute(sa.text(
        "SELECT table_name, sql FROM duckdb_tables() "
        f"WHERE schema_name = current_schema() AND table_name IN ({in_list})")).all())
    index_ddl = [r[0] for r in conn.execute(sa.text(
        f"SELECT sql FROM duckdb_indexes() WHERE schema_name = current_schema() AND table_name IN ({in_list}) "
        "AND sql IS NOT NULL ORDER BY table_name, index_name")).all()]
    present = [n for n in names if n in ddl]
    for name in present:
        conn.execute(sa.text(f'DROP TABLE "{name}"'))
    for name in reversed(present):
        conn.execute(sa.text(ddl[name]))
    for sql in index_ddl:
        conn.execute(sa.text(sql))


# --------------------------------------------------------------------------------------------
# Portable SQL constructs
# --------------------------------------------------------------------------------------------
class days_between(FunctionElement):
    """Whole days from ``start`` to ``end`` (``end - start``) as an integer, on every dialect.

    Parameters
    ----------
    start, end : SQL expressions or values of type Date.

    Example
    -------
    >>> expr = days_between(sa.literal(dt.date(2024, 1, 1)), sa.literal(dt.date(2024, 3, 1)))
    >>> with make_engine("sqlite://").connect() as conn:
    ...     conn.execute(sa.select(expr)).scalar()
    60
    """

    name = "days_between"
    type = sa.Integer()
    inherit_cache = True


def _args(element, compiler, **kw) -> tuple[str, str]:
    start, end = list(element.clauses)
    return compiler.process(start, **kw), compiler.process(end, **kw)


@compiles(days_between)
def _days_between_default(element, compiler, **kw):  # PostgreSQL, DuckDB: date - date = integer days
    start, end = _args(element, compiler, **kw)
    return f"(CAST({end} AS DATE) - CAST({start} AS DATE))"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    start, end = _args(element, compiler, **kw)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"


@compiles(days_between, "trino")
def _days_between_trino(element, compiler, **kw):
    start, end = _args(element, compiler, **kw)
    return f"date_diff('day', {start}, {end})"


@compiles(days_between, "hive")
@compiles(days_between, "databricks")
def _days_between_spark(element, compiler, **kw):
    start, end = _args(element, compiler, **kw)
    return f"datediff({end}, {start})"


def date_values(dates: Iterable[dt.date], name: str = "as_of_dates", column: str = "as_of") -> sa.Subquery:
    """A one-column table of dates, usable in FROM (for trends computed in one query).

    Built as ``SELECT :d UNION ALL ...`` with typed date parameters so it works on every dialect.
    """
    dates = list(dates)
    if not dates:
        raise ValueError("date_values needs at least one date")
    selects = [sa.select(sa.literal(d, sa.Date).label(column)) for d in dates]
    return sa.union_all(*selects).subquery(name) if len(selects) > 1 else selects[0].subquery(name)


# --------------------------------------------------------------------------------------------
# Bulk insert of frames (generator, loaders): fast path per dialect, one transaction (the caller's).
# --------------------------------------------------------------------------------------------
def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame | list[Mapping]) -> int:
    """Insert rows into ``table`` inside the caller's transaction; returns the row count.

    DuckDB inserts straight from the frame (vectorised, via Arrow); PostgreSQL uses ``COPY``;
    other dialects use ``executemany``. Columns not in ``frame`` get their defaults. Constraints
    are enforced by the database in every case.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        An open connection inside a transaction (``engine.begin()``).
    table : sqlalchemy.Table
    frame : pandas.DataFrame or list of dict
        Column names must be column names of ``table``.
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    if frame.empty:
        return 0
    unknown = set(frame.columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"unknown columns for {table.name}: {sorted(unknown)}")
    cols = list(frame.columns)
    dialect = conn.dialect.name
    if dialect == "duckdb":
        raw = conn.connection.driver_connection
        view = f"_bulk_{table.name}"
        raw.register(view, frame)
        try:
            col_sql = ", ".join(f'"{c}"' for c in cols)
            raw.execute(f'INSERT INTO "{table.name}" ({col_sql}) SELECT {col_sql} FROM {view}')
        finally:
            raw.unregister(view)
        return len(frame)
    if dialect == "postgresql":
        raw = conn.connection.driver_connection
        col_sql = ", ".join(f'"{c}"' for c in cols)
        with raw.cursor() as cur:
            with cur.copy(f'COPY "{table.name}" ({col_sql}) FROM STDIN') as copy:
                for row in frame.itertuples(index=False, name=None):
                    copy.write_row([_py(v) for v in row])
        return len(frame)
    records = [{c: _py(v) for c, v in zip(cols, row)} for row in frame.itertuples(index=False, name=None)]
    conn.execute(table.insert(), records)
    return len(records)


def _py(value):
    """Plain Python value for a driver: NaN/NaT -> None, numpy scalars -> Python, Timestamp -> date."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value
