"""Worklist: a collector's open accounts ranked by expected loss, with why, what is due and what to do next.

All figures from :func:`analytics.worklist.worklist` (risk scores from :mod:`analytics.risk`, trained on
the ledger's own history and cached by ledger version). A collector sees only their own portfolio
(the sidebar filter is forced by :func:`analytics.auth.scope_filter`).
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics import accounts as q
from analytics import fx
from analytics.risk import BANDS
from analytics.worklist import worklist
from dashboard import common as ui

user = ui.require_page("worklist")
as_of, flt = ui.sidebar_filters()
ui.page_title("Worklist", as_of, flt)

rep = ui.reporting_currency()  # fx: every currency's accounts converted and ranked together
with st.spinner("Scoring accounts…"):
    ok, wl = ui.attempt(ui.cached, fx.worklist, as_of, flt, rep) if rep else (True, ui.cached(worklist, as_of, flt))
if not ok:
    st.stop()
if rep:
    st.caption(f"All currencies converted into {rep} and ranked together: "
               + "; ".join(wl.attrs.get("rates", {}).values()) + ". The reasons quote each account's own currency.")
if wl.empty:
    ui.empty_state("No account with an open balance for this filter at this date.")
    st.stop()

# Work recorded after the ledger's last business date (calls logged today) still counts as the last contact.
today = dt.date.today()
if today > as_of and as_of == ui.ledger_facts().last_date:
    later = ui.cached(q.last_contacts, today, tuple(wl["customer_id"]))
    if not later.empty:
        newer = wl["customer_id"].map(dict(zip(later["customer_id"], later["last_contact"])))
        wl = wl.assign(last_contact=newer.where(newer.notna(), wl["last_contact"]))
        st.caption(f"Last contact includes work recorded up to today ({today:%d %b %Y}), after the ledger's end.")

cur = wl["currency"].mode().iloc[0] if wl["currency"].notna().any() else None
c1, c2, c3, c4 = st.columns(4)
c1.metric("Accounts to work", f"{len(wl):,}")
ui.money_metric(c2, "Expected loss", cents_value=int(wl["expected_loss_cents"].sum()), currency=cur)
c3.metric("Promises due today", f"{int(wl['promises_due_today'].sum()):,}")
c4.metric("Open disputes", f"{int(wl['open_disputes'].sum()):,}")

bands = [b for _, b in BANDS]
chosen = st.segmented_control("Risk band", bands, selection_mode="multi", default=bands, key="wl_bands",
                              format_func=str.capitalize) or bands
shown = wl[wl["band"].isin(chosen)]
st.caption("Ranked by what a contact is worth: how often the customer pays soon after a contact × the overdue, "
           "undisputed amount not expected to be paid within 30 days anyway; ties by expected loss (probability of a "
           "60+ days past due balance within 90 days × open balance). Bands by that probability: low < 10 % ≤ "
           "medium < 30 % ≤ high < 60 % ≤ critical. Next step follows the dunning procedure (Dunning page).")
cols = ["rank", "customer_name", "customer_id", "band", "probability", "expected_loss_cents", "open_cents",
        "overdue_cents", "worst_days_past_due", "next_step", "reasons", "promises_due_today", "broken_promises_30d",
        "open_disputes", "last_contact", "days_since_contact", "collector_id"]
result = ui.table(
    shown[cols], f"worklist_{as_of:%Y%m%d}", key="worklist_table", on_select="rerun", selection_mode="single-row",
    # What a collector acts on first is in view without scrolling: who, how risky, how late, the next step,
    # promises due, broken promises, disputes and the last contact; the rest follows to the right.
    column_order=["rank", "customer_name", "band", "probability", "expected_loss", "overdue", "worst_days_past_due",
                  "next_step", "promises_due_today", "broken_promises_30d", "open_disputes", "last_contact",
                  "reasons", "open", "customer_id", "days_since_contact", "collector_id"],
    column_config={
        "rank": st.column_config.NumberColumn("#", width=36, pinned=True),
        "customer_name": st.column_config.TextColumn("Customer", width=170, pinned=True),
        "band": st.column_config.TextColumn("Risk", width=62),
        "probability": st.column_config.NumberColumn("P(60+)", format="percent", width=62,
                                                     help="Probability of a 60+ days past due balance within 90 days"),
        "expected_loss": st.column_config.NumberColumn("Exp. loss", format="%,.0f", width=80),
        "overdue": st.column_config.NumberColumn("Overdue", format="%,.0f", width=80),
        "worst_days_past_due": st.column_config.NumberColumn("Worst DPD", width=72,
                                                             help="Days past due of the oldest open item"),
        "next_step": st.column_config.TextColumn("Next step", width=110),
        "promises_due_today": st.column_config.NumberColumn("PTP due", width=62, help="Promises to pay due today"),
        "broken_promises_30d": st.column_config.NumberColumn("Broken", width=58,
                                                             help="Promises broken in the last 30 days"),
        "open_disputes": st.column_config.NumberColumn("Disputes", width=64, help="Open disputes"),
        "last_contact": st.column_config.TextColumn("Last contact", width=92),
        "reasons": st.column_config.TextColumn("Why", width="large"),
    },
    empty="No account in the chosen bands.")

if not shown.empty:
    rows = list(getattr(getattr(result, "selection", None), "rows", []) or []) if result is not None else []
    ids = list(shown["customer_id"])
    default = ids[rows[0]] if rows and rows[0] < len(ids) else ids[0]
    names = dict(zip(shown["customer_id"], shown["customer_name"]))
    pick = st.selectbox("Account", ids, index=ids.index(default), key="wl_customer",
                        format_func=lambda c: f"{names.get(c) or c} ({c})")
    row = shown.set_index("customer_id").loc[pick]
    st.markdown(f"**{ui.plain(row['customer_name'])}** — {ui.plain(row['band'])} risk, next step: "
                f"**{ui.plain(ui.label(row['next_step']) or 'none')}**  \nWhy: {ui.plain(row['reasons'])}")
    ui.customer_link(pick, ui.plain(row["customer_name"] or pick))
