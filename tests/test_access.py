"""Access control: a collector cannot read or write another portfolio by any route, passwords are
hashed, sessions expire, admin-only actions are checked on the server.
"""
from __future__ import annotations

import collections
import datetime as dt

import pytest
import sqlalchemy as sa

from analytics import auth, backup, db, generator, schema, workflow
from analytics.auth import PermissionDenied, Session, User
from tests.apptest_helpers import open_page
from tests.checksums import table_checksums

TODAY = dt.date.today()


def _seed(engine):
    with engine.begin() as conn:
        conn.execute(schema.collectors.insert(), [{"id": "C1", "name": "One"}, {"id": "C2", "name": "Two"}])
        conn.execute(schema.customers.insert(), [
            {"id": "MINE", "name": "Mine", "currency": "USD", "collector_id": "C1"},
            {"id": "THEIRS", "name": "Theirs", "currency": "USD", "collector_id": "C2"}])
        conn.execute(schema.invoices.insert(), [
            {"id": f"I-{c}", "customer_id": c, "doc_type": "invoice", "invoice_date": TODAY - dt.timedelta(days=40),
             "due_date": TODAY - dt.timedelta(days=10), "amount_cents": 50_000, "currency": "USD"}
            for c in ("MINE", "THEIRS")])


def test_workflow_refuses_foreign_portfolio_and_wrong_roles(engine):
    _seed(engine)
    c1 = User("c1", "collector", "C1")
    before = table_checksums(engine)
    attempts = [
        lambda: workflow.log_activity(engine, c1, "THEIRS", "call"),
        lambda: workflow.record_promise(engine, c1, "THEIRS", TODAY, 100, today=TODAY),
        lambda: workflow.open_dispute(engine, c1, "I-THEIRS", "pricing", 100),
        lambda: workflow.propose_writeoff(engine, c1, "I-THEIRS", 100, "small balance", today=TODAY),
        lambda: workflow.log_activity(engine, User("f", "finance"), "MINE", "call"),   # read-only role
        lambda: workflow.log_activity(engine, None, "MINE", "call"),                  # not signed in
        lambda: workflow.log_activity(engine, User("x", "collector", None), "MINE", "call"),  # no portfolio
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()
    proposal = workflow.propose_writeoff(engine, c1, "I-MINE", 100, "small balance", today=TODAY)
    mid = table_checksums(engine)
    with pytest.raises(PermissionDenied):
        workflow.decide_writeoff(engine, c1, proposal, approve=True)  # collectors do not approve
    with pytest.raises(PermissionDenied):
        workflow.decide_writeoff(engine, User("c1", "manager"), proposal, approve=True)  # four eyes
    assert table_checksums(engine) == mid
    assert {k: v for k, v in mid.items() if k not in ("writeoff_proposals", "audit_log", "ledger_meta")} == \
           {k: v for k, v in before.items() if k not in ("writeoff_proposals", "audit_log", "ledger_meta")}
    # A collector's filter is forced to their own portfolio, whatever it asks for.
    from analytics.ledger import LedgerFilter

    assert auth.scope_filter(c1, LedgerFilter(collectors=("C2",))).collectors == ("C1",)


def test_passwords_are_argon2_hashes_never_plain_text(engine):
    secret = "Correct-Horse-Battery-42"
    auth.add_user(engine, "alice", secret, "manager")
    auth.set_password(engine, "alice", secret + "!")
    with engine.connect() as conn:
        users = conn.execute(sa.select(schema.users)).all()
        audit = conn.execute(sa.select(schema.audit_log)).all()
    assert users[0].password_hash.startswith("$argon2id$")
    dump = repr(users) + repr(audit)
    assert secret not in dump
    assert auth.authenticate(engine, "alice", secret) is None
    assert auth.authenticate(engine, "alice", secret + "!") == User("alice", "manager")
    assert "password_hash" not in auth.list_users(engine)[0]


def test_sessions_expire():
    t0 = dt.datetime(2024, 1, 1, 9)
    s = Session(User("a", "admin"), t0, t0)
    assert not auth.is_expired(s, t0 + dt.timedelta(minutes=29))
    assert auth.is_expired(s, t0 + dt.timedelta(minutes=31))
    busy = s.touch(t0 + dt.timedelta(hours=11, minutes=50))
    assert not auth.is_expired(busy, t0 + dt.timedelta(hours=11, minutes=55))
    assert auth.is_expired(busy.touch(t0 + dt.timedelta(hours=12, minutes=1)), t0 + dt.timedelta(hours=12, minutes=2))


@pytest.mark.parametrize("role", ["manager", "finance", "collector"])
def test_admin_only_actions_are_refused_on_the_server(duckdb_engine, tmp_path, role):
    user = User("u", role, "C1" if role == "collector" else None)
    for action in ("import", "manage_users"):
        with pytest.raises(PermissionDenied):
            auth.require(user, action)
    path = tmp_path / "b.zip"
    backup.export_ledger(duckdb_engine, path)
    before = table_checksums(duckdb_engine)
    with pytest.raises(PermissionDenied):
        backup.import_ledger(duckdb_engine, path, replace=True, user=user)
    assert table_checksums(duckdb_engine) == before
    auth.require(User("root", "admin"), "import")


# ------------------------------------------------------------------------------------------------
# Through the dashboard (AppTest): URL parameters and tampered session filters
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("access") / "ledger.duckdb"
    url = f"duckdb:///{path}"
    eng = db.connect(url)
    generator.generate(eng, customers=24, invoices=600, seed=5)
    with eng.connect() as conn:
        owners = dict(conn.execute(sa.select(schema.customers.c.id, schema.customers.c.collector_id)).all())
    eng.dispose()
    counts = collections.Counter(c for c in owners.values() if c)
    mine = counts.most_common(1)[0][0]  # the biggest portfolio: it has open accounts to show
    foreign = sorted(k for k, c in owners.items() if c and c != mine)[0]
    return {"url": url, "mine": mine, "foreign": foreign, "owners": owners}


def test_customer_360_refuses_another_portfolio_via_url(monkeypatch, ledger):
    at = open_page(monkeypatch, ledger["url"], "customer_360", role="collector", collector_id=ledger["mine"],
                   query={"customer": ledger["foreign"]})
    assert not at.exception
    assert any("portfolio" in e.value for e in at.error)
    shown = " ".join(str(getattr(el, "value", "")) for el in list(at.markdown) + list(at.caption) + list(at.metric))
    assert ledger["foreign"] not in shown
    assert not at.dataframe  # nothing of the foreign account is rendered


def test_worklist_ignores_tampered_collector_filter(monkeypatch, ledger):
    from tests.apptest_helpers import app_test

    at = app_test(monkeypatch, ledger["url"], role="collector", collector_id=ledger["mine"])
    at.session_state["f_collector"] = [ledger["owners"][ledger["foreign"]]]
    at.session_state["w_collector"] = [ledger["owners"][ledger["foreign"]]]
    at.run()
    at.switch_page("../pages/worklist.py")
    at.run()
    assert not at.exception
    checked = 0
    for frame in at.dataframe:
        value = frame.value
        if "collector_id" in getattr(value, "columns", []):
            assert set(value["collector_id"].dropna()) <= {ledger["mine"]}
        if "customer_id" in getattr(value, "columns", []):
            assert all(ledger["owners"][c] == ledger["mine"] for c in value["customer_id"])
            checked += len(value)
    assert checked, "the worklist showed no accounts to check"
