"""Customer 360: one account — items, payments, disputes, promises, history — and the forms to
record work on it (call / e-mail / note, promise to pay, dispute, write-off proposal).

Open with ``?customer=<id>`` to land on an account. A collector can only open customers of their
own portfolio: the check is made on the server (:func:`analytics.auth.require`) whatever the URL says.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from analytics import auth, dunning, schema, statements, workflow
from dashboard import common as ui
from analytics import accounts as q
from analytics.worklist import worklist

user = ui.require_page("customer_360")
as_of, flt = ui.sidebar_filters()
engine = ui.get_engine()

st.title("Customer 360")
ui.show_flash()

choices = ui.cached(q.customer_choices, flt)
wanted = st.query_params.get("customer")
if wanted:
    # Server-side check first: a foreign (or unknown) id in the URL is refused, never shown.
    ok, _ = ui.attempt(auth.require, user, "view", wanted, engine)
    if not ok:
        st.stop()
    if wanted not in set(choices["customer_id"]):  # allowed, but outside the sidebar filter
        extra = ui.cached(q.customer_choices, type(flt)(customers=(wanted,)))
        choices = extra if choices.empty else pd.concat([choices, extra], ignore_index=True)

if choices.empty:
    ui.empty_state("No customers for this filter.")
    st.stop()

labels = dict(zip(choices["customer_id"], choices["name"]))
ids = list(choices["customer_id"])
if wanted in labels:
    st.session_state["c360_customer"] = wanted
elif st.session_state.get("c360_customer") not in labels:
    # No account asked for: open the top of this user's worklist (the account to work first).
    top = ui.run_safely(ui.cached, worklist, as_of, flt)
    top_ids = [c for c in (list(top["customer_id"]) if top is not None and not top.empty else []) if c in labels]
    st.session_state["c360_customer"] = top_ids[0] if top_ids else ids[0]
customer_id = st.selectbox("Customer", ids, key="c360_customer",
                           format_func=lambda cid: f"{labels.get(cid, cid)} ({cid})")
if st.query_params.get("customer") != customer_id:
    st.query_params["customer"] = customer_id
# Every read below is for this customer only, after the portfolio check.
ok, _ = ui.attempt(auth.require, user, "view", customer_id, engine)
if not ok:
    st.stop()

profile = ui.cached(q.customer_profile, customer_id)
if profile is None:
    st.error(f"Unknown customer {ui.plain(repr(customer_id))}.")
    st.stop()
currency = profile["currency"]
items = ui.cached(q.customer_items, customer_id, as_of)
receipts = ui.cached(q.customer_receipts, customer_id, as_of)
disputes = ui.cached(q.customer_disputes, customer_id)
promises = ui.cached(q.customer_promises, customer_id, as_of)  # with each promise's status at as_of
account_facts = ui.cached(q.customer_facts, customer_id, as_of)  # the ledger's one definition of each fact
activities = ui.cached(q.customer_activities, customer_id)
writeoffs = ui.cached(q.customer_writeoffs, customer_id)

# Who did something, one spelling: the user's login as stored (the ledger's collector ids, e.g. COL01,
# become the login of that collector's user, col01).
_LOGINS = {u["collector_id"]: u["username"] for u in (ui.run_safely(auth.list_users, engine) or [])
           if u.get("collector_id")}


def _by_login(frame, *columns):
    for col in columns:
        if col in frame.columns:
            frame = frame.assign(**{col: frame[col].map(lambda who: _LOGINS.get(who, who))})
    return frame


disputes = _by_login(disputes, "created_by", "resolved_by")
promises = _by_login(promises, "recorded_by")
writeoffs = _by_login(writeoffs, "proposed_by", "decided_by")

# ---- header -------------------------------------------------------------------------------
st.subheader(f"{ui.plain(profile['name'])} · {ui.plain(customer_id)}")
facts = [ui.plain(profile.get('business_unit') or '—'), ui.plain(profile.get('region') or '—'),
         ui.plain(profile.get('country') or '—'), f"terms {profile['payment_terms_days']} days", ui.plain(currency),
         f"collector {ui.plain(profile.get('collector_name') or profile.get('collector_id') or 'unassigned')}"]
if profile.get("customer_since"):
    facts.append(f"customer since {profile['customer_since']:%b %Y}")
st.caption(" · ".join(facts) + f" · figures as of {as_of:%d %b %Y}")

items = items.sort_values(["due_date", "invoice_id"], kind="stable").reset_index(drop=True)  # oldest first
open_items = items[items["open_cents"] != 0]
balance = int(open_items["open_cents"].sum()) if not open_items.empty else 0
overdue = int(open_items.loc[open_items["days_past_due"].fillna(0) > 0, "open_cents"].sum()) if not open_items.empty else 0
oldest = open_items["days_past_due"].max() if not open_items.empty else None
limit = profile.get("credit_limit_cents")
open_disputes = disputes[disputes["resolved_date"].isna()] if not disputes.empty else disputes

cols = st.columns(5)
ui.money_metric(cols[0], "Balance", cents_value=balance, currency=currency)
ui.money_metric(cols[1], "Past due", cents_value=overdue, currency=currency)
oldest_days = int(oldest) if oldest is not None and not ui.is_missing(oldest) else 0
cols[2].metric("Oldest past due", f"{oldest_days} days" if oldest_days > 0 else "—")
if limit:
    use = balance / limit
    cols[3].metric("Credit limit used", ui.pct(use, ratio=True), help=f"Limit {ui.cents(limit, currency)}")
    if use > 1:
        st.warning(f"Over the credit limit by {ui.cents(balance - limit, currency)}.", icon=":material/warning:")
    else:
        st.progress(min(max(use, 0.0), 1.0), text=f"Credit limit use {ui.pct(use, ratio=True)} of "
                                                   f"{ui.cents(limit, currency)}")
else:
    cols[3].metric("Credit limit", "none set")
cols[4].metric("Open disputes", f"{account_facts['open_disputes']}",
               help=f"{ui.cents(account_facts['disputed_cents'], currency)} open at {as_of:%d %b %Y}; last contact "
                    f"(call, e-mail, letter, portal, escalation; notes don't count): "
                    f"{account_facts['last_contact'] or 'never'}")

# ---- dunning letter ------------------------------------------------------------------------
if ui.can(user, "draft_letters"):
    with st.container(border=True):
        st.markdown(":material/mail: **Dunning letter**")
        step_rows = ui.cached(dunning.dunning_candidates, as_of, type(flt)(customers=(customer_id,)))
        if step_rows.empty:
            st.caption(f"Nothing overdue (outside disputes) at {as_of:%d %b %Y}: no letter is due.")
        else:
            worst = step_rows.iloc[0]
            st.markdown(f"Next step: **{ui.plain(ui.label(worst['step']))}** — worst item {int(worst['max_days_past_due'])} days past "
                        f"due, {ui.cents(int(worst['overdue_cents']), worst['currency'], 2)} overdue"
                        + (" · credit hold" if bool(worst["credit_hold"]) else ""))
            ok, letter = ui.attempt(ui.cached, dunning.draft_letter, customer_id, as_of)
            if ok:
                with st.container(height=220, border=False):
                    st.text(letter)
                st.download_button(
                    f"Download the {worst['step']} letter (.txt)", data=letter.encode("utf-8"),
                    file_name=f"{as_of.isoformat()}_{customer_id}_{str(worst['step']).replace(' ', '_')}.txt",
                    mime="text/plain", key="c360_letter", icon=":material/download:", on_click="ignore")
                st.caption("A draft to send yourself; the Dunning page previews it and drafts letters in bulk.")

# ---- statement of account -------------------------------------------------------------------
statement_start = as_of - dt.timedelta(days=89)
ok, statement_pdf = ui.attempt(ui.cached, statements.statement_pdf, customer_id, statement_start, as_of)
if ok:
    st.download_button(
        f"Statement of account, {statement_start:%d %b %Y} – {as_of:%d %b %Y} (PDF)",
        data=statement_pdf, file_name=statements.pdf_name(customer_id, statement_start, as_of),
        mime="application/pdf", key="c360_statement", icon=":material/picture_as_pdf:", on_click="ignore",
        help="Opening balance, every invoice, payment and credit of the last 90 days, closing balance and aging "
             "(the same statement as `python -m analytics statement`).")

# ---- tabs ---------------------------------------------------------------------------------
# Keyed: the chosen tab is kept across reruns, so after a save the next submit stays on "Record work".
tab_items, tab_pay, tab_disp, tab_prom, tab_hist, tab_act = st.tabs(
    ["Open items", "Payments", "Disputes", "Promises", "Timeline", "Record work"], key="c360_tab", on_change="rerun")

with tab_items:
    show_all = st.toggle("Show settled items too", key="c360_all_items")
    shown = items if show_all else open_items
    ui.table(shown, f"{customer_id}_items", key="c360_items",
             empty="No open items at this date." if not show_all else "No items at this date.")
    instalments = ui.cached(q.customer_instalments, customer_id, as_of)  # invoices with a schedule
    if not instalments.empty:
        st.markdown("**Instalments still open** (whatever was paid settles the earliest instalment first)")
        ui.table(instalments, f"{customer_id}_instalments", key="c360_instalments")
with tab_pay:
    ui.table(receipts, f"{customer_id}_payments", key="c360_payments", empty="No payments up to this date.")
with tab_disp:
    ui.table(disputes, f"{customer_id}_disputes", key="c360_disputes", empty="No disputes for this customer.")
    if not writeoffs.empty:
        st.markdown("**Write-off proposals**")
        ui.table(writeoffs, f"{customer_id}_writeoffs", key="c360_writeoffs")
with tab_prom:
    ui.table(promises, f"{customer_id}_promises", key="c360_promises", empty="No promises to pay recorded.")
with tab_hist:
    history = _by_login(q.timeline(items, receipts, disputes, promises, activities), "by")
    ui.table(history, f"{customer_id}_timeline", key="c360_timeline", empty="Nothing has happened on this account yet.")
    if ui.can(user, "view_audit"):
        with st.expander("Audit trail"):
            trail = ui.run_safely(workflow.audit_trail, engine, customer_id=customer_id, limit=200)
            ui.table(trail, f"{customer_id}_audit", key="c360_audit", empty="No changes recorded through the product.")

# ---- forms --------------------------------------------------------------------------------
with tab_act:
    today = dt.date.today()
    invoice_options = [None] + list(open_items["invoice_id"])
    open_labels = {r.invoice_id: f"{r.invoice_id} · open {ui.cents(r.open_cents, currency, 2)} · due {r.due_date}"
                   for r in open_items.itertuples(index=False)}

    def inv_label(value):
        return "— whole account —" if value is None else open_labels.get(value, value)

    if ui.read_only():
        ui.readonly_notice("Recording work on this account")
    elif not any(ui.can(user, a) for a in ("write_activity", "record_promise", "manage_disputes", "propose_writeoff",
                                            "approve_writeoff")):
        st.info("Your role can view this account but not record work on it.", icon=":material/visibility:")
    st.caption(f"Recorded today ({today:%d %b %Y}) as **{ui.plain(user.username)}**; every change is kept in the audit log.")
    left, right = st.columns(2)
    if ui.can(user, "write_activity"):
        with left.form("c360_activity", clear_on_submit=True):
            ui.show_flash("c360_activity")  # this form's last save, shown beside it
            st.markdown("**Log a call, e-mail or note**")
            a_type = st.selectbox("Type", schema.ACTIVITY_TYPES, key="act_type", format_func=ui.label)
            a_outcome = st.text_input("Outcome", key="act_outcome", max_chars=64,
                                      placeholder="e.g. no answer, promised, left voicemail")
            a_note = st.text_area("Note", key="act_note", height=80)
            a_inv = st.selectbox("About item", invoice_options, key="act_invoice", format_func=inv_label)
            if st.form_submit_button("Save activity", type="primary"):
                ui.write_action(workflow.log_activity, engine, user, customer_id, a_type,
                                outcome=a_outcome.strip() or None, note=a_note.strip() or None, invoice_id=a_inv,
                                success="Activity saved (#{result}).", where="c360_activity")
    if ui.can(user, "record_promise"):
        with right.form("c360_promise", clear_on_submit=True):
            ui.show_flash("c360_promise")  # this form's last save, shown beside it
            st.markdown("**Promise to pay**")
            p_date = st.date_input("Promised date", value=today + dt.timedelta(days=7), min_value=today,
                                   key="prom_date")
            p_amount = st.number_input(f"Amount ({currency})", min_value=0.0, step=100.0, format="%.2f",
                                       key="prom_amount")
            p_inv = st.selectbox("For item", invoice_options, key="prom_invoice", format_func=inv_label)
            if st.form_submit_button("Save promise", type="primary"):
                if p_amount <= 0:
                    st.error("Enter the promised amount.")
                else:
                    ui.write_action(workflow.record_promise, engine, user, customer_id, p_date, ui.to_cents(p_amount),
                                    invoice_id=p_inv, today=today, where="c360_promise",
                                    success="Promise saved (#{result}): " + f"{ui.money(p_amount, currency, 2)} "
                                    f"by {p_date:%d %b %Y}.")
    left, right = st.columns(2)
    if ui.can(user, "manage_disputes"):
        with left.form("c360_dispute", clear_on_submit=True):
            ui.show_flash("c360_dispute")  # this form's last save, shown beside it
            st.markdown("**Open a dispute**")
            d_inv = st.selectbox("Item", list(open_items.loc[open_items["open_cents"] > 0, "invoice_id"]),
                                 key="disp_invoice", format_func=inv_label, index=None, placeholder="Choose an item")
            d_reason = st.selectbox("Reason", ui.cached(q.dispute_reason_codes), key="disp_reason",
                                    format_func=ui.label)
            d_amount = st.number_input(f"Amount in dispute ({currency})", min_value=0.0, step=100.0, format="%.2f",
                                       key="disp_amount")
            d_note = st.text_input("Note", key="disp_note")
            if st.form_submit_button("Open dispute", type="primary"):
                if d_inv is None or d_amount <= 0:
                    st.error("Choose the item and the amount in dispute.")
                else:
                    ui.write_action(workflow.open_dispute, engine, user, d_inv, d_reason, ui.to_cents(d_amount),
                                    note=d_note.strip() or None, success="Dispute #{result} opened.", where="c360_dispute")
        if len(open_disputes):
            with left.form("c360_resolve"):
                ui.show_flash("c360_resolve")  # this form's last save, shown beside it
                st.markdown("**Resolve a dispute**")
                r_id = st.selectbox(
                    "Dispute", list(open_disputes["dispute_id"]), key="res_dispute",
                    format_func=lambda i: next(f"#{r.dispute_id} · {r.invoice_id} · {ui.label(r.reason_code)} · "
                                               f"{ui.cents(r.amount_cents, currency, 2)}"
                                               for r in open_disputes.itertuples() if r.dispute_id == i))
                r_outcome = st.selectbox("Outcome", schema.DISPUTE_OUTCOMES, key="res_outcome", format_func=ui.label)
                if st.form_submit_button("Resolve"):
                    ui.write_action(workflow.resolve_dispute, engine, user, int(r_id), r_outcome,
                                    success=f"Dispute #{int(r_id)} resolved ({ui.label(r_outcome)}).",
                                    where="c360_resolve")
    if ui.can(user, "propose_writeoff"):
        with right.form("c360_writeoff", clear_on_submit=True):
            ui.show_flash("c360_writeoff")  # this form's last save, shown beside it
            st.markdown("**Propose a write-off**")
            w_inv = st.selectbox("Item", list(open_items.loc[open_items["open_cents"] > 0, "invoice_id"]),
                                 key="wo_invoice", format_func=inv_label, index=None, placeholder="Choose an item")
            w_amount = st.number_input(f"Amount ({currency})", min_value=0.0, step=100.0, format="%.2f",
                                       key="wo_amount")
            w_reason = st.text_input("Reason", key="wo_reason", max_chars=200)
            if st.form_submit_button("Propose write-off", type="primary"):
                if w_inv is None or w_amount <= 0 or not w_reason.strip():
                    st.error("Choose the item, the amount and give a reason.")
                else:
                    ui.write_action(workflow.propose_writeoff, engine, user, w_inv, ui.to_cents(w_amount),
                                    w_reason.strip(), success="Write-off proposal #{result} sent for approval.", where="c360_writeoff")
    pending = writeoffs[writeoffs["status"] == "proposed"] if not writeoffs.empty else writeoffs
    if ui.can(user, "approve_writeoff") and len(pending):
        with right.form("c360_decide"):
            ui.show_flash("c360_decide")  # this form's last save, shown beside it
            st.markdown("**Decide a write-off proposal**")
            w_id = st.selectbox("Proposal", list(pending["proposal_id"]), key="wo_decide",
                                format_func=lambda i: next(f"#{r.proposal_id} · {r.invoice_id} · "
                                                           f"{ui.cents(r.amount_cents, currency, 2)} · by {r.proposed_by}"
                                                           for r in pending.itertuples() if r.proposal_id == i))
            approve = st.radio("Decision", ("Approve", "Reject"), horizontal=True, key="wo_decision")
            if st.form_submit_button("Record decision"):
                ui.write_action(workflow.decide_writeoff, engine, user, int(w_id), approve == "Approve",
                                success=f"Write-off proposal #{int(w_id)}: {approve.lower()}d.", where="c360_decide")
