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

import atexit
import contextlib
import contextvars
import dataclasses
import datetime as dt
import logging
import os
import random
import threading
import time
import weakref
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from analytics import schema
from analytics.errors import DatabaseBusy, ReadOnlyDatabase, UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = ROOT / "data" / "demo.db"
ENV_VAR = "AR_DB_URL"
#: DuckDB's memory limit (its buffer pool; it spills to ``<file>.tmp`` beyond it). DuckDB's own default is
#: 80 % of RAM, which it then keeps; 1GB was as fast or faster on every KPI query at 5M invoices
#: (docs/scale.md). Override with ``$AR_DUCKDB_MEMORY`` (any DuckDB size, e.g. ``4GB``).
DUCKDB_MEMORY_ENV = "AR_DUCKDB_MEMORY"
DUCKDB_MEMORY_DEFAULT = "1GB"
#: DuckDB's memory limit while a bulk write (generator, load, backup import) runs: inserting millions of
#: rows in one transaction keeps its index entries in memory, and a 5M-invoice generation ran out of
#: memory at 1GB. Unset = DuckDB's own default (80 % of RAM) for the length of the write.
DUCKDB_BULK_MEMORY_ENV = "AR_DUCKDB_BULK_MEMORY"
#: Set to 1/true/yes to use the database read-only: no migration, no writes (a warehouse, a SELECT-only role).
READONLY_ENV = "AR_DB_READONLY"
#: Seconds a cached figure may live when a read-only database has no readable ledger version (default 300).
READONLY_TTL_ENV = "AR_READONLY_CACHE_SECONDS"
DEFAULT_READONLY_TTL = 300
#: Seconds a command (or a dashboard write) waits for another program's lock on a DuckDB file before
#: it gives up with :data:`BUSY_MESSAGE` (default 30).
LOCK_WAIT_ENV = "AR_DB_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 30.0
#: Seconds a DuckDB file stays open in this process after its last query ended (default 0.5). DuckDB
#: locks the file for the whole process while it is open, so a short idle time lets the dashboard, the
#: command line and other programs take turns on one file; a page run or a burst of queries keeps it.
IDLE_RELEASE_ENV = "AR_DB_IDLE_RELEASE"
DEFAULT_IDLE_RELEASE = 0.5
#: What a user sees when the file stayed locked longer than the wait.
BUSY_MESSAGE = "the ledger file is busy (another program is writing to it); try again"

log = logging.getLogger(__name__)


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


#: Environment variable: DuckDB worker threads per connection (default: DuckDB's own, one per core).
DUCKDB_THREADS_ENV = "AR_DUCKDB_THREADS"


def duckdb_memory_limit() -> str:
    """DuckDB memory limit for this process: ``$AR_DUCKDB_MEMORY`` or :data:`DUCKDB_MEMORY_DEFAULT`.

    >>> os.environ.pop(DUCKDB_MEMORY_ENV, None) and None; duckdb_memory_limit()
    '1GB'
    """
    return os.environ.get(DUCKDB_MEMORY_ENV, "").strip() or DUCKDB_MEMORY_DEFAULT


@contextlib.contextmanager
def bulk_write(engine: sa.Engine):
    """``engine.begin()`` for a bulk write: on DuckDB the memory limit is lifted for its length.

    The transaction holds the ledger's write lock (:func:`lock_ledger`) from its first statement, so
    two loads of the same file at once run one after the other and the second finds the first's rows.
    The limit (:func:`duckdb_memory_limit`) is a setting of the whole DuckDB database in this process;
    it goes to ``$AR_DUCKDB_BULK_MEMORY`` (default: DuckDB's own, 80 % of RAM) and back after the commit
    or rollback. PostgreSQL: after the commit, :func:`refresh_planner_statistics` (``VACUUM ANALYZE``).
    SQLite: plain ``engine.begin()``.

    Example
    -------
    >>> with bulk_write(make_engine("duckdb:///:memory:")) as conn:
    ...     conn.execute(sa.text("SELECT 1")).scalar()
    1
    """
    duck = engine.dialect.name == "duckdb"
    if duck:
        with engine.connect() as c:
            bulk = os.environ.get(DUCKDB_BULK_MEMORY_ENV, "").strip()
            c.exec_driver_sql("SET memory_limit = $1", (bulk,)) if bulk else c.exec_driver_sql("RESET memory_limit")
    try:
        with writer_lock(engine), engine.begin() as conn:
            lock_ledger(conn)
            yield conn
    finally:
        if duck:
            with engine.connect() as c:
                c.exec_driver_sql("SET memory_limit = $1", (duckdb_memory_limit(),))
    if engine.dialect.name == "postgresql":
        refresh_planner_statistics(engine)


#: The tables whose statistics and visibility the KPI queries' plans depend on (:func:`refresh_planner_statistics`).
PLANNER_TABLES = ("invoices", "applications", "adjustments", "receipts", "customers", "item_settlements")


def refresh_planner_statistics(engine: sa.Engine) -> None:
    """PostgreSQL: ``VACUUM (ANALYZE)`` the ledger's large tables after a bulk load; elsewhere nothing.

    A fresh load of a million invoices has no statistics until autovacuum gets to it (the first KPI
    queries were planned blind), and no visibility map, without which the covering indexes of
    migration 0009 cannot be read index-only. VACUUM cannot run inside a transaction, so this runs
    after the load's commit, on its own autocommit connection. A role that does not own the tables
    (the command is then skipped by PostgreSQL with a warning) or any error here leaves the load as
    it is: statistics only change plans, never results.

    Parameters
    ----------
    engine : sqlalchemy.Engine

    Example
    -------
    >>> refresh_planner_statistics(make_engine("sqlite://"))  # nothing to do on SQLite
    """
    if engine.dialect.name != "postgresql":
        return
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM (ANALYZE) " + ", ".join(PLANNER_TABLES))
    except sa.exc.SQLAlchemyError as exc:  # statistics are an optimisation: the load itself committed
        log.warning("VACUUM ANALYZE after the bulk load failed: %s", exc)


# --------------------------------------------------------------------------------------------
# One DuckDB file, several programs. DuckDB locks a file for the whole process while any connection
# to it is open (exclusively for a read-write open: another process cannot even read it). So every
# DuckDB file engine (1) closes the file once it has been idle for AR_DB_IDLE_RELEASE seconds and
# (2) waits, with backoff, up to AR_DB_LOCK_WAIT seconds for another program's lock when it opens it.
# --------------------------------------------------------------------------------------------
_LOCK_WAIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("ar_lock_wait", default=None)


def _float_env(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "").strip() or default))
    except ValueError:
        return default


def lock_wait_seconds() -> float:
    """How long opening a DuckDB file waits for another program's lock: the innermost
    :func:`waiting_for_lock`, else ``$AR_DB_LOCK_WAIT``, else :data:`DEFAULT_LOCK_WAIT` (30 s).

    Returns
    -------
    float
        Seconds (0 = one attempt, no wait).

    Example
    -------
    >>> with waiting_for_lock(2):
    ...     lock_wait_seconds()
    2.0
    """
    override = _LOCK_WAIT.get()
    return override if override is not None else _float_env(LOCK_WAIT_ENV, DEFAULT_LOCK_WAIT)


@contextlib.contextmanager
def waiting_for_lock(seconds: float):
    """Within the block (this thread / context only), opening a DuckDB file waits at most ``seconds``
    for another program's lock, then raises :class:`~analytics.errors.DatabaseBusy`.

    The dashboard reads with a short wait (it then shows the last cached figures) and writes with the
    full :func:`lock_wait_seconds`.

    Parameters
    ----------
    seconds : float
        Maximum wait; 0 tries once.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields nothing; the previous wait is back after the block.

    Example
    -------
    >>> with waiting_for_lock(0):
    ...     lock_wait_seconds()
    0.0
    """
    token = _LOCK_WAIT.set(max(0.0, float(seconds)))
    try:
        yield
    finally:
        _LOCK_WAIT.reset(token)


def idle_release_seconds() -> float:
    """Seconds an idle DuckDB file stays open in this process: ``$AR_DB_IDLE_RELEASE`` (default 0.5).

    Returns
    -------
    float
        Seconds; 0 keeps the file open until the engine is disposed (DuckDB's default).

    Example
    -------
    >>> os.environ.pop(IDLE_RELEASE_ENV, None) and None; idle_release_seconds()
    0.5
    """
    return _float_env(IDLE_RELEASE_ENV, DEFAULT_IDLE_RELEASE)


def is_lock_conflict(exc: BaseException) -> bool:
    """True when ``exc`` (or the driver error it wraps) is DuckDB refusing a file another process holds.

    Parameters
    ----------
    exc : BaseException
        A driver error or SQLAlchemy's wrapper of one.

    Returns
    -------
    bool

    Example
    -------
    >>> is_lock_conflict(OSError('IO Error: Could not set lock on file "x.db": Conflicting lock is held'))
    True
    """
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "could not set lock on file" in text or "conflicting lock is held" in text


_FILE_GUARDS: dict[str, threading.Lock] = {}
_FILE_GUARDS_LOCK = threading.Lock()


def _file_guard(path: str) -> threading.Lock:
    """One lock per file in this process: opening the file never overlaps the idle release closing it
    (DuckDB's lock is per process; a close finishing after a new open must not drop the new open's lock)."""
    key = os.path.realpath(path)
    with _FILE_GUARDS_LOCK:
        return _FILE_GUARDS.setdefault(key, threading.Lock())


_READ_WAITS: "weakref.WeakKeyDictionary[sa.Engine, float]" = weakref.WeakKeyDictionary()


def set_read_wait(engine: sa.Engine, seconds: float) -> sa.Engine:
    """Make reads through ``engine`` wait at most ``seconds`` for another program's lock on its file,
    while a write path (:func:`require_writable`, inside :func:`noting_writes`) still waits the full
    :func:`lock_wait_seconds`. The dashboard reads with a short wait and shows the last cached figures.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    seconds : float

    Returns
    -------
    sqlalchemy.Engine
        The same engine.

    Example
    -------
    >>> set_read_wait(make_engine("duckdb:///:memory:"), 2).dialect.name
    'duckdb'
    """
    _READ_WAITS[engine] = max(0.0, float(seconds))
    return engine


def _wait_for(engine: sa.Engine) -> float:
    """The lock wait for a connection opened now: :func:`waiting_for_lock`, else the engine's read
    wait unless a write path was entered, else :func:`lock_wait_seconds`."""
    if _LOCK_WAIT.get() is None and engine in _READ_WAITS and not _WRITES_SEEN.get():
        return _READ_WAITS[engine]
    return lock_wait_seconds()


def _busy(path: str, waited: float) -> DatabaseBusy:
    return DatabaseBusy(f"{BUSY_MESSAGE[:1].upper()}{BUSY_MESSAGE[1:]} (waited {waited:.0f} s for {path}; "
                        f"{LOCK_WAIT_ENV} sets how long).")


def _wait_for_file_lock(engine: sa.Engine, path: str) -> None:
    """Open the DuckDB file with retries while another process holds its lock (bounded, backoff)."""

    @sa.event.listens_for(engine, "do_connect")
    def _connect_waiting(dialect, _record, cargs, cparams):
        wait = _wait_for(engine)
        start = time.monotonic()
        delay = 0.01
        while True:
            try:
                with _file_guard(path):
                    return dialect.connect(*cargs, **cparams)
            except Exception as exc:
                if not is_lock_conflict(exc):
                    raise
                left = wait - (time.monotonic() - start)
                if left <= 0:
                    log.info("gave up waiting %.1f s for the lock on %s: %s", wait, path, exc)
                    raise _busy(path, wait) from None
                time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
                delay = min(delay * 2, 0.2)


class _IdleRelease:
    """Closes an engine's pooled DuckDB connections (so the process lets go of the file's lock) once
    none has been checked out for ``idle`` seconds. One timer thread at a time, only while idle."""

    def __init__(self, engine: sa.Engine, idle: float):
        self._engine = weakref.ref(engine)
        self._idle = idle
        self._lock = threading.Lock()
        self._out = 0
        self._last = time.monotonic()
        self._timer: threading.Timer | None = None
        self._stopped = False
        _RELEASES.add(self)  # alive while its engine or a pending timer is
        sa.event.listen(engine, "checkout", self._checkout)
        sa.event.listen(engine, "checkin", self._checkin)

    def _checkout(self, *_args) -> None:
        with self._lock:
            self._out += 1

    def _checkin(self, *_args) -> None:
        with self._lock:
            self._out = max(0, self._out - 1)
            self._last = time.monotonic()
            if self._out == 0 and self._timer is None and not self._stopped:
                self._arm(self._idle)

    def _arm(self, seconds: float) -> None:  # caller holds self._lock
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._out:
                return
            left = self._last + self._idle - time.monotonic()
            if left > 0:
                self._arm(left)
                return
        engine = self._engine()
        if engine is not None:
            with _file_guard(_duckdb_file(engine) or ""):  # no open of this file while it closes
                engine.pool.dispose()  # closes the idle connections; one checked out meanwhile is kept

    def stop(self) -> None:
        """Cancel the timer and close the idle connections now (at interpreter exit)."""
        with self._lock:
            timer, self._timer, self._stopped = self._timer, None, True
        if timer is not None:
            timer.cancel()
            timer.join(1.0)
        engine = self._engine()
        if engine is not None:
            engine.pool.dispose()


_RELEASES: "weakref.WeakSet[_IdleRelease]" = weakref.WeakSet()


@atexit.register
def _stop_idle_timers() -> None:
    """A timer thread left sleeping at exit makes DuckDB's bindings report leaks; stop them first."""
    for release in list(_RELEASES):
        release.stop()


def releases_when_idle(engine: sa.Engine) -> bool:
    """Whether ``engine`` closes its file when idle (a DuckDB file engine from :func:`make_engine`).

    Parameters
    ----------
    engine : sqlalchemy.Engine

    Returns
    -------
    bool

    Example
    -------
    >>> releases_when_idle(make_engine("duckdb:///:memory:"))
    False
    """
    return engine in _IDLE_RELEASE


_IDLE_RELEASE: "weakref.WeakKeyDictionary[sa.Engine, _IdleRelease]" = weakref.WeakKeyDictionary()


def _duckdb_file(engine: sa.Engine) -> str | None:
    """The file path of a DuckDB file engine (None for in-memory and MotherDuck databases)."""
    path = engine.url.database
    if engine.dialect.name != "duckdb" or not path or path == ":memory:" or path.startswith("md:"):
        return None
    return path


def share_file(engine: sa.Engine) -> sa.Engine:
    """Let other programs use a DuckDB file ``engine`` also uses: wait for their lock, release when idle.

    Installed by :func:`make_engine` on every DuckDB file engine; a no-op for other engines. Opening the
    file then waits (with backoff) up to :func:`lock_wait_seconds` while another process holds it and
    raises :class:`~analytics.errors.DatabaseBusy` (:data:`BUSY_MESSAGE`) after that; the pooled
    connections are closed once none has been used for :func:`idle_release_seconds`, which releases the
    file's lock (0 = keep the file open, as DuckDB does by default).

    Parameters
    ----------
    engine : sqlalchemy.Engine

    Returns
    -------
    sqlalchemy.Engine
        The same engine.

    Example
    -------
    >>> share_file(make_engine("sqlite://")).dialect.name
    'sqlite'
    """
    path = _duckdb_file(engine)
    if path is None or engine in _IDLE_RELEASE:
        return engine
    _wait_for_file_lock(engine, path)
    idle = idle_release_seconds()
    if idle > 0:
        _IDLE_RELEASE[engine] = _IdleRelease(engine, idle)
    return engine


def make_engine(url: str | None = None, **kwargs) -> sa.Engine:
    """Create an engine for ``url`` (default :func:`default_url`) with per-dialect settings.

    DuckDB gets a memory limit (:func:`duckdb_memory_limit`) and no progress bar; a DuckDB *file* is
    shared with other programs (:func:`share_file`: wait for their lock, release it when idle). SQLite gets ``PRAGMA foreign_keys=ON`` on every connection so foreign keys are enforced as on
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
            threads = os.environ.get(DUCKDB_THREADS_ENV, "").strip()
            if threads.isdigit() and int(threads) > 0:  # e.g. 1 per test worker: no threads spinning for a core
                dbapi_conn.execute(f"SET threads = {int(threads)}")
            limit = duckdb_memory_limit()
            try:
                dbapi_conn.execute("SET memory_limit = $1", [limit])
            except Exception as exc:  # duckdb.ParserException / InvalidInputException
                raise UserError(f"{DUCKDB_MEMORY_ENV}={limit!r} is not a DuckDB memory size such as 1GB or "
                                f"512MB ({exc})") from None

        share_file(engine)

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


def connect(url: str | None = None, *, migrate: bool | None = None) -> sa.Engine:
    """Engine for ``url``, migrated to head, or (read-only) with its schema checked. The usual entry point.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL (default :func:`default_url`).
    migrate : bool, optional
        ``True``: run the Alembic migrations (needs DDL rights). ``False``: do not touch the schema,
        check it instead (:func:`check_schema`). ``None`` (default): migrate unless ``$AR_DB_READONLY``
        is ``1``/``true``/``yes`` or the URL is a DuckDB file with ``?access_mode=read_only``. With
        ``$AR_DB_READONLY`` set the engine is also *read-only*
        (:func:`is_readonly`): every write through the product is refused with
        :class:`~analytics.errors.ReadOnlyDatabase`, and a DuckDB file is opened with
        ``access_mode=read_only`` (several processes may then read it at once).

    Returns
    -------
    sqlalchemy.Engine

    Raises
    ------
    UserError
        Not migrating and a required table or column is missing (the message names them).

    Example
    -------
    >>> engine = connect("sqlite://")
    >>> sorted(sa.inspect(engine).get_table_names())[:2]
    ['activities', 'adjustments']

    A warehouse with a SELECT-only role (shell): ``AR_DB_READONLY=1
    AR_DB_URL=postgresql://ar_dashboard@warehouse/ar python -m analytics kpis``; in Python
    ``connect(url, migrate=False)`` checks the schema without migrating.
    """
    url = url or default_url()
    if readonly_env():
        url = _duckdb_read_only_url(url)
    engine = make_engine(url)
    readonly = readonly_env() or _duckdb_url_read_only(engine.url)
    if migrate is None:
        migrate = not readonly
    if readonly:
        _READONLY_ENGINES.add(engine)
    if migrate:
        init_db(engine)
    else:
        report = check_schema(engine)
        _SCHEMA_REPORTS[engine] = report
        if not report.has_ledger_version:
            _NO_VERSION_ENGINES.add(engine)
    return engine


# --------------------------------------------------------------------------------------------
# Read-only databases (a warehouse, a SELECT-only role, a DuckDB file opened read_only)
# --------------------------------------------------------------------------------------------
_READONLY_ENGINES: "weakref.WeakSet[sa.Engine]" = weakref.WeakSet()
_NO_VERSION_ENGINES: "weakref.WeakSet[sa.Engine]" = weakref.WeakSet()
_SCHEMA_REPORTS: "weakref.WeakKeyDictionary[sa.Engine, SchemaReport]" = weakref.WeakKeyDictionary()

#: Tables every KPI, the operations KPIs, the risk model and the worklist read.
REQUIRED_TABLES: tuple[sa.Table, ...] = (
    schema.collectors, schema.customers, schema.invoices, schema.receipts, schema.applications,
    schema.adjustments, schema.disputes, schema.promises, schema.activities,
)
#: Tables a read-only database may lack: ``ledger_meta`` (caching falls back to a TTL, see
#: :func:`ledger_version`), ``users`` (sign-in), and those of single features (audit trail, write-off
#: proposals, cash-application queue, import history, generator ground truth).
OPTIONAL_TABLES: tuple[sa.Table, ...] = (
    schema.ledger_meta, schema.users, schema.audit_log, schema.writeoff_proposals, schema.match_proposals,
    schema.import_batches, schema.customer_truth, schema.receipt_truth,
)


def _engine_of(conn_or_engine: sa.Engine | sa.Connection) -> sa.Engine:
    """The Engine behind a Connection (or the Engine itself): read-only state is kept per engine."""
    return conn_or_engine.engine if isinstance(conn_or_engine, sa.Connection) else conn_or_engine


def readonly_env() -> bool:
    """True when ``$AR_DB_READONLY`` is ``1``, ``true`` or ``yes`` (any case)."""
    return os.environ.get(READONLY_ENV, "").strip().lower() in ("1", "true", "yes")


def _duckdb_url_read_only(url: sa.engine.URL) -> bool:
    return url.get_backend_name() == "duckdb" and str(url.query.get("access_mode", "")).lower() == "read_only"


def _duckdb_read_only_url(url: str) -> str:
    """A DuckDB file URL with ``access_mode=read_only`` added (other URLs unchanged)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url
    if parsed.get_backend_name() != "duckdb" or not parsed.database or parsed.database == ":memory:":
        return url
    if "access_mode" in parsed.query:
        return url
    return parsed.update_query_dict({"access_mode": "read_only"}).render_as_string(hide_password=False)


def is_readonly(conn_or_engine: sa.Engine | sa.Connection | None = None) -> bool:
    """Whether writes are switched off: ``$AR_DB_READONLY`` is set, or the engine was opened read-only.

    An engine is read-only when :func:`connect` made it with ``$AR_DB_READONLY`` set, or it is a DuckDB
    URL with ``?access_mode=read_only``.

    Example
    -------
    >>> is_readonly(make_engine("duckdb:///:memory:")) == readonly_env()
    True
    """
    if readonly_env():
        return True
    if conn_or_engine is None:
        return False
    engine = _engine_of(conn_or_engine)
    return engine in _READONLY_ENGINES or _duckdb_url_read_only(engine.url)


def readonly_message(action: str | None = None) -> str:
    """The one sentence users see when a write is refused on a read-only database."""
    what = f": cannot {action}" if action else ""
    return (f"this database is read-only ({READONLY_ENV}){what}. Record work and load data in the "
            "operational database; this one is for reading.")


def require_writable(conn_or_engine: sa.Engine | sa.Connection, action: str | None = None) -> None:
    """Raise :class:`~analytics.errors.ReadOnlyDatabase` when :func:`is_readonly`; the check every
    write path makes first (workflow writes, loads, generation, users, cash application, backups).

    Example
    -------
    >>> require_writable(make_engine("sqlite://"), "log an activity")  # writable: no error
    """
    seen = _WRITES_SEEN.get()
    if seen is not None:
        seen.append(action or "write")
    if is_readonly(conn_or_engine):
        raise ReadOnlyDatabase(readonly_message(action))


_WRITES_SEEN: contextvars.ContextVar[list | None] = contextvars.ContextVar("ar_writes_seen", default=None)


@contextlib.contextmanager
def noting_writes():
    """Within the block, collect the actions of the write paths entered (each calls
    :func:`require_writable` first). The dashboard uses it to tell a refused write (say "try again")
    from a read (show the last figures) when the ledger file is busy.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields the list of actions (empty when the block only read).

    Example
    -------
    >>> with noting_writes() as writes:
    ...     require_writable(make_engine("sqlite://"), "add users")
    >>> writes
    ['add users']
    """
    seen: list[str] = []
    token = _WRITES_SEEN.set(seen)
    try:
        yield seen
    finally:
        _WRITES_SEEN.reset(token)


@dataclasses.dataclass(frozen=True)
class SchemaReport:
    """What :func:`check_schema` found: optional tables that are missing (the required ones are all there)."""

    missing_optional: tuple[str, ...]

    @property
    def has_ledger_version(self) -> bool:
        return schema.ledger_meta.name not in self.missing_optional

    @property
    def has_users(self) -> bool:
        return schema.users.name not in self.missing_optional


def missing_tables(conn_or_engine: sa.Engine | sa.Connection) -> tuple[str, ...]:
    """Optional tables :func:`connect` found missing or unreadable (only when it checked instead of
    migrating; empty otherwise). Pages use it to leave out what the warehouse does not have."""
    engine = _engine_of(conn_or_engine)
    report = _SCHEMA_REPORTS.get(engine)
    return report.missing_optional if report is not None else ()


def _probe(conn: sa.Connection, stmt) -> bool:
    """Run a ``LIMIT 0`` probe; False (and the failed transaction rolled back) when it fails."""
    try:
        conn.execute(stmt).all()
        return True
    except sa.exc.DBAPIError:
        conn.rollback()  # PostgreSQL: a failed statement aborts the transaction
        return False


def _table_problems(conn: sa.Connection, table: sa.Table) -> str | None:
    """None when every column of ``table`` can be read, else what is wrong ("missing", or its columns)."""
    if _probe(conn, sa.select(*table.c).limit(0)):
        return None
    if not _probe(conn, sa.select(sa.literal_column("1")).select_from(table).limit(0)):
        return "missing"
    missing = [c.name for c in table.c if not _probe(conn, sa.select(c).limit(0))]
    return f"missing columns {', '.join(missing)}" if missing else "not readable"


def check_schema(engine: sa.Engine, required: tuple[sa.Table, ...] = REQUIRED_TABLES,
                 optional: tuple[sa.Table, ...] = OPTIONAL_TABLES) -> SchemaReport:
    """Check, without changing anything, that the tables and columns the product reads exist.

    One ``SELECT <every column> FROM <table> LIMIT 0`` per table (no rows are read, so it is cheap on
    any warehouse); when one fails, the table and then each column are probed to say what is missing.
    Used by :func:`connect` instead of migrating when the database is read-only.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    required : tuple of sqlalchemy.Table
        Default :data:`REQUIRED_TABLES` (ledger, disputes, promises, activities, collectors).
    optional : tuple of sqlalchemy.Table
        Default :data:`OPTIONAL_TABLES`; only whether each is readable is reported.

    Returns
    -------
    SchemaReport

    Raises
    ------
    UserError
        Naming every missing required table / column, and the setting (``AR_DB_READONLY``).

    Example
    -------
    >>> check_schema(connect("sqlite://")).missing_optional
    ()
    """
    problems: list[str] = []
    missing_optional: list[str] = []
    with engine.connect() as conn:
        for table in required:
            found = _table_problems(conn, table)
            if found:
                problems.append(f"{table.name} ({found})")
        for table in optional:
            if not _probe(conn, sa.select(*table.c).limit(0)):
                missing_optional.append(table.name)
    if problems:
        safe = engine.url.render_as_string(hide_password=True)
        raise UserError(
            f"database {safe} is not migrated here ({READONLY_ENV} is set, or migrate=False) and lacks what the "
            f"product reads: {'; '.join(problems)}. Create these tables or views with the columns of "
            "analytics/schema.py (see docs/scale.md), or unset AR_DB_READONLY to let the product migrate a "
            "database it may write.")
    return SchemaReport(tuple(missing_optional))


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
    """Current ledger version (0 for an empty ledger): part of every cache key.

    On a read-only database whose ``ledger_meta`` table is missing (seen by :func:`connect`) or has no
    ``ledger_version`` row, nothing can bump a version, so a *time bucket* is returned instead: a negative
    number that changes every ``$AR_READONLY_CACHE_SECONDS`` (default 300 s). Cached figures are then at
    most that old. An ETL that refreshes the warehouse and bumps ``ledger_meta`` gets exact invalidation.

    Example
    -------
    >>> ledger_version(connect("sqlite://"))
    0
    """
    engine = _engine_of(conn_or_engine)
    if engine in _NO_VERSION_ENGINES:
        return _time_bucket()
    stmt = sa.select(schema.ledger_meta.c.value).where(schema.ledger_meta.c.key == _VERSION_KEY)
    with connection(conn_or_engine) as conn:
        value = conn.execute(stmt).scalar()
    if value is None and is_readonly(engine):
        return _time_bucket()
    return int(value) if value is not None else 0


def readonly_ttl() -> int:
    """Seconds per cache time bucket on a read-only database without a ledger version (>= 1)."""
    try:
        return max(1, int(os.environ.get(READONLY_TTL_ENV, DEFAULT_READONLY_TTL)))
    except ValueError:
        return DEFAULT_READONLY_TTL


def _time_bucket() -> int:
    return -(int(time.time()) // readonly_ttl()) - 1


def bump_ledger_version(conn: sa.Connection, money: bool = True) -> int:
    """Increment the ledger version inside the caller's transaction; returns the new value.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        Inside the write's transaction.
    money : bool
        True (the default, always safe) when the write may change a money table (:data:`MONEY_TABLES`:
        an import, a cash application, an approved write-off...): the money version moves too, so cached
        money figures (:data:`MONEY_ONLY`) are recomputed. False for work on an account that leaves
        every money table as it was (a call, a note, a promise, a dispute, a write-off proposal).
        With ``money=True`` the derived settlement summary is brought up to date here too
        (:func:`analytics.summaries.refresh`).

    Returns
    -------
    int
        The new ledger version.

    Example
    -------
    >>> engine = connect("sqlite://")
    >>> with engine.begin() as conn:
    ...     bump_ledger_version(conn, money=False)
    1
    """
    t = schema.ledger_meta
    # Incremented in the database (not read-then-write), so concurrent writers never lose a bump.
    bumped = sa.cast(sa.cast(t.c.value, sa.Integer) + 1, sa.String(200))
    updated = conn.execute(t.update().where(t.c.key == _VERSION_KEY).values(value=bumped)).rowcount
    if not updated:
        conn.execute(t.insert().values(key=_VERSION_KEY, value="1"))
    rows = conn.execute(sa.select(t.c.value).where(t.c.key == _VERSION_KEY)).all()  # consumed (DuckDB)
    version = int(rows[0][0])
    if money:
        mark_money_changed(conn, version)
        from analytics import summaries  # (imports analytics.ledger, which imports this module)

        summaries.refresh(conn)  # the derived settlement summary moves in the same transaction
    return version


# --------------------------------------------------------------------------------------------
# What a write changed: the money version. Cached money figures (aging, DSO, KPI snapshot, roll-forward)
# are keyed on it instead of the ledger version, so a logged call or promise does not recompute them.
# --------------------------------------------------------------------------------------------
_MONEY_KEY = "money_version"
#: Tables whose rows make the money figures. A write to any of them must bump with ``money=True``.
MONEY_TABLES = frozenset({"customers", "collectors", "invoices", "receipts", "applications", "adjustments",
                          "import_batches", "ledger_meta", "invoice_instalments", "exchange_rates",
                          "bank_statements", "bank_lines",
                          "item_settlements", "settlement_summary_state"})  # derived, moved with them
#: ``module:qualname`` of the functions whose result depends only on :data:`MONEY_TABLES` (checked by
#: tests/test_cache.py, which runs each one and reads the tables its SQL names): the dashboard caches them
#: on the money version. Anything not listed is keyed on the ledger version (every write).
MONEY_ONLY = frozenset({
    "analytics.kpis.ar:aging", "analytics.kpis.ar:aging_trend", "analytics.kpis.ar:aging_detail",
    "analytics.kpis.ar:kpi_trend", "analytics.kpis.ar:snapshot", "analytics.ledger:main_currency",
    "analytics.kpis.ar:cei", "analytics.kpis.ar:roll_rates", "analytics.kpis.ar:provision_matrix",
    "analytics.kpis.ar:payment_days", "analytics.kpis.ar:latest_date",
    "analytics.cash_app.reports:rollforward", "analytics.cash_app.reports:unapplied_aging",
    "analytics.cash_app.reports:ledger_integrity",
    "analytics.forecast.data:actual_receipts", "analytics.forecast.data:open_by_customer",
    "analytics.forecast.api:backtest", "analytics.forecast.api:forecast",
})


@dataclasses.dataclass(frozen=True)
class Versions:
    """The two cache versions of a ledger (see :func:`versions`)."""

    ledger: int
    money: int


def mark_money_changed(conn: sa.Connection, version: int) -> None:
    """Record, inside the caller's transaction, that money tables changed at ledger version ``version``.

    Example
    -------
    >>> engine = connect("sqlite://")
    >>> with engine.begin() as conn:
    ...     mark_money_changed(conn, bump_ledger_version(conn, money=False))
    """
    t = schema.ledger_meta
    if not conn.execute(t.update().where(t.c.key == _MONEY_KEY).values(value=str(version))).rowcount:
        conn.execute(t.insert().values(key=_MONEY_KEY, value=str(version)))


def versions(conn_or_engine: sa.Engine | sa.Connection) -> Versions:
    """The ledger version and the money version, in one query.

    The money version is the ledger version of the last write that touched a money table; it is never
    above the ledger version. Without a money version row (a ledger written before it existed, a
    warehouse whose ETL bumps only ``ledger_version``) it is the ledger version, so nothing goes stale.

    Returns
    -------
    Versions
        ``ledger`` (every write moves it, :func:`ledger_version`) and ``money``.

    Example
    -------
    >>> versions(connect("sqlite://"))
    Versions(ledger=0, money=0)
    """
    engine = _engine_of(conn_or_engine)
    if engine in _NO_VERSION_ENGINES:
        bucket = _time_bucket()
        return Versions(bucket, bucket)
    t = schema.ledger_meta
    stmt = sa.select(t.c.key, t.c.value).where(t.c.key.in_((_VERSION_KEY, _MONEY_KEY)))
    with connection(conn_or_engine) as conn:
        values = dict(conn.execute(stmt).all())
    if values.get(_VERSION_KEY) is None:
        if is_readonly(engine):
            bucket = _time_bucket()
            return Versions(bucket, bucket)
        return Versions(0, 0)
    ledger = int(values[_VERSION_KEY])
    money = values.get(_MONEY_KEY)
    money = int(money) if money is not None and 0 <= int(money) <= ledger else ledger
    return Versions(ledger, money)


def reads_money_only(fn) -> bool:
    """Whether ``fn``'s result depends only on :data:`MONEY_TABLES` (it is listed in :data:`MONEY_ONLY`).

    Example
    -------
    >>> from analytics import kpis
    >>> from analytics.kpis import operations
    >>> reads_money_only(kpis.aging), reads_money_only(operations.dispute_stats)
    (True, False)
    """
    return f"{fn.__module__}:{getattr(fn, '__qualname__', '')}" in MONEY_ONLY


_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()
_NO_LOCK = contextlib.nullcontext()


def writer_lock(engine: sa.Engine):
    """A lock that queues this process's writes to one DuckDB database (a no-op context elsewhere).

    DuckDB is optimistic: two transactions that update the same row conflict and one fails. Within a
    process, writes to the same database file (whatever engine they use) wait for each other here
    instead; other processes are kept out by DuckDB's own file lock. PostgreSQL and SQLite queue on
    :func:`lock_ledger`.

    Example
    -------
    >>> with writer_lock(make_engine("duckdb:///:memory:")):
    ...     pass
    """
    if not isinstance(engine, sa.Engine) or engine.dialect.name != "duckdb":
        return _NO_LOCK
    key = str(engine.url.database or "")
    if key in ("", ":memory:"):
        key = f"memory:{id(engine)}"
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.Lock())


#: Key of PostgreSQL's transaction-scoped advisory lock that money writes queue on ("ARLW").
LEDGER_LOCK_KEY = 0x41524C57


def lock_ledger(conn: sa.Connection) -> None:
    """Take the ledger's write lock for the rest of the caller's transaction. Call it FIRST.

    Every check-then-write (apply cash, accept a proposal, approve a write-off, open a dispute,
    record a promise...) must read the amounts it checks only after this, so two users at the same
    instant are put one after the other and the second one's check sees the first one's rows:

    * PostgreSQL: ``pg_advisory_xact_lock`` (held until commit or rollback); under READ COMMITTED
      every later statement of the transaction sees what the previous holder committed.
    * SQLite: ``BEGIN IMMEDIATE`` — the database's write lock from the start (waits up to the
      connection's ``busy_timeout``), so no other writer can commit between check and write.
    * DuckDB (optimistic): the transaction updates the ``ledger_meta`` version row at once; a
      concurrent writer's update of that row is a write-write conflict, its transaction fails and
      :func:`analytics.workflow.retry_on_conflict` re-runs it from the start on a fresh snapshot.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        Just opened by ``engine.begin()``; nothing executed on it yet (SQLite needs that).

    Example
    -------
    >>> engine = connect("sqlite://")
    >>> with engine.begin() as conn:
    ...     lock_ledger(conn)
    """
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})
    elif name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        meta = schema.ledger_meta
        touched = conn.execute(meta.update().where(meta.c.key == "ledger_version")
                               .values(value=meta.c.value)).rowcount
        if not touched:
            conn.execute(meta.insert().values(key="ledger_version", value="0"))


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


def read_frame(conn: sa.Connection, stmt, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run ``stmt`` and return its rows as a DataFrame (``columns`` names them; default the result's keys).

    Rows become plain tuples first: handed SQLAlchemy ``Row`` objects, pandas probes each one with
    ``hasattr``, which a Row answers through a failing key lookup, 10x the cost of the conversion (20 s of
    a worklist at 1M invoices).

    Example
    -------
    >>> with connect("sqlite://").connect() as conn:
    ...     read_frame(conn, sa.select(sa.literal(1).label("one"))).to_dict("records")
    [{'one': 1}]
    """
    result = conn.execute(stmt)
    names = list(columns) if columns is not None else list(result.keys())
    return pd.DataFrame.from_records([tuple(r) for r in result.fetchall()], columns=names)


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
