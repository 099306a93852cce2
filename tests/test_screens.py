"""Issue 17, screens a collector can act on: the formatting layer, landing pages, sign-in that survives a
refresh (signed, expiring, revocable token), errors beside their form after a previous success,
Customer 360's defaults. Pages are driven with Streamlit ``AppTest`` through ``dashboard/app.py``; the
browser side (every page for every role, deep link, refresh) is in ``tests/test_browser.py``.
"""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import auth, db, schema
from analytics.ledger import open_amount_cents
from dashboard import formatting as fmt
from dashboard.tables import display_frame, money_columns
from tests.apptest_helpers import app_test, assert_clean, open_page, texts

RAW = re.compile(r"(?<![\w-])(nan|NaN|None|NaT)(?![\w-])| 00:00:00")


# ------------------------------------------------------------------------------------------------
# Formatting layer
# ------------------------------------------------------------------------------------------------
def test_money_percent_dates_labels_headers():
    assert fmt.money(1234567.5, "USD") == "USD 1,234,568"
    assert fmt.money_compact(677_123.4, "USD") == "USD 677.1k"
    assert fmt.money_compact(9_876, "USD") == "USD 9,876"
    assert fmt.money_compact(-12_345_678, "EUR") == "EUR −12.3M"
    assert fmt.cents_compact(None, "USD") == fmt.DASH
    assert fmt.pct(0.8213, ratio=True) == "82.1%"
    assert fmt.date_text(pd.Timestamp("2026-06-03 00:00:00")) == "2026-06-03"
    assert fmt.date_text(pd.Timestamp("2026-06-03 14:05:09")) == "2026-06-03 14:05"
    assert fmt.date_text(pd.NaT) == fmt.DASH and fmt.date_text(None) == fmt.DASH
    assert fmt.label("invoice") == "Invoice" and fmt.label("not_received") == "Not received"
    assert fmt.label("credit_memo") == "Credit memo" and fmt.label(float("nan")) == ""
    assert fmt.header("wape_1_4") == "WAPE weeks 1–4"
    assert fmt.header("customer_id") == "Customer ID"
    assert fmt.header("ptp_kept_pct") == "PTP kept %"


def test_display_frame_shows_no_missing_value_midnight_or_code():
    frame = pd.DataFrame({
        "invoice_id": ["INV-1", "INV-2"],
        "doc_type": ["invoice", "credit_memo"],
        "reason_code": ["not_received", None],
        "due_date": [pd.Timestamp("2026-06-03"), pd.NaT],
        "opened": [dt.date(2026, 6, 1), None],
        "reference": ["PO 1", None],
        "amount_cents": [82665511, -500],
        "open_cents": pd.array([82665511, None], dtype="Int64"),
        "ptp_kept_pct": [50.0, float("nan")],
        "days": [3, 4],
    })
    shown = display_frame(frame)
    assert list(shown.columns) == ["invoice_id", "doc_type", "reason_code", "due_date", "opened", "reference",
                                   "amount", "open", "ptp_kept_pct", "days"]
    assert not shown.isna().any().any()
    cells = [str(v) for v in shown.astype(str).to_numpy().ravel()]
    assert not [c for c in cells if RAW.search(c)], cells
    assert list(shown["doc_type"]) == ["Invoice", "Credit memo"]
    assert list(shown["reason_code"]) == ["Not received", ""]
    assert list(shown["due_date"]) == ["2026-06-03", fmt.DASH]
    assert list(shown["open"]) == ["826,655.11", fmt.DASH]  # a gap: written out in its format
    assert list(shown["ptp_kept_pct"]) == ["50.0", fmt.DASH]
    assert shown["amount"].tolist() == [826655.11, -5.0]  # no gap: stays a number, drawn with its format
    config = money_columns(frame)
    assert config["amount"]["type_config"]["format"] == "%,.2f"
    assert config["days"]["type_config"]["format"] == "%,d"
    assert config["invoice_id"]["pinned"] is True
    assert config["ptp_kept_pct"]["label"] == "PTP kept %"


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def facts(small_ledger_url) -> dict:
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        customers = conn.execute(sa.select(schema.customers.c.id, schema.customers.c.collector_id)
                                 .order_by(schema.customers.c.id)).all()
        collectors = conn.execute(sa.select(schema.collectors.c.id).order_by(schema.collectors.c.id)).scalars().all()
        balances = {c.id: open_amount_cents(conn, customer_id=c.id, as_of=dt.date.today()) for c in customers}
    engine.dispose()
    return {"customers": customers, "collectors": list(collectors), "balances": balances}


def _tables_are_clean(at) -> list[str]:
    bad = []
    for el in at.dataframe:
        frame = el.value
        if frame.isna().any().any():
            bad.append(f"missing values in {list(frame.columns[frame.isna().any()])}")
        for col in frame.columns:
            if frame[col].dtype == object:
                bad += [f"{col}: {v!r}" for v in frame[col].astype(str) if RAW.search(v)][:3]
    text = texts(at)
    bad += [f"text: {m.group(0)!r} in …{text[max(0, m.start() - 40):m.end() + 10]!r}" for m in RAW.finditer(text)]
    return bad


@pytest.mark.parametrize("page", ["overview", "aging", "collectors", "customer_360", "disputes_promises",
                                  "dunning", "cash_forecast", "worklist"])
def test_page_tables_and_text_are_formatted(monkeypatch, small_ledger_url, page):
    at = open_page(monkeypatch, small_ledger_url, page, role="admin", timeout=120)
    assert_clean(at)
    assert not _tables_are_clean(at)


@pytest.mark.parametrize("role,title", [("collector", "Worklist"), ("finance", "Cash forecast"),
                                        ("manager", "Overview"), ("admin", "Overview")])
def test_each_role_lands_on_its_page(monkeypatch, small_ledger_url, facts, role, title):
    at = app_test(monkeypatch, small_ledger_url, role=role,
                  collector_id=facts["collectors"][0] if role == "collector" else None, timeout=120).run()
    assert_clean(at)
    assert at.title[0].value == title


def test_customer_360_opens_on_the_top_worklist_account_oldest_items_first(monkeypatch, small_ledger_url, facts):
    from analytics.ledger import LedgerFilter, default_as_of
    from analytics.worklist import worklist

    mine = facts["collectors"][0]
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        as_of = default_as_of(conn)
        top = worklist(conn, as_of, LedgerFilter(collectors=(mine,)))["customer_id"].iloc[0]
    engine.dispose()
    at = open_page(monkeypatch, small_ledger_url, "customer_360", role="collector", collector_id=mine, timeout=120)
    assert_clean(at)
    assert at.selectbox(key="c360_customer").value == top
    items = at.dataframe[0].value
    assert list(items["due_date"]) == sorted(items["due_date"])
    # the letter is on the page, not in a collapsed expander
    assert not [e for e in at.expander if "letter" in str(e.label).lower()]
    # and the account's statement (PDF) is one click away
    assert any(str(b.label).startswith("Statement of account") for b in at.get("download_button"))
    # the dispute form offers the ledger's reason codes, as labels
    box = at.selectbox(key="disp_reason")
    assert {"damaged", "not_received", "duplicate_billing"} <= set(box.options) or \
        {"Damaged", "Not received", "Duplicate billing"} <= set(box.options), box.options


def _press(at, label: str):
    next(b for b in at.button if b.label == label).click()
    return at.run()


def _in_tab(at, label: str, kind: str) -> list[str]:
    tab = next(t for t in at.tabs if t.label == label)
    return [e.value for e in getattr(tab, kind)]


def test_error_stays_beside_its_form_after_a_previous_success(monkeypatch, small_ledger_copy, facts):
    customer = next(c.id for c in facts["customers"] if facts["balances"][c.id] > 100_000)
    at = open_page(monkeypatch, small_ledger_copy, "customer_360", role="manager", query={"customer": customer},
                   timeout=120)
    at.number_input(key="prom_amount").set_value(10.0)
    _press(at, "Save promise")
    assert not at.exception
    assert any("Promise saved" in s for s in _in_tab(at, "Record work", "success")), texts(at)
    at.number_input(key="prom_amount").set_value(facts["balances"][customer] / 100 + 1_000_000)
    _press(at, "Save promise")
    assert not at.exception
    errors = _in_tab(at, "Record work", "error")
    assert len(errors) == 1 and errors == [e.value for e in at.error], texts(at)
    message = errors[0].replace("\\", "").replace(fmt.WJ, "")  # as shown: Markdown escapes resolved
    assert message.startswith("Amount: ") and "amount_cents" not in message
    assert re.search(r"[A-Z]{3} [\d,]+\.\d\d", message) and not re.search(r"\d{7,}", message), message


# ------------------------------------------------------------------------------------------------
# Sign-in that survives a refresh
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def users_url(small_ledger_copy) -> str:
    engine = db.connect(small_ledger_copy)
    auth.add_user(engine, "alice", "alice-password-1", "manager")
    engine.dispose()
    return small_ledger_copy


def _sign_in(at, username, password):
    at.text_input(key="_signin_user").set_value(username)
    at.text_input(key="_signin_password").set_value(password)
    return _press(at, "Sign in")


def test_refresh_keeps_the_session_and_the_deep_link_sign_out_revokes_it(monkeypatch, users_url, facts):
    at = app_test(monkeypatch, users_url, role=None, timeout=120).run()
    _sign_in(at, "alice", "alice-password-1")
    assert at.session_state["user"].username == "alice"
    token = at.query_params["session"]
    token = token[0] if isinstance(token, list) else token
    customer = facts["customers"][3].id

    # "refresh": a new browser session with only the URL (token and customer) in hand
    again = app_test(monkeypatch, users_url, role=None, timeout=120)
    again.query_params["session"] = token
    again.run()
    assert_clean(again)
    assert again.session_state["user"].username == "alice"
    assert not [t for t in again.text_input if t.key == "_signin_password"]
    again.query_params["customer"] = customer
    again.switch_page("../pages/customer_360.py").run()
    assert_clean(again)
    assert again.selectbox(key="c360_customer").value == customer

    again.button(key="_signout").click().run()
    assert "user" not in again.session_state
    after = app_test(monkeypatch, users_url, role=None, timeout=120)
    after.query_params["session"] = token
    after.run()
    assert "user" not in after.session_state
    assert after.text_input(key="_signin_password")


def test_session_token_rules(engine):
    """Same rules on DuckDB, SQLite and PostgreSQL: 12 h lifetime, idle limit, forgery, password change,
    lockout and sign-out all end a token."""
    auth.add_user(engine, "ann", "ann-password-1", "manager")
    user = auth.get_user(engine, "ann")
    t0 = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    token = auth.issue_session_token(engine, user, started=t0, seen=t0)
    assert auth.resume_session(engine, token, now=t0 + dt.timedelta(minutes=29)) == user
    assert auth.resume_session(engine, token, now=t0 + dt.timedelta(minutes=31)) is None  # idle
    late = auth.issue_session_token(engine, user, started=t0, seen=t0 + dt.timedelta(hours=11, minutes=59))
    assert auth.resume_session(engine, late, now=t0 + dt.timedelta(hours=12, minutes=1)) is None  # 12 h
    payload, mac = token.split(".")
    assert auth.resume_session(engine, payload + "." + mac[::-1], now=t0) is None  # forged
    assert auth.resume_session(engine, "not a token", now=t0) is None
    bound = auth.issue_session_token(engine, user, started=t0, seen=t0, binding="Mozilla/5.0 A")
    assert auth.resume_session(engine, bound, now=t0, binding="Mozilla/5.0 A") == user
    assert auth.resume_session(engine, bound, now=t0, binding="curl/8") is None  # another browser
    fresh = auth.issue_session_token(engine, user)
    assert auth.resume_session(engine, fresh) == user
    assert auth.revoke_session(engine, fresh)
    assert auth.resume_session(engine, fresh) is None  # signed out
    other = auth.issue_session_token(engine, user)
    auth.set_password(engine, "ann", "ann-password-2")
    assert auth.resume_session(engine, other) is None  # password changed
    third = auth.issue_session_token(engine, user)
    for _ in range(auth.LOCKOUT_FAILURES):
        auth.sign_in(engine, "ann", "wrong", now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                     + dt.timedelta(hours=1))
    with engine.connect() as conn:
        locked = conn.execute(sa.select(schema.login_throttle.c.locked_until)
                              .where(schema.login_throttle.c.username == "ann")).scalar()
    if locked is not None:
        assert auth.resume_session(engine, third, now=locked - dt.timedelta(minutes=1)) is None  # locked out


# ------------------------------------------------------------------------------------------------
# One date rule
# ------------------------------------------------------------------------------------------------
def _ledger_end(url: str) -> dt.date:
    from analytics.ledger import default_as_of

    engine = db.make_engine(url)
    with engine.connect() as conn:
        end = default_as_of(conn)
    engine.dispose()
    return end


def test_as_of_follows_the_ledgers_end_and_pages_say_when_it_ends(monkeypatch, small_ledger_url):
    end = _ledger_end(small_ledger_url)
    at = app_test(monkeypatch, small_ledger_url, role="manager", timeout=120)
    # as if another ledger (ending a year earlier) had been open before an import
    at.session_state["f_as_of_default"] = at.session_state["f_as_of"] = end - dt.timedelta(days=365)
    at.run()
    assert_clean(at)
    assert at.date_input(key="w_as_of").value == end
    assert f"The ledger ends {end:%d %b %Y}" in texts(at)
    assert not [w for w in at.warning if "after the ledger's end" in w.value]
    at.date_input(key="w_as_of").set_value(end + dt.timedelta(days=30)).run()
    assert_clean(at)
    assert [w for w in at.warning if "30 days after the ledger's end" in w.value], texts(at)


def test_worklist_shows_a_call_logged_after_the_ledgers_end(monkeypatch, small_ledger_copy, facts):
    from analytics import workflow
    from analytics.auth import User

    end = _ledger_end(small_ledger_copy)
    assert dt.date.today() > end, "the generated ledger ends before today"
    mine = facts["collectors"][0]
    at = open_page(monkeypatch, small_ledger_copy, "worklist", role="collector", collector_id=mine, timeout=120)
    customer = at.dataframe[0].value["customer_id"].iloc[0]
    engine = db.make_engine(small_ledger_copy)
    workflow.log_activity(engine, User(mine.lower(), "collector", mine), customer, "call", outcome="promised")
    engine.dispose()
    at.run()
    assert_clean(at)
    frame = at.dataframe[0].value
    shown = frame.loc[frame["customer_id"] == customer, "last_contact"].iloc[0]
    assert shown == dt.date.today().isoformat(), shown
    assert "after the ledger's end" in texts(at)


def test_who_did_it_is_the_users_login(monkeypatch, small_ledger_copy, facts):
    """The ledger's activities name a collector id (COL01); the dashboard shows that collector's login."""
    mine = facts["collectors"][0]
    engine = db.connect(small_ledger_copy)
    auth.add_user(engine, "ann01", "ann-password-1", "collector", mine)
    with engine.connect() as conn:
        customer = conn.execute(sa.select(schema.activities.c.customer_id)
                                .where(schema.activities.c.collector_id == mine).limit(1)).scalar()
    engine.dispose()
    at = open_page(monkeypatch, small_ledger_copy, "customer_360", role="collector", collector_id=mine,
                   username="ann01", query={"customer": customer}, timeout=120)
    assert_clean(at)
    timeline = next(d.value for d in at.dataframe if {"when", "kind", "by"} <= set(d.value.columns))
    engine = db.make_engine(small_ledger_copy)
    logins = {u["username"] for u in auth.list_users(engine)}
    engine.dispose()
    shown = set(timeline["by"]) - {""}
    assert mine not in shown and shown and shown <= logins, (shown, logins)
