"""Cash application: the matching queue (accept / reject), unapplied cash and its aging, KPIs,
refund package and the month-end roll-forward tied to the open items.

Figures from :mod:`analytics.cash_app` (``cash_app_kpis``, ``pending_proposals``, ``unapplied_aging``,
``unapplied_cash``, ``refund_package``, ``rollforward``); writes through ``run_matching``,
``accept_proposals`` and ``reject_proposals`` (permission-checked and audited there).
"""
from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics import cash_app
from dashboard import common as ui

user = ui.require_page("cash_application")
as_of, flt = ui.sidebar_filters()
ui.page_title("Cash application", as_of, flt)
ui.show_flash()
engine = ui.get_engine()
cur = flt.currencies[0] if flt.currencies else ""

problems = ui.cached(cash_app.ledger_integrity, flt)
if problems is not None and not problems.empty:
    st.error(f"The ledger holds {len(problems):,} posting(s) money cannot be in — receipts applied beyond their "
             "amount or items settled beyond theirs. The roll-forward is withheld until they are reversed.",
             icon=":material/report:")
    ui.table(problems[["detail"]], "ledger_problems", key="ca_problems")

start, end = ui.period_picker(as_of, key="ca_period", default="Last 30 days")
k = ui.cached(cash_app.cash_app_kpis, start, end, flt)
if k:
    c = st.columns([1.5, 1, 1, 1, 1])  # the money card gets the room its figure needs
    ui.money_metric(c[0], "Unapplied cash", cents_value=k["unapplied_cents"], currency=cur, border=True,
                help=f"{k['unapplied_receipts']:,} receipts not (fully) applied at {end:%d %b %Y}.")
    c[1].metric("Auto-match rate", ui.pct(k["auto_match_rate"], ratio=True), border=True,
                help="Receipts with an automatically applied match / receipts with any match proposal.")
    c[2].metric("Days to apply", ui.num(k["median_days_to_apply"]), border=True,
                help=f"Median days from receipt to first application; mean {ui.days(k['mean_days_to_apply'])}.")
    c[3].metric("Missing remittance", ui.pct(k["missing_remittance_share"], ratio=True), border=True,
                help="Receipts of the period whose remittance text names no document number.")
    c[4].metric("Deductions", f"{k['deductions_count']:,}", border=True,
                help=f"Short payments posted as deductions in the period: {ui.cents(k['deductions_cents'], cur)}.")

# Keyed: the chosen tab survives a save's rerun.
tab_q, tab_u, tab_bank, tab_r, tab_rf = st.tabs(["Queue", "Unapplied cash", "Bank statements", "Refunds",
                                                 "Roll-forward"], key="ca_tab", on_change="rerun")

with tab_q:
    left, right = st.columns([3, 2])
    threshold = right.slider("Auto-apply at confidence", 0.80, 1.0, 0.95, 0.01, key="ca_threshold",
                             help="Lines at or above this confidence are applied without review.")
    left.caption("Matching proposes invoices for every receipt with unapplied cash: remittance references "
                 "(also with typos), exact amounts, combinations of up to 4 invoices, short payments, "
                 "oldest first.")
    read_only = ui.read_only()
    if read_only:
        with left:
            ui.readonly_notice("Matching, accepting and rejecting")
    if left.button("Run matching", type="primary", key="ca_run", icon=":material/join_inner:", disabled=read_only):
        ui.write_action(cash_app.run_matching, engine, user, auto_threshold=threshold, as_of=as_of,
                        success="Matching done: {result[auto_applied]} lines applied automatically, "
                                "{result[queued]} waiting for review.")
    queue = ui.cached(cash_app.pending_proposals, flt)
    st.subheader("Waiting for review")
    picked = ui.table(queue, "cash_application_queue", key="ca_queue",
                      empty="No proposals waiting for review. Run matching to propose matches.",
                      on_select="rerun", selection_mode="multi-row",
                      column_config={"confidence": st.column_config.ProgressColumn(
                          "Confidence", min_value=0.0, max_value=1.0, format="%.2f")})
    rows = list(getattr(getattr(picked, "selection", None), "rows", []) or [])
    ids = [int(queue.iloc[r]["proposal_id"]) for r in rows if queue is not None and r < len(queue)]
    b1, b2, _ = st.columns([1, 1, 3])
    if b1.button(f"Accept ({len(ids)})", key="ca_accept", disabled=not ids or read_only, icon=":material/check:"):
        ui.write_action(cash_app.accept_proposals, engine, user, ids,
                        success=f"Applied {len(ids)} proposal(s).")
    if b2.button(f"Reject ({len(ids)})", key="ca_reject", disabled=not ids or read_only, icon=":material/close:"):
        ui.write_action(cash_app.reject_proposals, engine, user, ids, success="Rejected {result} proposal(s).")

with tab_u:
    aging = ui.cached(cash_app.unapplied_aging, as_of, flt)
    st.subheader("Aging of unapplied cash")
    st.caption("Days since the receipt date. Unidentified receipts (no customer) show only without customer "
               "filters.")
    if aging is None or int(aging["unapplied_cents"].sum()) == 0:
        ui.empty_state("No unapplied cash for this filter.")
    else:
        st.bar_chart(ui.display_frame(aging), x="bucket", y="unapplied", horizontal=False, height=240)
        ui.table(aging, f"unapplied_aging_{as_of}", key="ca_aging")
        detail = ui.cached(cash_app.unapplied_cash, as_of, flt)
        st.subheader("Receipts")
        ui.table(detail, f"unapplied_cash_{as_of}", key="ca_unapplied")

with tab_bank:  # bank engineer's section: analytics.bank, statement hit rates and the suspense queue
    from analytics.bank.remittance import apply_advice
    from analytics.cash_app.evaluation import statement_hit_rates
    from analytics.cash_app.matching import suspense_queue

    st.subheader("Hit rate per statement")
    st.caption("Each statement's receipts by outcome: applied automatically by matching, proposed (waiting for or "
               "decided by a person, or split by a remittance advice), unmatched. Hit rate = (auto-applied + "
               "proposed) / receipts not returned. Load statements on the Data page.")
    rates = ui.cached(statement_hit_rates)
    ui.table(rates, "bank_statement_hit_rates", key="ca_bank_rates", empty="No bank statement loaded yet.",
             column_config={c: st.column_config.ProgressColumn(c.replace("_", " ").capitalize(), min_value=0.0,
                                                               max_value=1.0, format="percent")
                            for c in ("hit_rate", "auto_rate")})
    st.subheader("Suspense queue")
    st.caption("Cash nobody has identified: no customer, nothing applied, no proposal waiting, and neither the payer "
               "account (learned from past matches) nor the payer name points to a customer. Oldest first.")
    queue_s = ui.cached(suspense_queue, as_of)
    ui.table(queue_s, f"suspense_queue_{as_of}", key="ca_suspense", empty="Nothing in suspense.")
    st.subheader("Remittance advice")
    st.caption("A CSV or Excel list from the payer: invoice, amount, and optionally deduction and reason code. "
               "It splits the receipt over the invoices; a short payment with a reason code becomes a deduction.")
    a1, a2 = st.columns([1, 2])
    advice_receipt = a1.text_input("Receipt (id or bank reference)", key="ca_advice_receipt")
    advice_file = a2.file_uploader("Remittance advice", type=["csv", "xlsx"], key="ca_advice_file")
    if st.button("Apply advice", key="ca_advice_btn", disabled=advice_file is None or ui.read_only(),
                 icon=":material/receipt_long:"):
        ui.write_action(apply_advice, engine, user, advice_receipt.strip() or None, advice_file.getvalue(),
                        file_name=advice_file.name,
                        success="{result[message]}")

with tab_r:
    st.subheader("Refund package")
    st.caption("Customers whose unapplied cash and open credit memos exceed what they owe: refundable "
               "= unapplied cash + open credit − open invoices.")
    refunds = ui.cached(cash_app.refund_package, None, as_of, flt)
    ui.table(refunds, f"refund_package_{as_of}", key="ca_refunds", empty="No credit balances to refund.")

with tab_rf:
    st.subheader("Month-end roll-forward")
    first_default = (as_of.replace(day=1) - dt.timedelta(days=330)).replace(day=1)
    c1, c2 = st.columns(2)
    rf_from = c1.date_input("From month", first_default, key="ca_rf_from")
    rf_to = c2.date_input("To month", as_of, key="ca_rf_to")
    withheld = problems is not None and not problems.empty  # listed at the top; rollforward would refuse
    if withheld:
        st.error("Withheld: the ledger holds postings money cannot be in (listed at the top of the page).",
                 icon=":material/report:")
    rep = ui.reporting_currency()  # fx: in the reporting currency, with the month-end FX revaluation line
    if withheld:
        rf = None
    elif rep:
        rf = ui.run_safely(ui.cached, cash_app.revalued_rollforward, rf_from.replace(day=1), rf_to.replace(day=1),
                           rep, flt)
    else:
        rf = ui.run_safely(ui.cached, cash_app.rollforward, rf_from.replace(day=1), rf_to.replace(day=1), flt)
    if rf is not None and rep:
        st.caption(f"Every currency in {rep} at month-end rates (rate date per row); the FX revaluation line is the "
                   "unrealised gain (+) or loss (−) on open foreign-currency items, revalued from last month-end's rate.")
    if rf is not None:
        if rf.empty:
            ui.empty_state("No ledger activity in these months.")
        else:
            if cash_app.ties_out(rf):
                st.success("The subledger ties to the open items at every month end (difference 0.00).",
                           icon=":material/check_circle:")
            else:
                bad = rf[rf["difference_cents"] != 0]
                st.warning(f"{len(bad)} month(s) do not tie to the open items: see the difference column.",
                           icon=":material/warning:")
            st.caption("Opening + invoices + debit memos + credit memos (negative) + cash applied (negative) "
                       "+ credit memos applied (nets to 0) + write-offs + deductions + other adjustments = "
                       "closing; difference = closing − open items at the month end. Unapplied cash is "
                       "shown for information (not part of AR).")
            ui.table(rf, f"rollforward_{rf_from:%Y%m}_{rf_to:%Y%m}", key="ca_rollforward")
