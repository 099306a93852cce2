"""Overview: the core KPI set as of the sidebar date, month-on-month change, aging and DSO trend.

All figures from :func:`analytics.kpis.snapshot`, :func:`analytics.kpis.aging` and
:func:`analytics.kpis.kpi_trend`; card labels and help from the metric catalogue (:mod:`analytics.metrics`,
definitions in docs/kpi_definitions.md).
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics import fx, kpis, metrics
from analytics.errors import UserError
from dashboard import common as ui
from dashboard import charts

user = ui.require_page("overview")
as_of, flt = ui.sidebar_filters()
ui.page_title("Overview", as_of, flt)

prev_date = as_of.replace(day=1) - dt.timedelta(days=1)
rep = ui.reporting_currency()  # fx: every currency converted into one at the as-of date's rates
if rep:
    ok, snap = ui.attempt(ui.cached, fx.snapshot, as_of, flt, rep)
    if not ok:
        st.stop()
    try:  # no rates at the previous month end (say only today's ECB file is loaded): no change shown
        prev = ui.cached(fx.snapshot, prev_date, flt, rep)
    except UserError:
        prev = dict.fromkeys(snap) | {"open_items": 0}
else:
    snap = ui.cached(kpis.snapshot, as_of, flt)
    prev = ui.cached(kpis.snapshot, prev_date, flt)
cur = snap["currency"]

if not snap["open_items"] and not snap["credit_sales"] and not prev["open_items"]:
    ui.empty_state("No receivables for this filter at this date. Change the filters, or load data on the Data page.")
    st.stop()

st.caption(f"Amounts in {cur}. Change against the end of the previous month ({prev_date:%d %b %Y}). "
           f"DSO window {snap['window']} days."
           + (f" All currencies converted into {cur}: " + "; ".join(r["text"] for r in snap["rates"].values())
              if rep else ""))


def card(col, key, fmt, kind):
    """One KPI card; its label, help and which direction is good come from the metric catalogue."""
    m = metrics.get(key)
    help_text = metrics.help_text(key)
    if fmt is money:  # compact on the card, exact in the help
        help_text = f"Exact: {ui.money(snap[key], cur, 2)}.  \n{help_text}"
    col.metric(m.label, fmt(snap[key]), ui.delta(snap[key], prev[key], kind=kind),
               delta_color="inverse" if m.higher_is_better is False else "normal", help=help_text,
               border=True)


def money(v):
    return ui.money_compact(v, cur)


row1 = st.columns(4)
card(row1[0], "ar_total", money, "money")
card(row1[1], "overdue_total", money, "money")
card(row1[2], "pct_current", ui.pct, "pct")
card(row1[3], "cei_month", ui.pct, "pct")
row2 = st.columns(4)
card(row2[0], "dso_standard", ui.days, "days")
card(row2[1], "bpdso", ui.days, "days")
card(row2[2], "add", ui.days, "days")
card(row2[3], "over_90_total", money, "money")
st.caption(f"{snap['open_items']:,} open items · {snap['customers_with_balance']:,} customers with a balance · "
           f"unapplied cash {ui.money(snap['unapplied_cash'], cur)} · countback DSO {ui.days(snap['dso_countback'])}")

left, right = st.columns([2, 3])
with left:
    st.subheader("Aging")
    aging = ui.cached(fx.aging, as_of, flt, rep) if rep else ui.cached(kpis.aging, as_of, flt)
    if charts.has_amounts(aging):
        st.plotly_chart(charts.aging_bar(aging, cur), key="overview_aging", config=charts.CONFIG)
    else:
        ui.empty_state(f"Nothing open at {as_of:%d %b %Y}: every item is settled.")
with right:
    st.subheader("DSO, best possible DSO and days delinquent")
    dates = kpis.last_month_ends(as_of, 12)
    if as_of not in dates:
        dates = dates + [as_of]
    ok, trend = ui.attempt(ui.cached, fx.kpi_trend, tuple(dates), flt, rep) if rep else \
        (True, ui.cached(kpis.kpi_trend, tuple(dates), flt))
    if ok:
        st.plotly_chart(charts.dso_trend(trend), key="overview_dso", config=charts.CONFIG)

with st.expander("Trend table"):
    if ok:
        ui.table(trend, "kpi_trend", key="overview_trend_table")
with st.expander("Aging table"):
    ui.table(aging, "aging", key="overview_aging_table")
