"""Cash forecast (finance, managers, admins): expected receipts per week for the next 13 weeks with an
80% band, actual receipts to date, the backtest that picks the method (and how it scored against the
naive baselines), scenario levers and an Excel download.

All numbers come from :mod:`analytics.forecast`; the page only lays them out.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.forecast import (METHODS, NAIVE_METHODS, Scenario, actual_receipts, backtest, backtest_summary,
                                band_calibration, beats_baselines, choose_method, forecast, open_by_customer)
from dashboard import common as ui

user = ui.require_page("cash_forecast")
as_of, flt = ui.sidebar_filters()
ui.page_title("Cash forecast", as_of, flt)

with st.sidebar:
    st.subheader("Forecast")
    weeks = st.slider("Horizon (weeks)", 4, 26, 13, key="fc_weeks")
    method_choice = st.selectbox("Method", ["auto", *METHODS], key="fc_method",
                                 help="auto = the method with the lowest backtest WAPE over the horizon")
    origins = st.number_input("Backtest origins", 3, 30, 8, key="fc_origins",
                              help="Past dates the methods are re-run from and scored against what came in")

# --------------------------------------------------------------------------------------------- backtest
# Computed once per money version and shared by every session through the dashboard cache (a logged call
# does not recompute it); the progress bar shows only while it is computed.
bar = st.empty()


def _progress(done: int, total: int) -> None:
    bar.progress(done / total, text=f"Backtesting every method on past origins: origin {done} of {total}")


ok, bt = ui.attempt(ui.cached, backtest, flt, weeks=weeks, origins=int(origins), end=as_of, _progress=_progress)
bar.empty()
bt = bt if ok else None
summary = backtest_summary(bt) if bt is not None else None

if method_choice == "auto":
    method = choose_method(summary) if summary is not None and len(summary) else "combined"
else:
    method = method_choice

# --------------------------------------------------------------------------------------------- levers
with st.expander("Scenario levers", icon=":material/tune:"):
    c1, c2 = st.columns(2)
    shift = c1.slider("Customers pay later (+) / earlier (−), days", -30, 30, 0, key="fc_shift")
    coll = c2.slider("Collection rate change, %", -50, 20, 0, key="fc_coll")
    big = ui.cached(open_by_customer, as_of, flt, 15)
    names = dict(zip(big["customer_id"], big["customer_name"]))
    c3, c4 = st.columns(2)
    delayed = c3.selectbox("Delayed large customer", ["(none)", *names], key="fc_delay_cust",
                           format_func=lambda c: c if c == "(none)" else f"{names[c]} ({c})")
    delay_weeks = c4.slider("Delay, weeks", 0, 13, 4, key="fc_delay_weeks")
scenario = Scenario(shift_days=shift, collection_rate_pct=float(coll),
                    delayed_customer=None if delayed == "(none)" else delayed,
                    delay_weeks=delay_weeks if delayed != "(none)" else 0)

# The band is conformal-calibrated on this method's errors in the backtest above (origins before as-of only):
# passing the factors avoids a second backtest inside forecast().
cal = band_calibration(bt, method, as_of) if bt is not None else None
ok, base = ui.attempt(ui.cached, forecast, as_of, weeks, flt, method, calibration=cal)
if not ok:
    st.stop()
currency = ui.frame_currency(base, flt)
scen = None
if not scenario.is_base():
    ok, scen = ui.attempt(ui.cached, forecast, as_of, weeks, flt, method, scenario, calibration=cal)

# --------------------------------------------------------------------------------------------- headline
score = summary.set_index("method").loc[method] if summary is not None and method in set(summary["method"]) else None
c1, c2, c3 = st.columns(3)
ui.money_metric(c1, f"Expected receipts, {weeks} weeks", units=base["expected"].sum(), currency=currency)
ui.money_metric(c2, "Weeks 1–4", units=base["expected"].head(4).sum(), currency=currency)
if scen is not None:
    ui.money_metric(c3, "Scenario total", units=scen["expected"].sum(), currency=currency,
                    delta=ui.money_compact(scen["expected"].sum() - base["expected"].sum(), currency))
elif score is not None:
    c3.metric("Backtest WAPE, weeks 1–4", ui.pct(score.wape_1_4, ratio=True))

if score is not None:
    verdict = beats_baselines(summary, method)
    lines = [f"Method in use: **{method}**" + (" (chosen by backtest: lowest WAPE over the horizon)"
                                                 if method_choice == "auto" else " (chosen by you)"),
             f"Backtest over {int(score.origins)} origins: WAPE weeks 1–4 **{score.wape_1_4:.1%}**, "
             f"weeks 5–{weeks} **{score.wape_5_13:.1%}**, bias {score.bias_1_4:+.1%} / {score.bias_5_13:+.1%}, "
             f"model band coverage {score.coverage:.0%}.",
             f"Band: {base.attrs.get('band_note', '')}."]
    if method not in NAIVE_METHODS:
        for label, key, best in (("1–4", "weeks_1_4", "best_naive_1_4"), (f"5–{weeks}", "weeks_5_13",
                                                                          "best_naive_5_13")):
            if not verdict[key]:
                lines.append(f"Weeks {label}: does **not** beat the best naive baseline "
                             f"({verdict[best]:.1%}).")
    st.info("  \n".join(lines), icon=":material/insights:")
else:
    st.warning(f"Not enough history for a backtest; showing **{method}** without a score and with the "
               "method's own (uncalibrated) band.")

# --------------------------------------------------------------------------------------------- chart
history_start = as_of - dt.timedelta(days=7 * 26 - 1)
actual = ui.cached(actual_receipts, history_start, as_of, flt)
fig = go.Figure()
ws = pd.to_datetime(base["week_start"])
fig.add_trace(go.Scatter(x=list(ws) + list(ws[::-1]), y=list(base["upper"]) + list(base["lower"][::-1]),
                         fill="toself", fillcolor="rgba(76,120,168,0.18)", line=dict(width=0),
                         name=f"{int(base.attrs.get('level', 0.8) * 100)}% band", hoverinfo="skip"))
fig.add_trace(go.Scatter(x=ws, y=base["expected"], mode="lines+markers", name=f"expected ({method})",
                         line=dict(color="#4c78a8")))
if scen is not None:
    fig.add_trace(go.Scatter(x=ws, y=scen["expected"], mode="lines+markers", name="scenario",
                             line=dict(color="#e45756", dash="dash")))
fig.add_trace(go.Bar(x=pd.to_datetime(actual["week_start"]), y=actual["actual"], name="actual receipts",
                     marker_color="#9d9d9d"))
fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), yaxis_title=f"{currency} per week",
                  legend=dict(orientation="h"), bargap=0.2)
st.plotly_chart(fig, key="fc_chart")

table = base.copy()
if scen is not None:
    table["scenario_expected"] = scen["expected"]
table["currency"] = currency
st.subheader("Weekly forecast")
ui.table(table, f"cash_forecast_{as_of:%Y%m%d}", key="fc_table")

# --------------------------------------------------------------------------------------------- backtest view
st.subheader("Backtest")
if bt is None or summary is None or summary.empty:
    ui.empty_state("Not enough history before the as-of date to backtest (about 39 weeks of receipts needed).")
else:
    st.caption(f"Rolling origin: {len(bt.attrs['origin_dates'])} origins from {bt.attrs['origin_dates'][0]} to "
               f"{bt.attrs['origin_dates'][-1]}; each method refitted on data up to the origin only. "
               "WAPE = Σ|forecast − actual| / Σ actual; bias = Σ(forecast − actual) / Σ actual.")
    show = summary[["method", "wape_1_4", "wape_5_13", "wape_all", "bias_1_4", "bias_5_13", "coverage",
                    "origins", "is_naive"]]
    pct_cols = {c: st.column_config.NumberColumn(ui.header(c), format="percent")
                for c in ("wape_1_4", "wape_5_13", "wape_all", "bias_1_4", "bias_5_13", "coverage")}
    ui.table(show, "forecast_backtest", key="fc_bt_table", column_config=pct_cols)
    fig2 = go.Figure()
    for m, f in bt.groupby("method", sort=False):
        fig2.add_trace(go.Scatter(x=f["horizon_week"], y=f["wape"], mode="lines+markers", name=m,
                                  line=dict(dash="dot" if m in NAIVE_METHODS else "solid",
                                            width=3 if m == method else 1.5)))
    fig2.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="horizon week",
                       yaxis_title="WAPE", yaxis_tickformat=".0%", legend=dict(orientation="h"))
    st.plotly_chart(fig2, key="fc_bt_chart")
