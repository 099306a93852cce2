"""The one name pages import: ``from dashboard import common as ui``.

Pages are thin: they call :func:`require_page` (sign-in and role check), :func:`sidebar_filters`
(the shared filters, kept across pages), :func:`cached` (an ``analytics`` call cached on its
arguments and the ledger version), and render the result with the formatting and download helpers.
All numbers come from :mod:`analytics`; nothing in the dashboard computes a KPI.

The helpers live in one module per job; this module only gathers their public names:

=====================  ==========================================================================
``dashboard.session``  database engine, ledger version, ``cached``, read-only state
``dashboard.access``   page registry, roles, sign-in / sign-out, idle expiry, customer links
``dashboard.feedback`` errors without tracebacks, empty states, one-shot messages after a write
``dashboard.filters``  the shared sidebar filters, page title, period picker
``dashboard.formatting`` money, percentages, days, deltas; typed amounts to cents; ``plain`` (Markdown-safe text)
``dashboard.tables``   tables with formatted money columns and safe CSV / Excel downloads
=====================  ==========================================================================

A page file looks like::

    from dashboard import common as ui
    from analytics import kpis

    user = ui.require_page("aging")
    as_of, flt = ui.sidebar_filters()
    frame = ui.cached(kpis.aging, as_of, flt)
    ui.table(frame, "aging")
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

from dashboard.access import (  # noqa: E402,F401
    GROUPS, IDLE_MINUTES, LAST_SEEN_KEY, PAGES, PAGES_BY_KEY, PAGES_DIR, USER_KEY, WRITE_ACTIONS, PageSpec,
    allowed_pages, can, current_user, customer_link, may_open, require_page, sign_in_form, sign_out, user_badge)
from dashboard.access import LANDING, SESSION_PARAM, landing_page  # noqa: E402,F401
from dashboard.feedback import (  # noqa: E402,F401
    GENERIC_ERROR, RAISE_ENV, attempt, empty_state, flash, run_safely, show_flash, write_action)
from dashboard.filters import (  # noqa: E402,F401
    PERIODS, LedgerFacts, filter_caption, frame_currency, ledger_facts, page_title, period_picker, sidebar_filters)
from dashboard.filters import reporting_currency  # noqa: E402,F401  (fx: the sidebar's "Report in")
from dashboard.formatting import (  # noqa: E402,F401
    DASH, cents, days, delta, is_missing, money, num, pct, plain, to_cents)
from dashboard.formatting import cents_compact, date_text, header, label, money_compact  # noqa: E402,F401
from dashboard.session import (  # noqa: E402,F401
    cached, clear_caches, db_url, get_engine, ledger_version, read_only, readonly_notice)
from dashboard.tables import (  # noqa: E402,F401
    csv_bytes, display_frame, download_buttons, excel_bytes, money_columns, neutralise_formulas, table)
from dashboard.tables import export_frame, money_metric  # noqa: E402,F401


__all__ = [
    "DASH",
    "GENERIC_ERROR",
    "GROUPS",
    "IDLE_MINUTES",
    "LAST_SEEN_KEY",
    "LedgerFacts",
    "PAGES",
    "PAGES_BY_KEY",
    "PAGES_DIR",
    "PERIODS",
    "PageSpec",
    "RAISE_ENV",
    "USER_KEY",
    "WRITE_ACTIONS",
    "allowed_pages",
    "attempt",
    "cached",
    "can",
    "cents",
    "clear_caches",
    "csv_bytes",
    "current_user",
    "customer_link",
    "days",
    "db_url",
    "delta",
    "display_frame",
    "download_buttons",
    "empty_state",
    "excel_bytes",
    "filter_caption",
    "flash",
    "frame_currency",
    "get_engine",
    "is_missing",
    "ledger_facts",
    "ledger_version",
    "may_open",
    "money",
    "money_columns",
    "neutralise_formulas",
    "num",
    "page_title",
    "pct",
    "plain",
    "period_picker",
    "read_only",
    "readonly_notice",
    "require_page",
    "run_safely",
    "show_flash",
    "sidebar_filters",
    "reporting_currency",  # fx
    "sign_in_form",
    "sign_out",
    "table",
    "to_cents",
    "user_badge",
    "write_action",
    # screens (issue 17): formatting layer, landing pages, sessions that survive a refresh
    "LANDING",
    "SESSION_PARAM",
    "landing_page",
    "cents_compact",
    "date_text",
    "export_frame",
    "header",
    "label",
    "money_compact",
    "money_metric",
]
