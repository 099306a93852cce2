"""Disputes & Promises: open disputes and how fast they are resolved; promises to pay due, kept and
broken.

Figures from :mod:`analytics.kpis.operations` (``dispute_stats``, ``disputes_by_reason``,
``open_disputes``, ``promise_stats``, ``promises_due``, ``promises_detail``).
"""
from __future__ import annotations

import streamlit as st

from analytics.kpis import operations as ops
from dashboard import charts
from dashboard import common as ui

user = ui.require_page("disputes_promises")
as_of, flt = ui.sidebar_filters()
ui.page_title("Disputes & Promises", as_of, flt)
start, end = ui.period_picker(as_of, key="dp_period")

# Keyed: the chosen tab survives a save's rerun.
tab_d, tab_p = st.tabs(["Disputes", "Promises to pay"], key="dp_tab", on_change="rerun")


def _first(frame):
    return frame.iloc[0] if frame is not None and not frame.empty else None


def _get(row, key, default=None):
    return default if row is None or key not in row.index else row[key]


with tab_d:
    stats = ui.cached(ops.dispute_stats, start, end, flt)
    cur = ui.frame_currency(stats, flt)
    s = _first(stats)
    c = st.columns(5)
    c[0].metric("Open at period end", f"{int(_get(s, 'open_count', 0)):,}", border=True,
                help=ui.cents(_get(s, "open_cents"), cur))
    c[1].metric("Opened in period", f"{int(_get(s, 'opened_count', 0)):,}", border=True,
                help=ui.cents(_get(s, "opened_cents"), cur))
    c[2].metric("Resolved in period", f"{int(_get(s, 'resolved_count', 0)):,}", border=True,
                help=ui.cents(_get(s, "resolved_cents"), cur))
    c[3].metric("Days to resolve", ui.num(_get(s, "median_days_to_resolve")), border=True,
                help=f"Median; the average is {ui.days(_get(s, 'avg_days_to_resolve'))}")
    c[4].metric("Within target", ui.pct(_get(s, "within_target_pct")), border=True,
                help="Resolved within the target days / (resolved + still open past the target).")

    open_list = ui.cached(ops.open_disputes, as_of, flt)
    st.subheader("Open disputes")
    picked = ui.table(open_list, f"open_disputes_{as_of}", key="dp_open_disputes",
                      empty="No open disputes for this filter.", on_select="rerun", selection_mode="single-row")
    rows = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
    if rows and rows[0] < len(open_list):
        row = open_list.iloc[rows[0]]
        ui.customer_link(row["customer_id"], ui.plain(row.get("customer_name") or row["customer_id"]))
    st.subheader("By reason")
    reasons = ui.cached(ops.disputes_by_reason, start, end, flt)
    if reasons.empty:
        ui.empty_state("No disputes in this period.")
    else:
        left, right = st.columns([2, 3])
        measure = "open_cents" if int(reasons["open_cents"].sum()) else "opened_count"
        labelled = reasons.assign(reason_code=reasons["reason_code"].map(ui.label))  # "Not received", not a code
        left.plotly_chart(charts.hbar(labelled, measure, "reason_code", money=measure.endswith("_cents"),
                                      title="Open amount" if measure == "open_cents" else "Opened"),
                          key="dp_reasons_chart", config=charts.CONFIG)
        with right:
            ui.table(reasons, f"disputes_by_reason_{start}_{end}", key="dp_reasons")

with tab_p:
    pstats = ui.cached(ops.promise_stats, start, end, flt)
    cur = ui.frame_currency(pstats, flt)
    p = _first(pstats)
    c = st.columns(5)
    c[0].metric("Promises made", f"{int(_get(p, 'made_count', 0)):,}", border=True,
                help=ui.cents(_get(p, "promised_cents"), cur))
    c[1].metric("Kept", f"{int(_get(p, 'kept_count', 0)):,}", border=True)
    c[2].metric("Broken", f"{int(_get(p, 'broken_count', 0)):,}", border=True)
    c[3].metric("Kept rate", ui.pct(_get(p, "kept_pct")), border=True, help="Kept / (kept + broken).")
    ui.money_metric(c[4], "Collected on promises", cents_value=_get(p, "collected_cents"), currency=cur, border=True)

    st.subheader("Due or broken")
    due = ui.cached(ops.promises_due, as_of, flt)
    picked = ui.table(due, f"promises_due_{as_of}", key="dp_due", on_select="rerun", selection_mode="single-row",
                      empty="No promises due or broken for this filter.")
    rows = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
    if rows and rows[0] < len(due):
        row = due.iloc[rows[0]]
        ui.customer_link(row["customer_id"], ui.plain(row.get("customer_name") or row["customer_id"]))
    with st.expander("Every promise made in the period"):
        detail = ui.cached(ops.promises_detail, start, end, flt)
        ui.table(detail, f"promises_{start}_{end}", key="dp_detail", empty="No promises made in this period.")
