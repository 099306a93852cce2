"""What a page tells its user: errors without tracebacks, empty states, one-shot messages after a write.
"""
from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Callable

import sqlalchemy as sa
import streamlit as st

from analytics import db
from analytics.errors import DatabaseBusy, UserError
from dashboard.formatting import plain
from dashboard.session import busy_notice, read_only

log = logging.getLogger("dashboard")
# Tests set this so a bug in a page surfaces as an exception (AppTest.exception) instead of the
# friendly box users see.
RAISE_ENV = "AR_DASHBOARD_RAISE"
GENERIC_ERROR = "Something went wrong while preparing this view."


def _raise_in_tests() -> bool:
    return os.environ.get(RAISE_ENV, "") not in ("", "0")


def attempt(fn: Callable, *args, **kwargs) -> tuple[bool, Any]:
    """Call ``fn``; returns ``(True, result)``, or ``(False, None)`` after showing why it failed.

    A :class:`UserError` is shown as it is (it is written for people). While another program holds
    the ledger file (:class:`~analytics.errors.DatabaseBusy`) a write says "busy; try again" and a read
    shows the "new data is loading" notice (:func:`~dashboard.session.busy_notice`). On a read-only database a
    write the database itself refused (permission denied, read-only transaction) is shown as
    "this database is read-only". Anything else shows a short message with a reference; the
    traceback goes to the server log, never to the page.
    """
    try:
        with db.noting_writes() as writes:
            return True, fn(*args, **kwargs)
    except DatabaseBusy as exc:  # another program holds the ledger file longer than the wait
        if writes:  # a write path was entered: nothing was written, say so plainly
            st.error(str(exc), icon=":material/hourglass_top:")
        else:  # a read with nothing cached: the notice is the page's empty state
            busy_notice()
    except UserError as exc:
        st.error(plain(str(exc)), icon=":material/error:")  # messages quote cells and ids: never Markdown
    except sa.exc.DBAPIError as exc:
        if _readonly_refusal(exc):
            log.warning("write refused by a read-only database: %s", exc)
            st.error(db.readonly_message()[:1].upper() + db.readonly_message()[1:], icon=":material/lock:")
        elif isinstance(exc, sa.exc.OperationalError):
            if _raise_in_tests():
                raise
            log.error("database error: %s", exc, exc_info=True)
            st.error("The database did not answer. Check that it is running, then try again.",
                     icon=":material/cloud_off:")
        else:
            _unexpected()
    except Exception:
        _unexpected()
    return False, None


def _readonly_refusal(exc: sa.exc.DBAPIError) -> bool:
    """A write refused because the database (or the role) is read-only, on a read-only database."""
    text = str(getattr(exc, "orig", exc)).lower()
    return read_only() and any(s in text for s in (
        "permission denied", "read-only", "read only", "readonly", "insufficient privilege", "access denied"))


def _unexpected() -> None:
    if _raise_in_tests():
        raise
    ref = uuid.uuid4().hex[:8]
    log.exception("unexpected error (ref %s)", ref)
    st.error(f"{GENERIC_ERROR} The details are in the server log (reference {ref}).",
             icon=":material/error:")


def run_safely(fn: Callable, *args, **kwargs):
    """Like :func:`attempt` but returns only ``fn``'s result (None when it failed)."""
    return attempt(fn, *args, **kwargs)[1]


def empty_state(message: str) -> None:
    """A calm note for an empty result ("No open disputes for this filter")."""
    st.info(message, icon=":material/inbox:")



def flash(message: str, kind: str = "success") -> None:
    """Keep a message for the next run (shown by :func:`show_flash`), e.g. before ``st.rerun()``."""
    st.session_state["_flash"] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop("_flash", None)
    if item:
        kind, message = item
        getattr(st, kind, st.success)(message)


def write_action(fn: Callable, *args, success: str, **kwargs) -> bool:
    """Run a workflow write; on success keep ``success`` (``{result}`` is the return value) for the
    next run and rerun, so every table shows the new data. A :class:`UserError` (validation,
    permission) is shown in an error box and the form stays as typed.
    """
    ok, result = attempt(fn, *args, **kwargs)
    if not ok:
        return False
    flash(success.format(result=result))
    st.rerun()
    return True


