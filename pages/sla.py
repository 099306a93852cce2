"""SLA: collections service levels (DSO, CEI, disputes resolved in time, past-due accounts contacted,
promises kept) against targets, the accounts behind each breach, and the last months' record.

Figures from :func:`analytics.kpis.sla.sla_status` and :func:`analytics.kpis.sla.sla_breaches`;
targets from :class:`analytics.kpis.sla.SlaTargets` (``$AR_SLA_FILE`` TOML if set, else defaults),
adjustable for the session.
"""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from analytics import fx
from analytics.kpis import ar as kpis_ar
from analytics.kpis import sla
from dashboard import common as ui

user = ui.require_page("sla")
as_of, flt = ui.sidebar_filters()
ui.page_title("SLA", as_of, flt)


def _base_targets() -> sla.SlaTargets:
    path = os.environ.get("AR_SLA_FILE")
    return sla.SlaTargets.from_toml(path) if path else sla.DEFAULT_TARGETS


ok, base = ui.attempt(_base_targets)
if not ok:
    base = sla.DEFAULT_TARGETS

with st.expander("Targets", icon=":material/tune:"):
    st.caption("Change a target for this session; an empty box means no target. Defaults come from "
               + ("`$AR_SLA_FILE`." if os.environ.get("AR_SLA_FILE") else "the product (set `AR_SLA_FILE` to a TOML file)."))
    c = st.columns(5)
    fields = (("dso_max", "DSO at most (days)", 1000.0), ("cei_min", "CEI at least (%)", 100.0),
              ("dispute_share_min", "Disputes in time at least (%)", 100.0),
              ("contact_share_min", "Past-due contacted at least (%)", 100.0),
              ("ptp_kept_min", "Promises kept at least (%)", 100.0))
    values = {}
    for col, (name, label, top) in zip(c, fields):
        values[name] = col.number_input(label, min_value=0.0, max_value=top, value=getattr(base, name),
                                        step=1.0, key=f"sla_{name}", placeholder="no target")
    c = st.columns(5)
    values["dispute_days"] = c[0].number_input("Dispute target (days)", min_value=1, value=base.dispute_days,
                                               key="sla_dispute_days")
    values["contact_dpd_over"] = c[1].number_input("Contact: past due over (days)", min_value=0,
                                                   value=base.contact_dpd_over, key="sla_contact_dpd")
    values["contact_within_days"] = c[2].number_input("Contact within (days)", min_value=1,
                                                      value=base.contact_within_days, key="sla_contact_within")
    values["grace_days"] = c[3].number_input("Promise grace (days)", min_value=0, value=base.grace_days,
                                             key="sla_grace")
    period = c[4].number_input("Period: last N days (0 = month to date)", min_value=0,
                               value=base.period_days or 0, key="sla_period")
    values["period_days"] = int(period) or None
ok, targets = ui.attempt(sla.SlaTargets.from_dict, {**base.to_dict(), **values})
if not ok:
    st.stop()

rep = ui.reporting_currency()  # fx: the status converted; breaches and the six months stay per currency
if rep:
    ok, status = ui.attempt(ui.cached, fx.sla_status, as_of, flt, rep, targets)
    if not ok:
        st.stop()
    st.caption(f"All currencies converted into {rep}: " + "; ".join(status.attrs.get("rates", {}).values())
               + ". The accounts behind a breach and the last six month ends are in the Currency filter's currency.")
else:
    status = ui.cached(sla.sla_status, as_of, flt, targets)
cur = status.attrs.get("currency", "")
start, end = status.attrs.get("period_start"), status.attrs.get("period_end")
if start is not None:
    st.caption(f"Evaluation period for CEI, disputes and promises: {start:%d %b %Y} – {end:%d %b %Y} · {cur}")

ICON = {"met": ":green[:material/check_circle: **met**]", "breached": ":red[:material/cancel: **breached**]",
        "not defined": ":gray[:material/help: **not defined**]"}
SHORT = {"dso": "DSO (days)", "cei": "CEI (%)", "disputes_resolved_in_time": "Disputes in time (%)",
         "past_due_contacted": "Contacted (%)", "ptp_kept": "Promises kept (%)"}
LOWER_IS_BETTER = {"dso"}
cols = st.columns(len(status))
for col, row in zip(cols, status.itertuples(index=False)):
    days = row.metric == "dso"
    unit = " d" if days else "%"
    actual = "—" if pd.isna(row.actual) else f"{row.actual:,.1f}"
    target = "no target" if pd.isna(row.target) else (("≤ " if days else "≥ ") + f"{row.target:,.0f}{unit}")
    delta = None
    if not pd.isna(row.actual) and not pd.isna(row.target):
        delta = f"{row.actual - row.target:+,.1f}" + (" d" if days else " pp")
    col.metric(SHORT.get(row.metric, row.metric), actual, delta,
               delta_color="inverse" if days else "normal", border=True,
               help=f"{sla.LABELS.get(row.metric, row.metric)}: {row.detail}. {sla.definition(row.metric)}")
    col.markdown(f"{ICON.get(row.status, row.status)}  \ntarget {target}")

st.subheader("Breaches")
breached = [r.metric for r in status.itertuples() if r.status == "breached"]
if not breached:
    ui.empty_state("No SLA breached for this filter at this date.")
else:
    breaches = ui.cached(sla.sla_breaches, as_of, flt, targets)
    tabs = st.tabs([f"{sla.LABELS.get(m, m)} ({len(breaches.get(m, []))})" for m in breached])
    for tab, metric in zip(tabs, breached):
        with tab:
            frame = breaches.get(metric)
            st.caption(status.set_index("metric").loc[metric, "detail"])
            picked = ui.table(frame, f"sla_{metric}_{as_of}", key=f"sla_breach_{metric}", on_select="rerun",
                              selection_mode="single-row", empty="No accounts behind this breach.")
            rows = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
            if frame is not None and rows and rows[0] < len(frame):
                ui.customer_link(frame.iloc[rows[0]]["customer_id"],
                                 ui.plain(frame.iloc[rows[0]]["customer_name"] or frame.iloc[rows[0]]["customer_id"]))

with st.expander("Last six month ends"):
    dates = kpis_ar.last_month_ends(as_of, 6)
    history = []
    for d in dates:
        s = ui.cached(sla.sla_status, d, flt, targets)
        history.append(s.assign(month=d.strftime("%Y-%m"))[["month", "metric", "status"]])
    table = pd.concat(history).pivot(index="metric", columns="month", values="status").reindex(list(sla.METRICS))
    table.index = [sla.LABELS.get(m, m) for m in table.index]
    st.dataframe(table, width="stretch")
