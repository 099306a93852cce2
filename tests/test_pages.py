"""The dashboard pages driven like a person with Streamlit ``AppTest`` (no browser).

Every page is reached through ``dashboard/app.py`` — sign-in gate, role-filtered navigation — against
a small generated DuckDB ledger. Checks: each page renders for each role that may see it, filters
change the numbers, a collector cannot reach another portfolio (even with a crafted URL), work
recorded on Customer 360 lands in the audit log, and roles without access are refused.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics.ledger import open_amount_cents
from analytics import auth, db, schema, workflow
from tests.apptest_helpers import app_test, assert_clean, nav_titles, open_directly, open_page, texts

ROOT = Path(__file__).resolve().parent.parent
PAGE_ACCESS = {  # page -> roles that may open it (mirrors analytics.auth.PERMISSIONS)
    "overview": ("admin", "manager", "finance", "collector"),
    "aging": ("admin", "manager", "finance", "collector"),
    "sla": ("admin", "manager", "finance"),
    "collectors": ("admin", "manager", "finance"),
    "customer_360": ("admin", "manager", "finance", "collector"),
    "disputes_promises": ("admin", "manager", "finance", "collector"),
    "data": ("admin",),
    "dunning": ("admin", "manager", "collector"),
}
ROLES = ("admin", "manager", "finance", "collector")
MY_PAGES = [p for p in PAGE_ACCESS if (ROOT / "pages" / f"{p}.py").is_file()]


@pytest.fixture(scope="module")
def ledger_url(small_ledger_url) -> str:
    """The suite's shared generated ledger (read-only here)."""
    return small_ledger_url


@pytest.fixture
def writable_url(small_ledger_copy) -> str:
    """A fresh copy of the ledger for a test that writes."""
    return small_ledger_copy


@pytest.fixture(scope="module")
def facts(ledger_url) -> dict:
    """Collectors and customers of the ledger, with each customer's collector and balance sign."""
    engine = db.make_engine(ledger_url)
    with engine.connect() as conn:
        customers = conn.execute(sa.select(schema.customers.c.id, schema.customers.c.collector_id,
                                           schema.customers.c.business_unit, schema.customers.c.region)
                                 .order_by(schema.customers.c.id)).all()
        collectors = conn.execute(sa.select(schema.collectors.c.id).order_by(schema.collectors.c.id)).scalars().all()
        as_of = max(conn.execute(sa.select(sa.func.max(schema.invoices.c.invoice_date))).scalar(),
                    conn.execute(sa.select(sa.func.max(schema.receipts.c.receipt_date))).scalar())
        balances = {cid: open_amount_cents(conn, customer_id=cid, as_of=dt.date.today()) for cid, *_ in customers}
    engine.dispose()
    return {"customers": customers, "collectors": list(collectors), "as_of": as_of, "balances": balances}


def _collector(facts) -> str:
    return facts["collectors"][0]


def _user_kwargs(role: str, facts) -> dict:
    return {"role": role, "collector_id": _collector(facts) if role == "collector" else None}


# ------------------------------------------------------------------------------------------------
# Every page, every role that may see it
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page,role", [(p, r) for p in MY_PAGES for r in PAGE_ACCESS[p]])
def test_page_renders_for_allowed_role(monkeypatch, ledger_url, facts, page, role):
    at = open_page(monkeypatch, ledger_url, page, **_user_kwargs(role, facts))
    assert_clean(at)
    assert at.title, "every page has a title"
    shown = texts(at)
    assert "Please sign in" not in shown and "may not open" not in shown


@pytest.mark.parametrize("role", ROLES)
def test_navigation_shows_only_allowed_pages(monkeypatch, ledger_url, facts, role):
    at = app_test(monkeypatch, ledger_url, **_user_kwargs(role, facts)).run()
    assert_clean(at)
    registered = {Path(str(info.get("script_path"))).stem for info in at._registered_pages.values()}
    for page in MY_PAGES:
        assert (page in registered) == (role in PAGE_ACCESS[page]), (page, role, registered)
    assert nav_titles(at)


@pytest.mark.parametrize("page,role", [(p, r) for p in MY_PAGES for r in ROLES if r not in PAGE_ACCESS[p]])
def test_page_refuses_role_without_access(monkeypatch, ledger_url, facts, page, role):
    at = app_test(monkeypatch, ledger_url, **_user_kwargs(role, facts)).run()
    with pytest.raises(ValueError):  # not in the navigation at all
        at.switch_page(f"../pages/{page}.py")
    direct = open_directly(monkeypatch, ledger_url, page, **_user_kwargs(role, facts))
    assert not direct.exception
    assert any("may not open" in e.value for e in direct.error)
    assert not direct.metric and not direct.dataframe


def test_page_opened_directly_without_sign_in_is_refused(monkeypatch, ledger_url):
    at = app_test(monkeypatch, ledger_url, role=None, script=ROOT / "pages" / "overview.py").run()
    assert not at.exception
    assert "Please sign in" in texts(at)
    assert not at.metric


# ------------------------------------------------------------------------------------------------
# Sign-in, sign-out, idle expiry, unreachable database
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def users_url(tmp_path) -> str:
    url = f"duckdb:///{tmp_path / 'users.duckdb'}"
    engine = db.connect(url)
    auth.add_user(engine, "alice", "alice-password-1", "manager")
    engine.dispose()
    return url


def _sign_in(at, username, password):
    at.text_input(key="_signin_user").set_value(username)
    at.text_input(key="_signin_password").set_value(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def test_sign_in_wrong_then_right_password_then_sign_out(monkeypatch, users_url):
    at = app_test(monkeypatch, users_url, role=None).run()
    assert_clean(at)
    assert at.text_input(key="_signin_password")
    _sign_in(at, "alice", "wrong-password")
    assert any("wrong password" in e.value for e in at.error)
    assert "user" not in at.session_state
    _sign_in(at, "alice", "alice-password-1")
    assert not at.exception
    assert at.session_state["user"].role == "manager"
    assert "Signed in as **alice**" in texts(at)
    at.button(key="_signout").click().run()
    assert "user" not in at.session_state
    assert at.text_input(key="_signin_password")


def test_idle_session_expires(monkeypatch, ledger_url):
    at = app_test(monkeypatch, ledger_url, role="manager")
    at.session_state["_last_seen"] = time.time() - 31 * 60
    at.run()
    assert not at.exception
    assert "user" not in at.session_state
    assert "signed out after 30 minutes" in texts(at)


def test_first_run_offers_to_create_an_admin(monkeypatch, tmp_path):
    token_file = tmp_path / "first_admin_token"
    monkeypatch.setenv(auth.FIRST_ADMIN_TOKEN_ENV, str(token_file))
    at = app_test(monkeypatch, f"duckdb:///{tmp_path / 'empty.duckdb'}", role=None).run()
    assert_clean(at)
    at.text_input(key="_signin_token").set_value(token_file.read_text().strip())  # printed in the server log
    at.text_input(key="_signin_new_user").set_value("root")
    at.text_input(key="_signin_new_pw").set_value("a-long-secret")
    next(b for b in at.button if b.label == "Create administrator").click()
    at.run()
    assert not at.exception
    assert "Administrator created" in texts(at)
    _sign_in(at, "root", "a-long-secret")
    assert at.session_state["user"].role == "admin"


def test_unreachable_database_shows_friendly_error_and_retry(monkeypatch):
    at = app_test(monkeypatch, "postgresql+psycopg://nobody:secret@127.0.0.1:9/nowhere?connect_timeout=2",
                  role=None).run()
    assert not at.exception
    assert any("Cannot reach the database" in e.value for e in at.error)
    assert "secret" not in " ".join(e.value for e in at.error)
    assert any(b.label == "Retry" for b in at.button)


# ------------------------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------------------------
def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_filter_change_changes_the_numbers_and_is_kept_across_pages(monkeypatch, ledger_url, facts):
    at = open_page(monkeypatch, ledger_url, "overview", role="manager")
    assert_clean(at)
    total = _metric(at, "Total AR")
    units = sorted({c.business_unit for c in facts["customers"] if c.business_unit})
    at.multiselect(key="w_bu").set_value([units[0]]).run()
    assert_clean(at)
    narrowed = _metric(at, "Total AR")
    assert narrowed != total
    # Same filter on the next page, and the as-of date too.
    at.date_input(key="w_as_of").set_value(facts["as_of"] - dt.timedelta(days=60)).run()
    assert _metric(at, "Total AR") != narrowed
    at.switch_page("../pages/aging.py").run()
    assert_clean(at)
    assert at.multiselect(key="w_bu").value == [units[0]]
    assert at.date_input(key="w_as_of").value == facts["as_of"] - dt.timedelta(days=60)
    assert f"BU: {units[0]}" in texts(at)


def test_as_of_defaults_to_the_ledgers_last_day(monkeypatch, ledger_url, facts):
    at = open_page(monkeypatch, ledger_url, "overview", role="admin")
    assert at.date_input(key="w_as_of").value == facts["as_of"]


def test_collector_sees_only_their_portfolio(monkeypatch, ledger_url, facts):
    mine = _collector(facts)
    at = open_page(monkeypatch, ledger_url, "customer_360", role="collector", collector_id=mine)
    assert_clean(at)
    assert not _has_key(at, "w_collector")  # no collector picker: the portfolio is forced
    own = {c.id for c in facts["customers"] if c.collector_id == mine}
    options = set(at.selectbox(key="c360_customer").options)
    labels_ok = all(any(f"({cid})" in opt for cid in own) for opt in options)
    assert options and labels_ok
    # Overview for the collector equals the admin's overview narrowed to that collector.
    mine_at = open_page(monkeypatch, ledger_url, "overview", role="collector", collector_id=mine)
    admin = open_page(monkeypatch, ledger_url, "overview", role="admin")
    admin.multiselect(key="w_collector").set_value([mine]).run()
    assert _metric(mine_at, "Total AR") == _metric(admin, "Total AR")


def _has_key(at, key) -> bool:
    try:
        at.multiselect(key=key)
        return True
    except KeyError:
        return False


def test_customer_360_refuses_foreign_customer_in_url(monkeypatch, ledger_url, facts):
    mine = _collector(facts)
    foreign = next(c.id for c in facts["customers"] if c.collector_id and c.collector_id != mine)
    at = open_page(monkeypatch, ledger_url, "customer_360", role="collector", collector_id=mine,
                   query={"customer": foreign})
    assert not at.exception
    assert any("not in" in e.value and foreign in e.value for e in at.error)
    assert not at.metric and not at.dataframe and not at.form
    # A manager may open the same URL.
    at = open_page(monkeypatch, ledger_url, "customer_360", role="manager", query={"customer": foreign})
    assert_clean(at)
    assert any(foreign in s.value for s in at.subheader)


# ------------------------------------------------------------------------------------------------
# Drill-down and work recording
# ------------------------------------------------------------------------------------------------
def test_aging_drill_down_bucket_customer_invoices(monkeypatch, ledger_url):
    at = open_page(monkeypatch, ledger_url, "aging", role="manager")
    assert_clean(at)
    buckets = at.selectbox(key="aging_bucket")
    for label in buckets.options:
        at.selectbox(key="aging_bucket").set_value(label).run()
        assert_clean(at)
        if not _has_selectbox(at, "aging_customer"):
            continue
        last = at.selectbox(key="aging_customer").options[-1]  # "Name (ID)"
        at.selectbox(key="aging_customer").set_value(last.rsplit("(", 1)[1].rstrip(")")).run()
        assert_clean(at)
        shown = texts(at)
        assert f"in {label}" in shown
        assert len(at.dataframe) >= 3  # bucket summary, customers, invoices
        assert at.get("page_link")
        break
    else:  # pragma: no cover - a generated ledger always has open items
        pytest.fail("no bucket with open items")


def _has_selectbox(at, key) -> bool:
    try:
        at.selectbox(key=key)
        return True
    except KeyError:
        return False


def _press(at, label: str):
    next(b for b in at.button if b.label == label).click()
    return at.run()


def test_promise_logged_on_customer_360_lands_in_the_audit_log(monkeypatch, writable_url, facts):
    mine = _collector(facts)
    customer = next(c.id for c in facts["customers"] if c.collector_id == mine and facts["balances"][c.id] > 1000)
    at = open_page(monkeypatch, writable_url, "customer_360", role="collector", collector_id=mine,
                   username="col-test", query={"customer": customer})
    assert_clean(at)
    at.number_input(key="prom_amount").set_value(10.0)
    _press(at, "Save promise")
    assert not at.exception
    assert any("Promise saved" in s.value for s in at.success), texts(at)
    at.text_input(key="act_outcome").set_value("left voicemail")
    _press(at, "Save activity")
    assert any("Activity saved" in s.value for s in at.success)
    engine = db.make_engine(writable_url)
    trail = workflow.audit_trail(engine, customer_id=customer)
    engine.dispose()
    actions = list(trail["action"])
    assert "record_promise" in actions and "log_activity" in actions
    assert set(trail.loc[trail["action"] == "record_promise", "actor"]) == {"col-test"}


def test_invalid_promise_shows_error_not_traceback(monkeypatch, writable_url, facts):
    customer = next(c.id for c in facts["customers"] if facts["balances"][c.id] > 0)
    at = open_page(monkeypatch, writable_url, "customer_360", role="manager", query={"customer": customer})
    at.number_input(key="prom_amount").set_value(facts["balances"][customer] / 100 + 1_000_000)
    _press(at, "Save promise")
    assert not at.exception
    assert any("more than the customer's open balance" in e.value for e in at.error)


def test_finance_sees_customer_360_read_only(monkeypatch, ledger_url):
    at = open_page(monkeypatch, ledger_url, "customer_360", role="finance")
    assert_clean(at)
    assert not at.form
    assert "can view this account but not record work" in texts(at)


# ------------------------------------------------------------------------------------------------
# Data page
# ------------------------------------------------------------------------------------------------
IBM_HEADER = ("countryCode,customerID,PaperlessDate,invoiceNumber,InvoiceDate,DueDate,InvoiceAmount,Disputed,"
              "SettledDate,PaperlessBill,DaysToSettle,DaysLate\n")
IBM_ROWS = ("391,0379-NEVHP,4/6/2013,0000611365,1/2/2013,2/1/2013,55.94,No,1/15/2013,Paper,13,0\n"
            "406,8976-AMJEO,3/3/2012,0007900770,1/26/2013,2/25/2013,61.74,Yes,3/3/2013,Electronic,36,6\n")
IBM_BAD = "391,0379-NEVHP,4/6/2013,0000611399,13/45/2013,2/1/2013,12.00,No,1/15/2013,Paper,13,0\n"


def test_data_page_preview_errors_then_load(monkeypatch, tmp_path):
    url = f"duckdb:///{tmp_path / 'fresh.duckdb'}"
    at = open_page(monkeypatch, url, "data", role="admin")
    assert_clean(at)
    at.selectbox(key="data_fmt").set_value("ibm")
    at.file_uploader(key="data_file").set_value(("ar.csv", (IBM_HEADER + IBM_ROWS + IBM_BAD).encode(), "text/csv"))
    at.run()
    _press(at, "Preview")
    assert not at.exception
    assert "1 row error" in texts(at)
    assert any(b.label == "CSV" for b in at.get("download_button"))
    _press(at, "Load")
    assert not at.exception
    assert any("nothing was loaded" in e.value for e in at.error)
    at.checkbox(key="data_skip").check()
    _press(at, "Load")
    assert not at.exception
    assert any("inserted" in s.value for s in at.success), texts(at)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 2
    engine.dispose()


def test_data_page_generates_demo_ledger(monkeypatch, tmp_path):
    pytest.importorskip("analytics.generator")
    url = f"duckdb:///{tmp_path / 'gen.duckdb'}"
    at = open_page(monkeypatch, url, "data", role="admin")
    at.number_input(key="gen_customers").set_value(5)
    at.number_input(key="gen_invoices").set_value(60)
    at.checkbox(key="gen_users").uncheck()
    _press(at, "Generate")
    assert not at.exception
    assert any("Generated 5 customers" in s.value for s in at.success), texts(at)
    # The shared filters follow the new ledger.
    at.switch_page("../pages/overview.py").run()
    assert_clean(at)
    from analytics import kpis

    engine = db.make_engine(url)
    with engine.connect() as conn:
        last = kpis.latest_date(conn)
    engine.dispose()
    assert last is not None and at.date_input(key="w_as_of").value == last
