"""Aging: open amount by days-past-due bucket over time, and a drill-down bucket -> customers ->
invoices. Click a bar (or pick the bucket in the list) to drill down.

Figures from :func:`analytics.kpis.aging`, :func:`analytics.kpis.aging_trend` and
:func:`analytics.kpis.aging_detail`. Settings: the aging basis (due date, per instalment where an invoice
has a schedule, or document date) and the bucket edges; with a reporting currency chosen in the sidebar
the bucket totals and history are converted (:func:`analytics.fx.aging`, :func:`analytics.fx.aging_trend`).
"""
from __future__ import annotations

import streamlit as st

from analytics import fx, kpis
from analytics.errors import UserError
from dashboard import charts
from dashboard import common as ui

user = ui.require_page("aging")
as_of, flt = ui.sidebar_filters()
ui.page_title("Aging", as_of, flt)

s1, s2 = st.columns([1, 2])
basis = s1.segmented_control("Age by", ("due", "document"), default="due", key="aging_basis",
                             format_func=lambda b: "Due date" if b == "due" else "Document date",
                             help="Due date: days past due (each instalment by its own due date). "
                                  "Document date: days since the invoice date.") or "due"
edges_text = s2.text_input("Bucket edges (days)", value="0, 30, 60, 90, 120", key="aging_edges",
                           help="Increasing whole days; the last bucket is everything above the last edge.")
try:
    edges = tuple(int(x) for x in edges_text.split(","))
    kpis.make_buckets(edges)
except (ValueError, UserError):
    st.error(f"Bucket edges: {ui.plain(edges_text)!s} is not an increasing list of whole days such as 0, 30, 60, 90.")
    st.stop()
rep = ui.reporting_currency()  # fx: bucket totals and history converted; the drill-down stays per currency
if rep:
    ok, aging = ui.attempt(ui.cached, fx.aging, as_of, flt, rep, edges, basis=basis)
    if not ok:
        st.stop()
    st.caption(f"All currencies converted into {rep}: " + "; ".join(aging.attrs.get("rates", {}).values()))
else:
    aging = ui.cached(kpis.aging, as_of, flt, edges, basis=basis)
cur = aging.attrs.get("currency") or (flt.currencies[0] if flt.currencies else "")
if int(aging["open_cents"].abs().sum()) == 0 and int(aging["items"].sum()) == 0:
    ui.empty_state("No open items for this filter at this date.")
    st.stop()

months = st.segmented_control("History", (6, 12, 24), default=12, key="aging_months",
                              format_func=lambda n: f"{n} months") or 12
dates = kpis.last_month_ends(as_of, int(months))
if as_of not in dates:
    dates = dates + [as_of]
ok, trend = ui.attempt(ui.cached, fx.aging_trend, tuple(dates), flt, rep, edges) if rep else \
    (True, ui.cached(kpis.aging_trend, tuple(dates), flt, edges))
if not ok:
    st.stop()
st.subheader("Open amount by bucket over time")
if basis == "document":
    st.caption("The history is by due date (the as-of aging below follows the setting).")
if charts.has_amounts(trend):
    st.plotly_chart(charts.aging_stacked(trend, cur), key="aging_trend_chart", config=charts.CONFIG)
else:
    ui.empty_state("Nothing was open at any of these month ends.")

# ---- drill-down ---------------------------------------------------------------------------
labels = list(aging.sort_values("bucket_order")["bucket"])


def _bucket_from_chart() -> None:
    """Chart click -> the bucket picker (so the picker and the chart always agree)."""
    state = st.session_state.get("aging_bar")
    points = (state or {}).get("selection", {}).get("points", []) if isinstance(state, dict) else \
        getattr(getattr(state, "selection", None), "points", []) or []
    if points:
        label = points[0].get("x")
        if label in labels:
            st.session_state["aging_bucket"] = label


st.subheader(f"Aging at {as_of:%d %b %Y}")
left, right = st.columns([3, 2])
with left:
    if charts.has_amounts(aging):
        st.plotly_chart(charts.aging_bar(aging, cur), key="aging_bar", on_select=_bucket_from_chart,
                        selection_mode="points", config=charts.CONFIG)
    else:
        ui.empty_state(f"Nothing open at {as_of:%d %b %Y}: every item is settled.")
with right:
    summary = aging[["bucket", "open_cents", "items", "customers"]]
    ui.table(summary, "aging_buckets", key="aging_summary", downloads=True)

if st.session_state.get("aging_bucket") not in labels:
    st.session_state["aging_bucket"] = next(
        (b for b in reversed(labels) if int(aging.loc[aging["bucket"] == b, "items"].iloc[0]) > 0), labels[-1])
bucket = st.selectbox("Drill into bucket", labels, key="aging_bucket",
                      help="Or click a bar in the chart above.")
if rep:
    st.caption(f"The drill-down lists the {ui.plain(', '.join(flt.currencies))} items (the Currency filter), "
               "in their own currency.")
detail = ui.cached(kpis.aging_detail, as_of, flt, bucket, buckets=edges, basis=basis)
if detail.empty:
    ui.empty_state(f"No open items in the {bucket} bucket.")
    st.stop()

by_customer = (detail.groupby(["customer_id", "customer_name"], as_index=False)
               .agg(open_cents=("open_cents", "sum"), items=("invoice_id", "count"),
                    max_days_past_due=("days_past_due", "max"))
               .sort_values(["open_cents", "customer_id"], ascending=[False, True], ignore_index=True))
st.markdown(f"**Customers in {ui.plain(bucket)}** · {len(by_customer):,} customers · "
            f"{ui.cents(int(detail['open_cents'].sum()), cur)}. Select a row to see its invoices.")
picked = ui.table(by_customer, f"aging_{bucket}_customers", key="aging_customers", on_select="rerun",
                  selection_mode="single-row")
rows = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
if rows and rows[0] < len(by_customer):
    st.session_state["aging_customer"] = by_customer.iloc[rows[0]]["customer_id"]
ids = list(by_customer["customer_id"])
names = dict(zip(by_customer["customer_id"], by_customer["customer_name"]))
if st.session_state.get("aging_customer") not in ids:
    st.session_state["aging_customer"] = ids[0]
customer = st.selectbox("Customer", ids, key="aging_customer", format_func=lambda c: f"{names.get(c, c)} ({c})")
invoices = detail[detail["customer_id"] == customer]
st.markdown(f"**Open items of {ui.plain(names.get(customer, customer))} in {ui.plain(bucket)}**")
ui.table(invoices.drop(columns=["customer_id", "customer_name", "bucket_order"], errors="ignore"),
         f"aging_{bucket}_{customer}", key="aging_invoices")
ui.customer_link(customer, ui.plain(names.get(customer) or customer))
