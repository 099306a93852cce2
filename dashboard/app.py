"""Dashboard entry point: ``streamlit run dashboard/app.py`` (or ``make run``).

Sign-in gate, then ``st.navigation`` over the page files in the top-level ``pages/`` folder, grouped
by audience (Manage / Collect / Finance / Data) and limited to the pages the signed-in role may see.
``st.Page`` resolves a relative path against this file's folder, so pages are given by absolute path.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import common as ui  # noqa: E402

_log = logging.getLogger("dashboard")
if not _log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)

st.set_page_config(page_title="AR Collections Analytics", page_icon=":material/account_balance:",
                   layout="wide", initial_sidebar_state="expanded")

engine = ui.get_engine()
user = ui.current_user()
if user is None:
    # Every page's address leads to the sign-in form, so a deep link (/customer_360?customer=…) keeps its
    # page and query parameters through sign-in: the rerun after it opens the page that was asked for.
    def sign_in():
        ui.run_safely(ui.sign_in_form, engine)

    st.navigation([st.Page(sign_in, title="Sign in", url_path="sign_in", default=True)]
                  + [st.Page(sign_in, title=spec.title, url_path=spec.key) for spec in ui.PAGES],
                  position="hidden").run()
    st.stop()

specs = ui.allowed_pages(user)
if not specs:
    ui.user_badge(user)
    st.title("AR Collections Analytics")
    ui.empty_state(f"There is no page for the role {user.role!r} yet.")
    st.stop()
landing = ui.landing_page(user)
sections: dict[str, list] = {}
for spec in specs:
    page = st.Page(str(spec.path), title=spec.title, icon=spec.icon, url_path=spec.key,
                   default=(spec.key == landing))
    sections.setdefault(spec.group, []).append(page)
current = st.navigation({g: sections[g] for g in ui.GROUPS if g in sections}, position="sidebar")
ui.user_badge(user)
ui.run_safely(current.run)
