"""Overview: the core KPI set as of the sidebar date, month-on-month change, aging and DSO trend.

All figures from :func:`analytics.kpis.snapshot`, :func:`analytics.kpis.aging` and
:func:`analytics.kpis.kpi_trend` (definitions in docs/kpi_definitions.md).
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics import kpis
from dashboard import common as ui
from dashboard import charts

user = ui.require_page("overview")
as_of, flt = ui.sidebar_filters()
ui.page_title("Overview", as_of, flt)

snap = ui.cached(kpis.snapshot, as_of, flt)
prev_date = as_of.replace(day=1) - dt.timedelta(days=1)
prev = ui.cached(kpis.snapshot, prev_date, flt)
cur = snap["currency"]

if not snap["open_items"] and not snap["credit_sales"] and not prev["open_items"]:
    ui.empty_state("No receivables for this filter at this date. Change the filters, or load data on the Data page.")
    st.stop()

st.caption(f"Amounts in {cur}. Change against the end of the previous month ({prev_date:%d %b %Y}). "
           f"DSO window {snap['window']} days.")


def card(col, label, key, fmt, kind, *, inverse=False, help=None):
    col.metric(label, fmt(snap[key]), ui.delta(snap[key], prev[key], kind=kind),
               delta_color="inverse" if inverse else "normal", help=help, border=True)


row1 = st.columns(4)
card(row1[0], "Total AR", "ar_total", lambda v: ui.money(v, cur), "money", inverse=True,
     help="Open amount of every item at the as-of date (invoices and debit memos less open credit memos).")
card(row1[1], "Overdue", "overdue_total", lambda v: ui.money(v, cur), "money", inverse=True,
     help="Open amount past its due date.")
card(row1[2], "% current", "pct_current", ui.pct, "pct", help="Current (not yet due) AR / total AR.")
card(row1[3], "CEI (month to date)", "cei_month", ui.pct, "pct",
     help="Collection Effectiveness Index for the as-of month up to the as-of date; 100% = everything "
          "collectable was collected.")
row2 = st.columns(4)
card(row2[0], "DSO", "dso_standard", ui.days, "days", inverse=True,
     help="Days sales outstanding = AR / credit sales of the last N days × N.")
card(row2[1], "Best possible DSO", "bpdso", ui.days, "days", inverse=True,
     help="Current AR / credit sales of the last N days × N: the DSO if nothing were overdue.")
card(row2[2], "Average days delinquent", "add", ui.days, "days", inverse=True, help="DSO − best possible DSO.")
card(row2[3], "Over 90 days", "over_90_total", lambda v: ui.money(v, cur), "money", inverse=True,
     help="Open amount more than 90 days past due.")
st.caption(f"{snap['open_items']:,} open items · {snap['customers_with_balance']:,} customers with a balance · "
           f"unapplied cash {ui.money(snap['unapplied_cash'], cur)} · countback DSO {ui.days(snap['dso_countback'])}")

left, right = st.columns([2, 3])
with left:
    st.subheader("Aging")
    aging = ui.cached(kpis.aging, as_of, flt)
    st.plotly_chart(charts.aging_bar(aging, cur), key="overview_aging", config=charts.CONFIG)
with right:
    st.subheader("DSO, best possible DSO and days delinquent")
    dates = kpis.last_month_ends(as_of, 12)
    if as_of not in dates:
        dates = dates + [as_of]
    trend = ui.cached(kpis.kpi_trend, tuple(dates), flt)
    st.plotly_chart(charts.dso_trend(trend), key="overview_dso", config=charts.CONFIG)

with st.expander("Trend table"):
    ui.table(trend, "kpi_trend", key="overview_trend_table")
with st.expander("Aging table"):
    ui.table(aging, "aging", key="overview_aging_table")
