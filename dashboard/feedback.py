"""What a page tells its user: errors without tracebacks, empty states, one-shot messages after a write.
"""
from __future__ import annotations

import logging
import os
import re
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
        st.error(plain(user_message(str(exc))), icon=":material/error:")  # messages quote cells: never Markdown
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



#: Field names that validation messages start with ("amount: ..."), in the words a form uses.
FIELD_WORDS = {
    "amount_cents": "Amount", "amount": "Amount", "promised_date": "Promised date", "invoice_id": "Item",
    "customer_id": "Customer", "reason_code": "Reason", "reason": "Reason", "note": "Note", "outcome": "Outcome",
    "type": "Type", "occurred_at": "Date", "username": "Username", "password": "Password",
}
_FIELD_PREFIX = re.compile(r"^([a-z_]+): ")


def user_message(text: str) -> str:
    """A validation message in the form's words: ``"promised_date: 2026-01-02 is in the past"`` becomes
    ``"Promised date: 2026-01-02 is in the past"``; other text is unchanged.

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Example
    -------
    >>> user_message("amount: USD 99,999,999.00 is more than the customer's open balance of USD 451,124.99")
    "Amount: USD 99,999,999.00 is more than the customer's open balance of USD 451,124.99"
    """
    m = _FIELD_PREFIX.match(text or "")
    if m and m.group(1) in FIELD_WORDS:
        return FIELD_WORDS[m.group(1)] + ": " + text[m.end():]
    return text


def _flash_key(where: str | None) -> str:
    return f"_flash:{where}" if where else "_flash"


def flash(message: str, kind: str = "success", where: str | None = None) -> None:
    """Keep a message for the next run (shown by :func:`show_flash`), e.g. before ``st.rerun()``.

    ``where`` names the form it belongs to: that form's ``show_flash(where)`` shows it beside the form.
    """
    st.session_state[_flash_key(where)] = (kind, message)


def show_flash(where: str | None = None) -> None:
    """Show the message kept by :func:`flash` for ``where`` (None: the page's own), once."""
    item = st.session_state.pop(_flash_key(where), None)
    if item:
        kind, message = item
        getattr(st, kind, st.success)(message)


def write_action(fn: Callable, *args, success: str, where: str | None = None, **kwargs) -> bool:
    """Run a workflow write; on success keep ``success`` (``{result}`` is the return value) for the
    next run and rerun, so every table shows the new data. A :class:`UserError` (validation,
    permission) is shown in an error box where this is called (inside the form) and the form stays
    as typed. ``where``: the form's name, so the success message is shown beside it too
    (:func:`show_flash`), not at the top of the page.
    """
    ok, result = attempt(fn, *args, **kwargs)
    if not ok:
        return False
    flash(success.format(result=result), where=where)
    st.rerun()
    return True


