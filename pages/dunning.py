"""Dunning: which accounts are due for which reminder, a preview of each letter, and the letters
to download (one, or a zip of the selected accounts). Nothing is ever sent.

Candidates and letters come from :mod:`analytics.dunning` and follow the dunning procedure in
force (:func:`analytics.dunning.current_procedure`, shown on the page). A collector sees only their own portfolio (the sidebar
filter is forced by :func:`analytics.auth.scope_filter`; drafting is checked again per account).
"""
from __future__ import annotations

import streamlit as st

from analytics import dunning, dunning_runs, mailer, statements
from analytics.kpis import DEFAULT_BUCKETS
from dashboard import common as ui

user = ui.require_page("dunning")
as_of, flt = ui.sidebar_filters()
engine = ui.get_engine()
ui.page_title("Dunning", as_of, flt)
ui.show_flash()

everything = ui.cached(dunning.dunning_candidates, as_of, flt)
if everything.empty:
    ui.empty_state("Nothing is overdue for this filter at this date: no letter to draft.")
    st.stop()

bucket_order = [b.label for b in DEFAULT_BUCKETS]
present_buckets = sorted(set(everything["bucket"]),
                         key=lambda b: bucket_order.index(b) if b in bucket_order else len(bucket_order))
present_steps = [s for s in dunning.STEPS if s in set(everything["step"])]

left, right = st.columns(2)
steps = left.multiselect("Dunning step", present_steps, key="dun_steps", placeholder="All steps")
buckets = right.multiselect("Aging bucket", present_buckets, key="dun_buckets", placeholder="All overdue buckets")
cands = ui.cached(dunning.dunning_candidates, as_of, flt, tuple(steps)) if steps else everything
if buckets:
    cands = cands[cands["bucket"].isin(buckets)].reset_index(drop=True)

cur = ui.frame_currency(cands, flt) or (cands["currency"].mode().iloc[0] if not cands.empty else None)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Accounts due a letter", f"{len(cands):,}")
ui.money_metric(c2, "Overdue (not disputed)", cents_value=int(cands["overdue_cents"].sum()), currency=cur)
ui.money_metric(c3, "In dispute", cents_value=int(cands["disputed_cents"].sum()), currency=cur)
c4.metric("On credit hold", f"{int(cands['credit_hold'].sum()):,}")
procedure = dunning.current_procedure()
with st.expander(f"Dunning procedure: {procedure.name}", icon=":material/rule:"):
    st.caption(f"Read from `{procedure.source}` (set AR_DUNNING_FILE to use your own copy). An item counts when it "
               f"is owed, more than {procedure.grace_days} days past due, "
               + ("not in dispute " if procedure.exclude_disputed else "")
               + f"and not blocked. An account's step is the highest level whose counted items at or above its "
               f"days total at least its minimum, if all its counted items reach "
               f"{dunning.money_text(procedure.min_account_cents)}; the letter lists exactly those items. "
               f"At least {procedure.interval_days} days between two letters to an account.")
    levels = procedure.describe()
    levels["min_amount"] = [dunning.money_text(c) for c in levels.pop("min_amount_cents")]
    st.table(levels[["level", "step", "from_days", "min_amount", "credit_hold", "template", "description"]]
             .rename(columns={"from_days": "from days past due", "min_amount": "minimum amount"})
             .set_index("level"))
st.caption("The letters of this list are drafts for download: nothing is sent or recorded from here (the dunning run "
           "further down records and sends them). The amount on a letter is the total of the items it lists (letter "
           "amount), not the whole overdue balance.")

cols = ["customer_name", "customer_id", "step", "max_days_past_due", "bucket", "letter_items", "letter_cents",
        "overdue_items", "open_cents", "overdue_cents", "disputed_cents", "credit_hold", "collector_name", "currency"]
ui.table(cands[cols], f"dunning_{as_of:%Y%m%d}", key="dun_table",
         column_config={"max_days_past_due": st.column_config.NumberColumn("Worst days past due"),
                        "step": st.column_config.TextColumn("Step")},
         empty="No account at the chosen steps and buckets.")
if cands.empty:
    st.stop()

ids = list(cands["customer_id"])
names = dict(zip(cands["customer_id"], cands["customer_name"]))
step_of = dict(zip(cands["customer_id"], cands["step"]))


def label(cid: str) -> str:
    return f"{names.get(cid) or cid} ({cid}) · {step_of.get(cid, '')}"


# ---- one letter ----------------------------------------------------------------------------
st.subheader("Preview")
p_left, p_right = st.columns([3, 1])
if st.session_state.get("dun_preview") not in ids:
    st.session_state["dun_preview"] = ids[0]
preview = p_left.selectbox("Account", ids, key="dun_preview", format_func=label)
fmt = p_right.segmented_control("Format", ("Text", "HTML"), default="Text", key="dun_fmt") or "Text"
lang_choice = p_right.selectbox("Language", ["default"] + dunning.languages(), key="dun_lang",
                                help="Templates in analytics/templates/dunning/<language>/ where they exist.")
lang = None if lang_choice == "default" else lang_choice
ok, letter_txt = ui.attempt(ui.cached, dunning.draft_letter, preview, as_of, language=lang)
if ok:
    if fmt == "HTML":
        ok, letter_html = ui.attempt(ui.cached, dunning.draft_letter, preview, as_of, fmt="html", language=lang)
        if ok:
            with st.container(border=True):
                st.html(letter_html)
    else:
        st.code(letter_txt, language=None, wrap_lines=True)
    stem = f"{as_of.isoformat()}_{preview}_{step_of[preview].replace(' ', '_')}"
    row = st.container(horizontal=True, gap="small")
    with row:
        st.download_button("Letter (.txt)", data=letter_txt.encode("utf-8"), file_name=f"{stem}.txt",
                           mime="text/plain", key="dun_dl_txt", icon=":material/download:", on_click="ignore")
        st.download_button("Letter (.html)",
                           data=lambda: dunning.draft_letter(engine, preview, as_of, fmt="html", language=lang).encode("utf-8"),
                           file_name=f"{stem}.html", mime="text/html", key="dun_dl_html",
                           icon=":material/download:", on_click="ignore")

    st.download_button(
        "Statement of account (.pdf)", icon=":material/receipt_long:", on_click="ignore", key="dun_dl_statement",
        data=lambda: statements.render_pdf(statements.statement(engine, preview, as_of.replace(day=1), as_of)),
        file_name=f"statement_{preview}_{as_of.replace(day=1).isoformat()}_{as_of.isoformat()}.pdf",
        mime="application/pdf", help="This month to the as-of date: brought forward, transactions, open items, aging.")
    ok_mail, smtp = ui.attempt(mailer.settings_from_env)
    if ok_mail and smtp is not None and ui.can(user, "write_activity") and not ui.read_only():
        if st.button("E-mail the statement", key="dun_mail_statement", icon=":material/forward_to_inbox:"):
            ui.write_action(statements.send_statement, engine, user, preview, as_of.replace(day=1), as_of,
                            success="Statement e-mailed to {result}.")

# ---- many letters --------------------------------------------------------------------------
st.subheader("Letters for several accounts")
if st.session_state.get("_dun_listed") != ids:  # a new list (filter, date): every listed account again
    st.session_state["_dun_listed"] = ids
    st.session_state["dun_selected"] = list(ids)
selected = st.multiselect("Accounts", ids, key="dun_selected", format_func=label,
                          help="Every listed account by default; remove the ones you do not want.")
z_fmt = st.radio("Format of the letters", ("text", "html"), horizontal=True, key="dun_zip_fmt",
                 format_func=lambda f: "Plain text" if f == "text" else "HTML")
if not selected:
    st.caption("Choose at least one account.")
else:
    chosen = tuple(selected)
    st.download_button(
        f"{len(chosen)} letter{'s' if len(chosen) != 1 else ''} (.zip)",
        data=lambda: dunning.draft_letters(engine, chosen, as_of, fmt=z_fmt, user=user),
        file_name=f"dunning_{as_of.isoformat()}.zip", mime="application/zip", key="dun_dl_zip",
        icon=":material/folder_zip:", on_click="ignore")
    st.caption("The zip holds one file per account and `index.csv` (step, file, or why an account was skipped).")
    if ui.read_only():
        st.caption("Recording the letters as activities is switched off: this database is read-only "
                   "(AR_DB_READONLY). The letters can still be downloaded.")
    elif ui.can(user, "write_activity"):
        if st.button(f"Record {len(chosen)} letter activit{'ies' if len(chosen) != 1 else 'y'}", key="dun_record",
                     icon=":material/history_edu:",
                     help="Adds a 'letter' activity per account (today, as you) once the letters are on their way. "
                          "Nothing is sent by the product."):
            ui.write_action(dunning.draft_letters, engine, chosen, as_of, fmt=z_fmt, record=True, user=user,
                            success=f"Recorded {len(chosen)} letter activities.")

# ---- the dunning run -----------------------------------------------------------------------
st.subheader("Dunning run")
st.caption("Runs the procedure for the accounts of this filter at the as-of date: an account gets a letter when "
           "an item it lists reaches a new level and its last letter is old enough. What goes out is recorded "
           "(dunning history, a letter activity per customer, audit trail); a second run the same day sends "
           "nothing twice. No mail server is configured: letters are produced for download.")
ok, plan = ui.attempt(dunning_runs.run_dunning, engine, user, as_of, dry_run=True, flt=flt)
if ok:
    going = plan[plan["action"] == "send"]
    st.markdown(f"**{len(going):,}** letter{'s' if len(going) != 1 else ''} would go out now; "
                f"{len(plan) - len(going):,} account{'s' if len(plan) - len(going) != 1 else ''} skipped.")
    shown = plan[["customer_id", "step", "amount_cents", "currency", "invoice_ids", "action", "reason"]]
    ui.table(shown, f"dunning_run_plan_{as_of:%Y%m%d}", key="dun_run_plan",
             column_config={"invoice_ids": st.column_config.TextColumn("Items listed")})
    if ui.read_only():
        st.caption("Runs are switched off: this database is read-only (AR_DB_READONLY).")
    elif ui.can(user, "write_activity") and len(going):
        if st.button(f"Run the dunning: record {len(going)} letter{'s' if len(going) != 1 else ''}",
                     key="dun_run", icon=":material/send:", type="primary"):
            ui.write_action(lambda: int(dunning_runs.run_dunning(engine, user, as_of, flt=flt)["notice_id"]
                                        .notna().sum()),
                            success="Dunning run recorded {result} letter(s).")
if ui.can(user, "write_activity") and not ui.read_only():
    with st.expander("Dunning blocks", icon=":material/block:"):
        st.caption("A blocked account or item gets no letter until the block is released (e.g. a payment plan).")
        b_left, b_right = st.columns([3, 2])
        b_reason = b_left.text_input("Reason", key="dun_block_reason", max_chars=200)
        if b_right.button(f"Block dunning for {preview}", key="dun_block"):
            ui.write_action(dunning_runs.block, engine, user, preview, b_reason,
                            success=f"Dunning blocked for {preview}.")
        blocks = ui.cached(dunning_runs.active_blocks, tuple(everything["customer_id"])
                           if user.role == "collector" else None)
        if blocks is not None and not blocks.empty:
            ui.table(blocks, "dunning_blocks", key="dun_blocks", downloads=False)
            rel = st.selectbox("Release block", list(blocks["id"]), key="dun_release_id",
                               format_func=lambda i: f"#{i} {blocks.set_index('id').loc[i, 'customer_id']}")
            if st.button("Release", key="dun_release"):
                ui.write_action(dunning_runs.release_block, engine, user, int(rel),
                                success=f"Block #{rel} released.")
hist = ui.cached(dunning_runs.history)
if hist is not None and not hist.empty:
    with st.expander(f"Dunning history ({len(hist):,} letters)", icon=":material/history:"):
        visible = set(everything["customer_id"]) if user.role == "collector" else None
        if visible is not None:
            hist = hist[hist["customer_id"].isin(visible)]
        ui.table(hist, "dunning_history", key="dun_history")
