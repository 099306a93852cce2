"""Data (admins): load an AR export, generate the demo ledger, export tables, manage users.

Loads go through :func:`analytics.loaders.preview` / :func:`analytics.loaders.load` (validated,
all-or-nothing unless "skip invalid rows", idempotent); the demo ledger through
:func:`analytics.generator.generate`. Every row error names the spreadsheet row, column and reason,
and can be downloaded.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import streamlit as st

from analytics import auth, db, schema
from analytics.errors import UserError, ValidationFailed
from dashboard import common as ui
from analytics import accounts as q

user = ui.require_page("data")
engine = ui.get_engine()
st.title("Data")
ui.show_flash()

# Keyed: the chosen tab survives a save's rerun.
tab_load, tab_demo, tab_export, tab_users = st.tabs(["Load a file", "Demo ledger", "Export", "Users"],
                                                      key="data_tab", on_change="rerun")

FORMAT_HELP = {
    "ibm": "IBM Watson 'Accounts Receivable' sample CSV",
    "highradius": "HighRadius payment-date-prediction export (19 columns)",
    "csv": "any CSV ledger/aging export, with a column-mapping file",
    "excel": "any Excel ledger/aging export, with a column-mapping file",
}


def _errors_frame(errors) -> pd.DataFrame:
    from analytics import loaders

    return loaders.errors_frame(errors)


def _parse_mapping(upload):
    """The uploaded mapping, read and checked by the loaders (size bound, no YAML aliases)."""
    from analytics import loaders

    if upload is None:
        return None
    return loaders.load_mapping(upload.getvalue())


def _show_errors(errors, name: str, key: str) -> None:
    frame = _errors_frame(errors)
    st.markdown(f"**{len(frame):,} row error(s)** — fix them in the file, or load with *Skip invalid rows*.")
    ui.table(frame, name, key=key, height=min(400, 40 + 35 * len(frame)))


# ---- load a file --------------------------------------------------------------------------
def _load_form() -> None:
    from analytics import loaders

    c1, c2 = st.columns([1, 2])
    fmt = c1.selectbox("Format", loaders.FORMATS, key="data_fmt", format_func=lambda f: f"{f} — {FORMAT_HELP.get(f, '')}")
    upload = c2.file_uploader("File", type=["csv", "txt", "xlsx", "xls"], key="data_file")
    mapping_upload = None
    if fmt in ("csv", "excel"):
        mapping_upload = st.file_uploader("Column mapping (YAML or TOML)", type=["yaml", "yml", "toml"],
                                          key="data_mapping",
                                          help="Which column holds what; examples in analytics/loaders/mappings/.")
    skip_invalid = st.checkbox("Skip invalid rows (load the valid ones, report the rest)", key="data_skip")
    b1 = b2 = st.container(horizontal=True)
    do_preview = b1.button("Preview", key="data_preview_btn", disabled=upload is None, icon=":material/preview:")
    do_load = b2.button("Load", key="data_load_btn", type="primary", disabled=upload is None,
                        icon=":material/upload:")
    if upload is not None:
        file_key = hashlib.sha256(upload.getvalue()).hexdigest()
        if do_preview:
            ok, mapping = ui.attempt(_parse_mapping, mapping_upload)
            if ok:
                with st.spinner("Reading and checking every row…"):
                    ok, result = ui.attempt(loaders.preview, fmt, upload.getvalue(), mapping, 50)
                if ok:
                    st.session_state["data_preview"] = (file_key, fmt, *result)
        cached_preview = st.session_state.get("data_preview")
        if cached_preview and cached_preview[0] == file_key and cached_preview[1] == fmt:
            _, _, frame, errors = cached_preview
            st.markdown(f"**Preview of {ui.plain(upload.name)}** (first {len(frame)} rows, as they will be loaded)")
            for note in frame.attrs.get("notes", []):
                st.warning(ui.plain(note), icon=":material/translate:")
            ui.table(frame, "preview", key="data_preview_table", downloads=False)
            if errors:
                _show_errors(errors, f"{upload.name}_errors", "data_preview_errors")
            else:
                st.success("Every row is valid.", icon=":material/check_circle:")
        if do_load:
            ok, mapping = ui.attempt(_parse_mapping, mapping_upload)
            if ok:
                with st.status(f"Loading {ui.plain(upload.name)}…", expanded=True) as status:
                    st.write("Reading and validating every row, then writing in one transaction.")
                    try:
                        report = loaders.load(engine, fmt, upload.getvalue(), mapping, skip_invalid=skip_invalid,
                                              file_name=upload.name)
                    except ValidationFailed as exc:
                        status.update(label="Nothing was loaded: the file has bad rows.", state="error")
                        st.session_state["data_load_result"] = ("failed", upload.name, exc.errors, str(exc))
                    except UserError as exc:
                        status.update(label="Nothing was loaded.", state="error")
                        st.session_state["data_load_result"] = ("error", upload.name, [], str(exc))
                    else:
                        status.update(label="Loaded.", state="complete")
                        st.session_state["data_load_result"] = ("ok", upload.name, report.errors, report.summary())
    result = st.session_state.get("data_load_result")
    if result:
        kind, name, errors, message = result
        if kind == "ok":
            st.success("  \n".join(ui.plain(line) for line in message.splitlines()), icon=":material/check_circle:")
        else:
            st.error(ui.plain(message) if kind == "error" else f"{ui.plain(name)}: {len(errors)} bad row(s); nothing was loaded.",
                     icon=":material/error:")
        if errors:
            _show_errors(errors, f"{name}_errors", "data_load_errors")


# ---- exchange rates and instalment schedules (fx) ----------------------------------------
def _small_load_form() -> None:
    """ECB exchange rates (:func:`analytics.fx.load_rates`) and instalment schedules
    (:func:`analytics.instalments.load_schedules`): all or nothing, safe to repeat, bad rows named."""
    from analytics import fx, instalments

    st.subheader("Exchange rates and instalment schedules")
    c1, c2 = st.columns(2)
    for col, label, fn, key in (
            (c1, "ECB daily rates (CSV as published: Date, USD, JPY, ...)", fx.load_rates, "data_rates"),
            (c2, "Instalment schedules (CSV: invoice_id, due_date, amount or portion %)", instalments.load_schedules,
             "data_schedule")):
        upload = col.file_uploader(label, type=["csv", "txt"], key=f"{key}_file")
        if col.button("Load", key=f"{key}_btn", disabled=upload is None, icon=":material/upload:"):
            try:
                col.success(ui.plain(fn(engine, upload.getvalue()).summary()), icon=":material/check_circle:")
            except ValidationFailed as exc:
                col.error(f"{ui.plain(upload.name)}: {len(exc.errors)} bad row(s); nothing was loaded.",
                          icon=":material/error:")
                with col:
                    _show_errors(exc.errors, f"{upload.name}_errors", f"{key}_errors")
            except UserError as exc:
                col.error(ui.plain(str(exc)), icon=":material/error:")


with tab_load:
    if ui.read_only():
        ui.readonly_notice("Loading files")
    else:
        _load_form()
        _small_load_form()  # fx
    st.divider()
    st.subheader("Ledger contents")
    counts = ui.cached(q.table_counts)
    st.dataframe(counts, hide_index=True, width="content")
    if "import_batches" in db.missing_tables(engine):
        batches = pd.DataFrame()
    else:
        batches = ui.cached(q.table_export, "import_batches")
    ui.table(batches.sort_values("id", ascending=False) if not batches.empty else batches, "import_batches",
             key="data_batches", empty="Nothing loaded yet.")

# ---- bank statement (bank engineer's block: analytics.bank) -------------------------------
def _bank_form() -> None:
    from analytics.bank.loading import load_statement

    st.subheader("Bank statement")
    st.caption("BAI2, SWIFT MT940 or ISO 20022 camt.053 (the format is recognised). Each credit becomes a "
               "receipt waiting for cash application; a returned payment reverses its receipt; fees are kept as "
               "statement lines. Lines already loaded are skipped, so an overlapping statement adds only its new "
               "lines; a malformed file is refused naming its line, and nothing is loaded.")
    upload = st.file_uploader("Statement file", type=["bai", "bai2", "txt", "sta", "mt940", "940", "xml",
                                                      "camt053"], key="bank_file")
    if st.button("Load statement", key="bank_load_btn", type="primary", disabled=upload is None,
                 icon=":material/account_balance:"):
        ui.write_action(load_statement, engine, upload.getvalue(), file_name=upload.name, user=user,
                        success="{result}. Open Cash application and run matching to apply them.")


with tab_load:
    if not ui.read_only():
        st.divider()
        _bank_form()

# ---- demo ledger --------------------------------------------------------------------------
def _demo_form() -> None:
    st.markdown("Generate a realistic, seeded synthetic ledger (customers with different payment behaviour, "
                "invoices, credit memos, partial payments, disputes, promises, collector activity).")
    with st.form("data_generate"):
        c1, c2, c3 = st.columns(3)
        n_customers = c1.number_input("Customers", min_value=1, max_value=100_000, value=400, step=50, key="gen_customers")
        n_invoices = c2.number_input("Invoices", min_value=1, max_value=5_000_000, value=40_000, step=1_000,
                                     key="gen_invoices")
        seed = c3.number_input("Seed", min_value=0, value=42, step=1, key="gen_seed")
        c4, c5, _ = st.columns(3)
        end = c4.date_input("Last day of history", value=dt.date(2026, 10, 31), key="gen_end")
        months = c5.number_input("Months of history", min_value=1, max_value=120, value=24, key="gen_months")
        replace = st.checkbox("Replace the current ledger (deletes all ledger data first)", key="gen_replace")
        demo_users = st.checkbox("Create the demo accounts (admin/manager/finance and one per collector, "
                                 "password `<name>-demo`)", value=True, key="gen_users")
        go = st.form_submit_button("Generate", type="primary", icon=":material/auto_awesome:")
    if go:
        if n_invoices < n_customers:
            st.error("Invoices must be at least the number of customers.")
        else:
            bar = st.progress(0.0, text="Starting…")

            def progress(fraction: float, message: str = "") -> None:
                bar.progress(min(max(float(fraction), 0.0), 1.0), text=message or f"{fraction:.0%}")

            from analytics import generator

            ok, summary = ui.attempt(generator.generate, engine, customers=int(n_customers), invoices=int(n_invoices),
                                     seed=int(seed), end=end, months=int(months), progress=progress, replace=replace,
                                     actor=user.username)
            if ok:
                bar.progress(1.0, text="Done")
                note = ""
                if demo_users:
                    ok_users, users = ui.attempt(auth.create_demo_users, engine)
                    if ok_users:
                        note = f" Demo accounts: {sum(u['created'] for u in users)} created."
                st.session_state["data_generated"] = summary
                ui.flash(f"Generated {summary.get('customers', n_customers):,} customers and "
                         f"{summary.get('invoices', n_invoices):,} invoices.{note} The filters now default "
                         "to the new ledger's last day.")
                for k in ("f_as_of", "w_as_of"):
                    st.session_state.pop(k, None)
                st.rerun()
    if st.session_state.get("data_generated"):
        with st.expander("Last generation summary"):
            st.json(st.session_state["data_generated"])


with tab_demo:
    if ui.read_only():
        ui.readonly_notice("Generating a demo ledger")
    else:
        _demo_form()

# ---- export -------------------------------------------------------------------------------
with tab_export:
    missing = set(db.missing_tables(engine))
    names = [t.name for t in schema.LEDGER_TABLES if t.name not in missing]
    table_name = st.selectbox("Table", names, index=names.index("invoices"), key="data_export_table")
    limit = st.number_input("At most this many rows (0 = all)", min_value=0, value=0, step=10_000,
                            key="data_export_limit")
    frame = ui.cached(q.table_export, table_name, int(limit) or None)
    st.caption(f"{len(frame):,} rows. Money columns are in cents in the file, as in the database.")
    st.dataframe(frame.head(200), hide_index=True)
    if frame.empty:
        ui.empty_state(f"The {table_name} table is empty.")
    else:
        ui.download_buttons(frame, table_name, key=f"export_{table_name}")

# ---- users --------------------------------------------------------------------------------
with tab_users:
    if schema.users.name in db.missing_tables(engine):
        users = pd.DataFrame()
    else:
        users = pd.DataFrame(auth.list_users(engine))
    ui.table(users, "users", key="data_users", empty="No users.")
    if ui.read_only() and auth.can(user, "manage_users"):
        ui.readonly_notice("Adding users")
    if ui.can(user, "manage_users"):
        with st.form("data_add_user", clear_on_submit=True):
            st.markdown("**Add a user**")
            c1, c2, c3 = st.columns(3)
            new_name = c1.text_input("Username", key="nu_name")
            new_role = c2.selectbox("Role", auth.ROLES, key="nu_role")
            collector_ids = [c for c, _ in ui.ledger_facts().collectors]
            new_collector = c3.selectbox("Collector (collectors only)", [None] + collector_ids, key="nu_collector")
            new_pw = st.text_input("Password (at least 8 characters)", type="password", key="nu_pw")
            if st.form_submit_button("Add user", type="primary"):
                ui.write_action(auth.add_user, engine, new_name, new_pw, new_role,
                                new_collector if new_role == "collector" else None, actor=user.username,
                                success=f"User {ui.plain(new_name.strip())} added.")
