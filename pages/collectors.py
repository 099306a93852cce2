"""Collectors: leaderboard for a period and monthly trends per collector.

Figures from :func:`analytics.kpis.operations.collector_kpis` and
:func:`analytics.kpis.operations.collector_trend` (definitions in their docstrings).
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics import fx
from analytics.kpis import operations as ops
from dashboard import charts
from dashboard import common as ui

user = ui.require_page("collectors")
as_of, flt = ui.sidebar_filters()
ui.page_title("Collectors", as_of, flt)

start, end = ui.period_picker(as_of, key="coll_period")
rep = ui.reporting_currency()  # fx: the leaderboard converted at the period end's rates; the trend stays per currency
if rep:
    ok, board = ui.attempt(ui.cached, fx.collector_kpis, start, end, flt, rep)
    if not ok:
        st.stop()
    st.caption(f"All currencies converted into {rep}: " + "; ".join(board.attrs.get("rates", {}).values()))
else:
    board = ui.cached(ops.collector_kpis, start, end, flt)
cur = ui.frame_currency(board, flt)
if board.empty:
    ui.empty_state("No collectors with accounts or activity for this filter.")
    st.stop()

METRICS = {
    "cei": ("CEI %", False), "collected_cents": (f"Collected ({cur})", True),
    "overdue_cents": (f"Overdue ({cur})", True), "ptp_kept_pct": ("Promises kept %", False),
    "activities_per_day": ("Activities per working day", False),
    "severe_touched_pct": ("61+ accounts contacted in 7 days %", False),
}
METRICS = {k: v for k, v in METRICS.items() if k in board.columns}
rank_by = st.columns([1, 2])[0].selectbox("Rank by", list(METRICS), format_func=lambda k: METRICS[k][0],
                                          key="coll_rank")
ascending = rank_by == "overdue_cents"
ranked = board.sort_values(rank_by, ascending=ascending, na_position="last", ignore_index=True)
ranked.insert(0, "rank", range(1, len(ranked) + 1))

left, right = st.columns([2, 1])  # the table gets the width its headers need
with left:
    st.subheader("Leaderboard")
    config = {
        "cei": st.column_config.NumberColumn("CEI %", format="%.1f"),
        "ptp_kept_pct": st.column_config.NumberColumn("Promises kept %", format="%.1f"),
        "severe_touched_pct": st.column_config.NumberColumn("61+ contacted %", format="%.1f"),
        "activities_per_day": st.column_config.NumberColumn("Activities / day", format="%.2f"),
        "collector_name": st.column_config.TextColumn("Collector", pinned=True),
        "accounts_with_balance": st.column_config.NumberColumn("Accounts", help="Accounts with a balance"),
    }
    shown = ["rank", "collector_name", rank_by.removesuffix("_cents")] + [
        c for c in ("cei", "collected", "overdue", "ptp_kept_pct", "activities_per_day", "accounts_with_balance")
        if c != rank_by.removesuffix("_cents")]
    ui.table(ranked, f"collectors_{start}_{end}", key="coll_board", column_config=config,
             column_order=[c for c in shown if c in ui.display_frame(ranked.head(0)).columns])
    st.caption("The downloads hold every column (accounts, activities, promises, 61+ coverage...).")
with right:
    st.subheader(METRICS[rank_by][0])
    label_col = "collector_name" if "collector_name" in ranked.columns else "collector_id"
    st.plotly_chart(charts.hbar(ranked.dropna(subset=[rank_by]), rank_by, label_col, title=METRICS[rank_by][0],
                                money=METRICS[rank_by][1]), key="coll_bar", config=charts.CONFIG)

st.subheader("Monthly trend")
trend_start = (as_of.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
trend = ui.cached(ops.collector_trend, trend_start, as_of, flt)
cur = ui.frame_currency(trend, flt)  # the trend is in the Currency filter's currency
if trend.empty:
    ui.empty_state("No monthly history for this filter.")
    st.stop()
TREND = {"collected_cents": (f"Collected ({cur})", True), "overdue_cents": (f"Overdue ({cur})", True),
         "ar_cents": (f"AR ({cur})", True), "activities": ("Activities", False),
         "accounts_touched": ("Accounts contacted", False), "ptp_kept_pct": ("Promises kept %", False)}
TREND = {k: v for k, v in TREND.items() if k in trend.columns}
metric = st.segmented_control("Metric", list(TREND), default=next(iter(TREND)), key="coll_trend_metric",
                              format_func=lambda k: TREND[k][0]) or next(iter(TREND))
by = "collector_name" if "collector_name" in trend.columns else "collector_id"
st.plotly_chart(charts.lines(trend, "as_of", metric, by, title=TREND[metric][0], money=TREND[metric][1],
                             percent=metric.endswith("_pct")), key="coll_trend", config=charts.CONFIG)
with st.expander("Trend table"):
    ui.table(trend, "collector_trend", key="coll_trend_table")
