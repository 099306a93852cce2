"""Drive the dashboard like a person, without a browser: Streamlit ``AppTest`` helpers.

Every page is reached through ``dashboard/app.py`` (the real entry point with its sign-in gate and
``st.navigation``), with a signed-in user of a given role against a given database URL::

    from tests.apptest_helpers import open_page

    def test_my_page(small_ledger_url, monkeypatch):
        at = open_page(monkeypatch, small_ledger_url, "worklist", role="collector", collector_id="C01")
        assert_clean(at)

``AR_DASHBOARD_RAISE=1`` is set so a bug in a page surfaces as ``at.exception`` instead of the
friendly error box users see.
"""
from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from analytics.auth import User

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
PAGES = ROOT / "pages"
DEFAULT_TIMEOUT = 60


def make_user(role: str, collector_id: str | None = None, username: str | None = None) -> User:
    return User(username or (collector_id.lower() if collector_id else role), role, collector_id)


def app_test(monkeypatch, db_url: str, *, role: str | None = "admin", collector_id: str | None = None,
             username: str | None = None, script: Path = APP, timeout: float = DEFAULT_TIMEOUT) -> AppTest:
    """An ``AppTest`` of ``script`` (default the app entry) against ``db_url``, signed in as ``role``
    (``role=None``: nobody signed in). Not yet run."""
    monkeypatch.setenv("AR_DB_URL", db_url)
    monkeypatch.setenv("AR_DASHBOARD_RAISE", "1")
    at = AppTest.from_file(str(script), default_timeout=timeout)
    if role is not None:
        at.session_state["user"] = make_user(role, collector_id, username)
        at.session_state["_last_seen"] = time.time()
    return at


def open_page(monkeypatch, db_url: str, page: str, *, role: str = "admin", collector_id: str | None = None,
              username: str | None = None, query: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> AppTest:
    """Sign in as ``role``, run the app, navigate to ``pages/<page>.py`` and run it; returns the AppTest.

    ``query`` sets URL query parameters before the page runs (e.g. ``{"customer": "K001"}``).
    """
    at = app_test(monkeypatch, db_url, role=role, collector_id=collector_id, username=username, timeout=timeout)
    at.run()
    if query:
        at.query_params.update(query)
    at.switch_page(f"../pages/{page}.py")
    return at.run()


def open_directly(monkeypatch, db_url: str, page: str, *, role: str = "admin", collector_id: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> AppTest:
    """Run ``pages/<page>.py`` as its own script (bypassing navigation), as a user trying a direct URL."""
    at = app_test(monkeypatch, db_url, role=role, collector_id=collector_id, script=PAGES / f"{page}.py",
                  timeout=timeout)
    return at.run()


def nav_titles(at: AppTest) -> list[str]:
    """Titles of the pages offered in the navigation after the last run."""
    return [info.get("page_name") or "" for info in at._registered_pages.values()]


def texts(at: AppTest) -> str:
    """All visible text of the last run (markdown, captions, metrics, alerts), for assertions."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error", "success"):
        parts.extend(str(el.value) for el in getattr(at, kind))
    for m in at.metric:
        parts.append(f"{m.label}: {m.value}")
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
