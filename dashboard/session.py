"""The dashboard's database session: one engine per URL and server process, the ledger version, and
``cached`` (an ``analytics`` call cached on the query, its arguments and the version of what it reads:
the money version for the money figures of :data:`analytics.db.MONEY_ONLY`, the ledger version for
everything else). The cache is one per server process, shared by every session and user.

On an embedded DuckDB file the engine opens the file only while queries run and lets go of it after
``AR_DB_IDLE_RELEASE`` seconds (:func:`analytics.db.share_file`), so the command line, backups and
imports can use the same file. While another program holds the file (an import, a generation), pages
keep showing the figures cached for the last ledger version they saw, under :data:`BUSY_NOTICE`, and
rerun by themselves when the file is free again.
"""
from __future__ import annotations

import logging
import math
import sys
import threading
import time
from typing import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import streamlit as st  # noqa: E402

from analytics import db  # noqa: E402
from analytics.errors import DatabaseBusy, UserError  # noqa: E402
from streamlit.errors import StreamlitDuplicateElementKey  # noqa: E402

log = logging.getLogger("dashboard")
#: Seconds a page waits for another program's lock on the ledger file before it shows the last figures.
READ_WAIT = 2.0
#: After the file was found busy, page runs in the next few seconds use the last version without
#: knocking again (a page run makes many reads; each would wait). The notice's poll keeps this fresh while
#: the file stays busy; any connection this process gets to the file ends it.
BUSY_MEMORY_SECONDS = 3.0
#: What pages show while another program holds the ledger file.
BUSY_NOTICE = ("New data is loading — figures as of the last load; this page refreshes when it finishes.")
#: Seconds between checks, while the notice shows, whether the file is free again.
BUSY_POLL_SECONDS = 2.0
_LAST_VERSION: dict[str, db.Versions] = {}  # per URL: the versions last read (cache entries exist for them)
_BUSY_AT: dict[str, float] = {}  # per URL: when a read last found the file busy (monotonic)


def db_url() -> str:
    return db.default_url()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> sa.Engine:
    engine = db.set_read_wait(db.connect(url), READ_WAIT)  # writes (require_writable) wait AR_DB_LOCK_WAIT
    # a connection checked out means this process has the file: it is not busy any more
    sa.event.listen(engine, "checkout", lambda *_: (_BUSY_AT.pop(url, None), _BUSY_AT.pop(db_url(), None)))
    return engine


def get_engine() -> sa.Engine:
    """The engine for the configured database URL (one per URL per server process).

    When the database cannot be reached the page shows a friendly message and a retry button and
    stops; no traceback. (A failed connection is not cached, so Retry tries again.)
    """
    url = db_url()
    try:
        with db.waiting_for_lock(_read_wait(url)):
            return _engine_for(url)
    except DatabaseBusy:  # first start while an import holds the file: nothing to show yet
        _BUSY_AT[url] = time.monotonic()
        busy_notice()
        st.stop()
    except UserError as exc:  # read-only and a table is missing: the message says which and what to do
        log.error("cannot use database %s: %s", _safe_url(url), exc)
        st.error(str(exc), icon=":material/database:")
        if st.button("Retry", key="_db_retry", icon=":material/refresh:"):
            st.rerun()
        st.stop()
    except Exception as exc:  # the database is down, the file is locked, the URL is wrong...
        log.error("cannot open database %s: %s", _safe_url(url), exc, exc_info=True)
        st.error(
            f"Cannot reach the database ({_safe_url(url)}). Check that it is running and that "
            "the address in AR_DB_URL is right.", icon=":material/cloud_off:")
        if st.button("Retry", key="_db_retry", icon=":material/refresh:"):
            st.rerun()
        st.stop()


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "configured database"


def _busy_recently(url: str) -> bool:
    return time.monotonic() - _BUSY_AT.get(url, -math.inf) < BUSY_MEMORY_SECONDS


def _read_wait(url: str) -> float:
    """How long a read waits for the file's lock now: none if it was found busy a moment ago."""
    return 0.0 if _busy_recently(url) else min(READ_WAIT, db.lock_wait_seconds())


def _current_version(engine: sa.Engine, url: str) -> db.Versions:
    """The ledger and money versions; while another program holds the file, the last ones read (with the notice).

    Raises :class:`~analytics.errors.DatabaseBusy` when the file is busy and no version was ever read.
    """
    if _busy_recently(url) and url in _LAST_VERSION:  # don't knock again: the notice's poll does
        busy_notice()
        return _LAST_VERSION[url]
    try:
        with db.waiting_for_lock(_read_wait(url)):
            version = db.versions(engine)
    except DatabaseBusy:
        if url not in _BUSY_AT:
            log.info("ledger file busy (another program holds it): showing figures cached for ledger version %s",
                     _LAST_VERSION.get(url))
        _BUSY_AT[url] = time.monotonic()
        if url not in _LAST_VERSION:
            raise
        busy_notice()
        return _LAST_VERSION[url]
    _LAST_VERSION[url] = version
    _BUSY_AT.pop(url, None)
    return version


def ledger_version() -> int:
    """The ledger version of the dashboard's database (the last one read while another program holds
    the ledger file, under :data:`BUSY_NOTICE`).

    Returns
    -------
    int

    Example
    -------
    >>> key = ("my_table", ledger_version())  # doctest: +SKIP
    """
    return _current_version(get_engine(), db_url()).ledger


def busy_notice() -> None:
    """Say (once per page run) that another program holds the ledger file and figures are the last
    ones loaded; the page reruns by itself once the file is free. Also the empty state of a page with
    nothing cached.

    Returns
    -------
    None
        Renders :data:`BUSY_NOTICE` (an info box) and a fragment that checks every
        :data:`BUSY_POLL_SECONDS` whether the file is free, then reruns the page.

    Example
    -------
    >>> try:  # doctest: +SKIP
    ...     rows = cached(kpis.snapshot, as_of, flt)
    ... except DatabaseBusy:
    ...     busy_notice()
    """
    try:
        with st.container(key="ledger_busy_notice"):
            st.info(BUSY_NOTICE, icon=":material/hourglass_top:")
            _refresh_when_free()
    except StreamlitDuplicateElementKey:  # already shown in this run
        pass


@st.fragment(run_every=BUSY_POLL_SECONDS)
def _refresh_when_free() -> None:
    """Every few seconds while the notice shows: once the file opens again, rerun the whole page."""
    url = db_url()
    try:
        with db.waiting_for_lock(0):
            db.ledger_version(_engine_for(url))
    except DatabaseBusy:  # still busy: page runs meanwhile keep showing the last figures without waiting
        _BUSY_AT[url] = time.monotonic()
        return
    except Exception:  # unreachable: the next full run says so
        return
    _BUSY_AT.pop(url, None)
    st.rerun(scope="app")


class _Miss(Exception):
    """Raised inside the cache to find out, without computing, that a key has no entry yet."""


def _missing(*_args, **_kwargs):
    raise _Miss


_COMPUTING: dict[tuple, threading.Lock] = {}  # per cache key being computed with a progress callback
_COMPUTING_GUARD = threading.Lock()


@st.cache_data(show_spinner=False, max_entries=512, ttl=6 * 3600)
def _cached_call(key: str, url: str, version: tuple, args: tuple, kwargs: tuple, _fn: Callable):
    engine = _engine_for(url)
    with engine.connect() as conn:
        return _fn(conn, *args, **dict(kwargs))


def cache_version(fn: Callable, versions: db.Versions) -> tuple[str, int]:
    """The version a cached result of ``fn`` is keyed on: the money version when ``fn`` reads only money
    tables (:func:`analytics.db.reads_money_only`), else the ledger version (every write moves it).

    Example
    -------
    >>> from analytics import kpis
    >>> cache_version(kpis.aging, db.Versions(ledger=7, money=5))
    ('money', 5)
    """
    return ("money", versions.money) if db.reads_money_only(fn) else ("ledger", versions.ledger)


def cached(fn: Callable, *args, _progress: Callable[[int, int], None] | None = None, **kwargs):
    """``fn(conn, *args, **kwargs)`` cached on the function, its arguments and the version of what it reads.

    Arguments must be hashable values (dates, strings, tuples, :class:`LedgerFilter`...). Money figures
    (functions listed in :data:`analytics.db.MONEY_ONLY`: aging, DSO, KPI snapshot, roll-forward, the
    forecast) are keyed on the money version, which an import, a cash application or an approved
    write-off moves and a logged call, promise, note or dispute does not; everything else is keyed on the
    ledger version, which every write moves. So stale results are never shown and work on an account
    recomputes only what reads work. Not keyed on any global state: two sessions (two users) with the
    same arguments share the result.

    Parameters
    ----------
    fn : callable
        A module-level ``analytics`` function taking a connection first.
    *args, **kwargs
        Its other arguments (part of the key).
    _progress : callable(done, total), optional
        Passed to ``fn`` as ``progress=`` when the result has to be computed (a progress bar); not part
        of the key, and not called at all on a hit. Concurrent sessions missing the same key compute it
        once: the others wait for it.

    Returns
    -------
    object
        ``fn``'s result (shared: do not modify it in place).

    Example
    -------
    >>> snap = cached(kpis.snapshot, as_of, flt)                               # doctest: +SKIP
    >>> bt = cached(backtest, flt, weeks=13, end=as_of, _progress=bar_update)   # doctest: +SKIP

    While another program holds the embedded ledger file, the result cached for the last ledger
    version read is returned under :data:`BUSY_NOTICE`; with nothing cached,
    :class:`~analytics.errors.DatabaseBusy` is raised (pages show the notice as their empty state).
    """
    key = f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}"
    if "<" in key:  # lambdas and local functions share a name: they would share cache entries
        raise ValueError(f"cached() needs a module-level function, got {key}")
    engine = get_engine()
    url = engine.url.render_as_string(hide_password=False)
    version = cache_version(fn, _current_version(engine, db_url()))
    call = (key, url, version, tuple(args), tuple(sorted(kwargs.items())))
    try:
        with db.waiting_for_lock(_read_wait(db_url())):  # a miss while the file is busy: DatabaseBusy
            if _progress is None:
                return _cached_call(*call, _fn=fn)
            return _with_progress(call, fn, _progress)
    except DatabaseBusy:
        _BUSY_AT[db_url()] = time.monotonic()
        raise


def _with_progress(call: tuple, fn: Callable, progress: Callable[[int, int], None]):
    """A cache lookup that, on a miss, computes outside the cache (Streamlit elements updated by the
    callback must not be recorded for replay) and then stores the result under the same key."""
    try:
        return _cached_call(*call, _fn=_missing)
    except _Miss:
        pass
    with _COMPUTING_GUARD:
        lock = _COMPUTING.setdefault(call, threading.Lock())
    with lock:  # another session computing the same key: wait for it, then read its result
        try:
            return _cached_call(*call, _fn=_missing)
        except _Miss:
            pass
        key, url, version, args, kwargs = call
        with _engine_for(url).connect() as conn:
            result = fn(conn, *args, **dict(kwargs), progress=progress)
        try:
            return _cached_call(*call, _fn=lambda *_a, **_k: result)
        finally:
            with _COMPUTING_GUARD:
                _COMPUTING.pop(call, None)


def clear_caches() -> None:
    _cached_call.clear()




def read_only() -> bool:
    """Whether the dashboard's database is read-only (``AR_DB_READONLY``, see :func:`analytics.db.is_readonly`)."""
    if db.readonly_env():
        return True
    try:
        return db.is_readonly(_engine_for(db_url()))
    except Exception:  # not reachable: get_engine() reports it on the page
        return False


def readonly_notice(what: str = "Recording work") -> None:
    """The calm note a page shows instead of its write forms on a read-only database."""
    st.info(f"{what} is switched off: this database is read-only ({db.READONLY_ENV}). Record work and load "
            "data in the operational database.", icon=":material/lock:")

