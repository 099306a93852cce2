"""Risk (managers): score distribution, expected loss by band, accounts flagged for credit review, the
model card (ROC AUC, Brier score, calibration against the customer-history baseline, payment-date
interval coverage) and the policy backtest of worklist ranking rules.

Scores from :func:`analytics.risk.score_accounts`; flags from :func:`analytics.risk.credit_review`;
model card from :func:`analytics.risk.evaluate` (computed on demand: it retrains on a time split).
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import UserError
from analytics.risk import BANDS, credit_review, evaluate, score_accounts
from analytics.risk.policy import policy_backtest
from dashboard import common as ui

user = ui.require_page("risk")
as_of, flt = ui.sidebar_filters()
ui.page_title("Risk", as_of, flt)

with st.spinner("Scoring accounts…"):
    scores = ui.cached(score_accounts, as_of, flt)
if scores.empty:
    ui.empty_state("No account with an open balance for this filter at this date.")
    st.stop()

cur = scores["currency"].mode().iloc[0] if scores["currency"].notna().any() else None
bands = [b for _, b in BANDS]
by_band = (scores.groupby("band").agg(accounts=("customer_id", "count"), open_cents=("open_cents", "sum"),
                                      expected_loss_cents=("expected_loss_cents", "sum"))
           .reindex(bands, fill_value=0).reset_index())
c1, c2, c3 = st.columns(3)
c1.metric("Accounts scored", f"{len(scores):,}")
c2.metric("Expected loss", ui.cents(int(scores["expected_loss_cents"].sum()), cur))
c3.metric("High + critical", f"{int(scores['band'].isin(['high', 'critical']).sum()):,}")

left, right = st.columns(2)
with left:
    st.subheader("Score distribution")
    fig = go.Figure(go.Histogram(x=scores["probability"], xbins=dict(start=0, end=1.0001, size=0.05),
                                 marker_color="#4c78a8"))
    for upper, _name in BANDS[:-1]:
        fig.add_vline(x=upper, line_dash="dot", line_color="#888")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="probability of 60+ dpd in 90 days",
                      yaxis_title="accounts", bargap=0.05)
    st.plotly_chart(fig, key="risk_hist")
with right:
    st.subheader("By band")
    ui.table(by_band, "risk_by_band", key="risk_by_band", downloads=False)
    st.caption("Bands: low < 10 % ≤ medium < 30 % ≤ high < 60 % ≤ critical.")

st.subheader("Flagged for credit review")
st.caption("Paying 5+ days later than the quarter before, over the credit limit in the high/critical band, "
           "or 2+ broken promises in 90 days.")
flagged = credit_review(scores)
# Probabilities are fractions in analytics; shown as percentages here.
PCT = {"probability": st.column_config.ProgressColumn("Chance of 60+ days past due in 90 days", min_value=0.0,
                                                      max_value=1.0, format="percent")}
ui.table(flagged[["customer_name", "customer_id", "band", "probability", "expected_loss_cents", "open_cents", "flag",
                  "reasons", "collector_id"]] if not flagged.empty else flagged, f"credit_review_{as_of:%Y%m%d}",
         key="risk_flagged", empty="No account flagged.", column_config=PCT)

st.subheader("All scores")
ui.table(scores[["customer_name", "customer_id", "band", "probability", "expected_loss_cents", "open_cents",
                 "max_days_past_due", "reasons", "collector_id"]], f"risk_scores_{as_of:%Y%m%d}", key="risk_all",
         column_config=PCT)

st.subheader("Model card")
st.caption("Time-based split of the whole ledger (train on earlier invoices, test on later ones); baseline = the "
           "customer's own past rate. Takes a little while: it retrains the models.")
if st.button("Compute model card", key="risk_card_btn"):
    st.session_state["risk_card"] = True
if st.session_state.get("risk_card"):
    with st.spinner("Evaluating…"):
        card = ui.cached(evaluate)
    inv = card["invoice"]
    if "model" in inv:
        rows = [{"model": name, "ROC AUC": inv[name]["roc_auc"], "Brier": inv[name]["brier"]}
                for name in ("model", "hgb", "logistic", "baseline") if name in inv]
        st.markdown(f"**Invoice: paid more than {inv['late_days']} days late or not at all** "
                    f"(split {inv['split_date']}, {inv['n_train']:,} train / {inv['n_test']:,} test invoices)")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        cal = pd.DataFrame(inv["model"]["calibration"])
        base = pd.DataFrame(inv["baseline"]["calibration"])
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line=dict(dash="dot", color="#888")))
        if not cal.empty:
            fig.add_trace(go.Scatter(x=cal["predicted"], y=cal["observed"], mode="lines+markers", name="model"))
        if not base.empty:
            fig.add_trace(go.Scatter(x=base["predicted"], y=base["observed"], mode="lines+markers", name="baseline"))
        fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), title="Calibration (test invoices)",
                          xaxis_title="predicted", yaxis_title="observed")
        st.plotly_chart(fig, key="risk_calibration")
        st.caption(f"Brier score (lower is better): model {inv['model']['brier']}, baseline "
                   f"{inv['baseline']['brier']}. Each point: test invoices grouped by predicted probability.")
        if inv.get("warning"):
            st.warning(inv["warning"])
        if "days_to_pay" in inv:
            d = inv["days_to_pay"]
            st.markdown(f"Days to pay: MAE **{d['mae_model']}** days (baseline {d['mae_baseline']}); "
                        f"**{d['interval_coverage']:.0%}** of test invoices inside the 80 % ({d['interval']}) "
                        f"interval.")
    else:
        st.info(inv.get("note", "Not enough history for the invoice model card."))
    acc = card["account"]
    if "model" in acc:
        st.markdown(f"**Account: 60+ days past due within 90 days** — ROC AUC {acc['model']['roc_auc']} "
                    f"(baseline {acc['baseline']['roc_auc']}), Brier {acc['model']['brier']} "
                    f"(baseline {acc['baseline']['brier']}).")
    if card.get("truth"):
        t = card["truth"]
        st.markdown(f"**Generated ledger ground truth:** precision at top {t['top_k']} customers "
                    f"{t['precision_at_top']:.0%} (baseline {t['precision_at_top_baseline']:.0%}; "
                    f"bad customers overall {t['bad_share_overall']:.0%}).")

st.subheader("Policy backtest: which accounts to call first")
st.caption("Replays the last 30 days of a ledger generated with known contact effects "
           "(`python -m analytics generate --contact-effects`): each collector contacts 2 accounts a business day "
           "in the order of a ranking rule; cash collected within the window, mean of 5 replays. Takes a while.")
if st.button("Run the policy backtest", key="risk_policy_btn"):
    st.session_state["risk_policy"] = True
if st.session_state.get("risk_policy"):
    try:
        with st.spinner("Replaying…"):
            result = ui.cached(policy_backtest)
    except UserError as exc:
        st.info(str(exc))
    else:
        rows = pd.DataFrame(result["rows"])
        rows = rows.assign(cash=rows["cash_cents"] / 100, extra=rows["extra_cents"] / 100,
                           per_contact=rows["extra_per_contact_cents"] / 100)
        st.dataframe(rows[["label", "cash", "extra", "contacts", "per_contact"]], hide_index=True, column_config={
            "label": "Ranking rule",
            "cash": st.column_config.NumberColumn(f"Cash in window ({result['currency']})", format="localized"),
            "extra": st.column_config.NumberColumn("Extra vs no contacts", format="localized"),
            "contacts": st.column_config.NumberColumn("Contacts", format="localized"),
            "per_contact": st.column_config.NumberColumn("Extra per contact", format="localized")})
        d = result["product_vs_overdue"]
        st.caption(f"{result['start']} to {result['end']}, {result['accounts_overdue']} accounts overdue at the start. "
                   f"Contact value vs largest overdue amount: {d['share_of_overdue_rule_extra']:+.1%} extra cash, "
                   f"ahead in {d['replays_ahead']} of {result['replays']} replays.")
