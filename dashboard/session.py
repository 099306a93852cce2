"""The dashboard's database session: one engine per URL and server process, the ledger version, and
``cached`` (an ``analytics`` call cached on the query, its arguments and the ledger version).
"""
from __future__ import annotations

import logging
import sys
from typing import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import streamlit as st  # noqa: E402

from analytics import db  # noqa: E402
from analytics.errors import UserError  # noqa: E402

log = logging.getLogger("dashboard")


def db_url() -> str:
    return db.default_url()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> sa.Engine:
    return db.connect(url)


def get_engine() -> sa.Engine:
    """The engine for the configured database URL (one per URL per server process).

    When the database cannot be reached the page shows a friendly message and a retry button and
    stops; no traceback. (A failed connection is not cached, so Retry tries again.)
    """
    url = db_url()
    try:
        return _engine_for(url)
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


def ledger_version() -> int:
    return db.ledger_version(get_engine())


@st.cache_data(show_spinner=False, max_entries=512, ttl=6 * 3600)
def _cached_call(key: str, url: str, version: int, args: tuple, kwargs: tuple, _fn: Callable):
    engine = _engine_for(url)
    with engine.connect() as conn:
        return _fn(conn, *args, **dict(kwargs))


def cached(fn: Callable, *args, **kwargs):
    """``fn(conn, *args, **kwargs)`` cached on the function, its arguments and the ledger version.

    Arguments must be hashable values (dates, strings, tuples, :class:`LedgerFilter`...). A new
    import or a logged activity bumps the ledger version, so stale results are never shown. Not
    keyed on any global state: two sessions with the same arguments share the result.
    """
    key = f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}"
    if "<" in key:  # lambdas and local functions share a name: they would share cache entries
        raise ValueError(f"cached() needs a module-level function, got {key}")
    engine = get_engine()
    version = db.ledger_version(engine)
    url = engine.url.render_as_string(hide_password=False)
    return _cached_call(key, url, version, tuple(args), tuple(sorted(kwargs.items())), _fn=fn)


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

