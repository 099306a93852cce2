"""Recording work: validation, portfolio permissions, one transaction each, audit rows, append-only guard.

Hand-made ledger (USD):
  collectors C1 (customer K1) and C2 (customer K2)
  I1  K1 invoice 2024-01-10 due 2024-02-09  1,000.00; receipt R1 600.00 applied 2024-02-09 -> open 400.00
  I2  K1 invoice 2024-02-15 due 2024-03-16    500.00
  J1  K2 invoice 2024-02-01 due 2024-03-02    700.00
K1's open balance at 2024-03-01 is 900.00.
"""
import datetime as dt
import json

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from analytics import auth, db, schema, workflow
from analytics.ledger import open_amount_cents
from analytics.auth import PermissionDenied, User
from analytics.errors import UserError

D = dt.date
ANN = User("ann", "collector", "C1")
BOB = User("bob", "collector", "C2")
MGR = User("meg", "manager")
MGR2 = User("max", "manager")
FIN = User("fay", "finance")
TODAY = D(2024, 3, 1)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(auth, "_DUMMY_HASH", None)


def build(engine):
    with engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}, {"id": "C2", "name": "Bob"}])
        c.execute(schema.customers.insert(), [{"id": "K1", "name": "Kappa", "collector_id": "C1"},
                                              {"id": "K2", "name": "Lambda", "collector_id": "C2"}])
        c.execute(schema.invoices.insert(), [
            dict(id="I1", customer_id="K1", invoice_date=D(2024, 1, 10), due_date=D(2024, 2, 9), amount_cents=100_000),
            dict(id="I2", customer_id="K1", invoice_date=D(2024, 2, 15), due_date=D(2024, 3, 16), amount_cents=50_000),
            dict(id="J1", customer_id="K2", invoice_date=D(2024, 2, 1), due_date=D(2024, 3, 2), amount_cents=70_000)])
        c.execute(schema.receipts.insert(), [dict(id="R1", customer_id="K1", receipt_date=D(2024, 2, 9),
                                                  amount_cents=60_000)])
        c.execute(schema.applications.insert(), [dict(receipt_id="R1", invoice_id="I1", amount_cents=60_000,
                                                      applied_date=D(2024, 2, 9))])
    return engine


@pytest.fixture
def ledger(engine):
    """The ledger on each backend."""
    return build(engine)


@pytest.fixture
def duck_ledger(duckdb_engine):
    """The ledger on DuckDB only, for checks that stop before the database is written."""
    return build(duckdb_engine)


def counts(engine) -> dict:
    tables = (schema.activities, schema.promises, schema.disputes, schema.writeoff_proposals, schema.adjustments,
              schema.audit_log)
    with engine.connect() as c:
        out = {t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in tables}
        out["version"] = db.ledger_version(c)
    return out


def last_audit(engine) -> dict:
    trail = workflow.audit_trail(engine, limit=1)
    row = trail.iloc[0].to_dict()
    row["before"] = json.loads(row["before"]) if row["before"] else None
    row["after"] = json.loads(row["after"]) if row["after"] else None
    return row


def test_log_activity_writes_row_audit_and_bumps_version(ledger):
    v0 = db.ledger_version(ledger)
    new_id = workflow.log_activity(ledger, ANN, "K1", "call", outcome="no answer", note="left voicemail",
                                   invoice_id="I1", at=dt.datetime(2024, 3, 1, 10, 30))
    with ledger.connect() as c:
        row = c.execute(sa.select(schema.activities).where(schema.activities.c.id == new_id)).one()
    assert (row.customer_id, row.invoice_id, row.type, row.outcome, row.collector_id) == ("K1", "I1", "call",
                                                                                          "no answer", "C1")
    assert row.occurred_at == dt.datetime(2024, 3, 1, 10, 30)
    a = last_audit(ledger)
    assert (a["actor"], a["action"], a["table_name"], a["row_id"]) == ("ann", "log_activity", "activities", str(new_id))
    assert a["before"] is None
    assert a["after"]["type"] == "call" and a["after"]["note"] == "left voicemail" and a["after"]["id"] == new_id
    assert db.ledger_version(ledger) == v0 + 1


WRITES = {
    "activity": lambda e, u: workflow.log_activity(e, u, "K2", "email"),
    "promise": lambda e, u: workflow.record_promise(e, u, "K2", D(2024, 3, 10), 10_000, today=TODAY),
    "dispute": lambda e, u: workflow.open_dispute(e, u, "J1", "pricing", 10_000, opened=TODAY),
    "writeoff": lambda e, u: workflow.propose_writeoff(e, u, "J1", 10_000, "small balance", today=TODAY),
}


def test_collector_cannot_write_to_another_portfolio(ledger):
    for name, write in WRITES.items():
        before = counts(ledger)
        with pytest.raises(PermissionDenied, match="portfolio"):
            write(ledger, ANN)
        assert counts(ledger) == before, name  # nothing written, version unchanged
        write(ledger, BOB)  # the owner may
        after = counts(ledger)
        assert after["audit_log"] == before["audit_log"] + 1 and after["version"] == before["version"] + 1, name


def test_finance_is_read_only(duck_ledger):
    before = counts(duck_ledger)
    for user in (FIN, None):
        with pytest.raises(PermissionDenied):
            workflow.log_activity(duck_ledger, user, "K1", "note", note="hi")
    assert counts(duck_ledger) == before


def test_promise_validation(ledger):
    before = counts(ledger)
    with pytest.raises(UserError, match="promised_date: 2024-02-29 is in the past"):
        workflow.record_promise(ledger, ANN, "K1", D(2024, 2, 29), 10_000, today=TODAY)
    for bad in (-5_000, 0):
        with pytest.raises(UserError, match="amount_cents: must be greater than zero"):
            workflow.record_promise(ledger, ANN, "K1", D(2024, 3, 5), bad, today=TODAY)
    with pytest.raises(UserError, match="amount_cents: .* whole number"):
        workflow.record_promise(ledger, ANN, "K1", D(2024, 3, 5), 10.5, today=TODAY)
    with pytest.raises(UserError, match=r"amount: USD 900.01 is more than the customer.s open balance of USD 900.00"):
        workflow.record_promise(ledger, ANN, "K1", D(2024, 3, 5), 90_001, today=TODAY)
    with pytest.raises(UserError, match="invoice_id: invoice 'J1' belongs to 'K2'"):
        workflow.record_promise(ledger, MGR, "K1", D(2024, 3, 5), 1_000, invoice_id="J1", today=TODAY)
    with pytest.raises(UserError, match="customer_id: unknown customer 'NOPE'"):
        workflow.record_promise(ledger, MGR, "NOPE", D(2024, 3, 5), 1_000, today=TODAY)
    assert counts(ledger) == before
    pid = workflow.record_promise(ledger, ANN, "K1", TODAY, 90_000, invoice_id="I1", today=TODAY)
    with ledger.connect() as c:
        row = c.execute(sa.select(schema.promises).where(schema.promises.c.id == pid)).one()
    assert (row.made_on, row.promised_date, row.amount_cents, row.recorded_by) == (TODAY, TODAY, 90_000, "ann")


def test_activity_validation(duck_ledger):
    with pytest.raises(UserError, match="type: unknown activity type 'fax'"):
        workflow.log_activity(duck_ledger, ANN, "K1", "fax")
    with pytest.raises(UserError, match="at: .* in the future"):
        workflow.log_activity(duck_ledger, ANN, "K1", "call", at=dt.datetime.now() + dt.timedelta(days=2))
    with pytest.raises(UserError, match="outcome: at most 64"):
        workflow.log_activity(duck_ledger, ANN, "K1", "call", outcome="x" * 65)
    with pytest.raises(UserError, match="invoice_id: invoice 'J1' belongs to 'K2'"):
        workflow.log_activity(duck_ledger, ANN, "K1", "call", invoice_id="J1")


def test_dispute_open_and_resolve_with_audit_before_after(ledger):
    with pytest.raises(UserError, match=r"amount: USD 400.01 is more than invoice I1.s open amount of USD 400.00"):
        workflow.open_dispute(ledger, ANN, "I1", "pricing", 40_001, opened=TODAY)
    with pytest.raises(UserError, match="reason_code: must not be empty"):
        workflow.open_dispute(ledger, ANN, "I1", " ", 1_000, opened=TODAY)
    did = workflow.open_dispute(ledger, ANN, "I1", "pricing", 30_000, opened=TODAY, note="price list 2023")
    with pytest.raises(UserError, match="less USD 300.00 already in dispute"):
        workflow.open_dispute(ledger, ANN, "I1", "quantity", 10_001, opened=TODAY)
    a = last_audit(ledger)
    assert a["action"] == "open_dispute" and a["after"]["note"] == "price list 2023"
    assert a["after"]["customer_id"] == "K1" and a["after"]["amount_cents"] == 30_000
    with pytest.raises(UserError, match="outcome: unknown outcome"):
        workflow.resolve_dispute(ledger, ANN, did, "lost")
    with pytest.raises(UserError, match="resolved: 2024-02-01 is before the dispute was opened"):
        workflow.resolve_dispute(ledger, ANN, did, "rejected", resolved=D(2024, 2, 1))
    with pytest.raises(PermissionDenied):
        workflow.resolve_dispute(ledger, BOB, did, "rejected", resolved=D(2024, 3, 20))
    workflow.resolve_dispute(ledger, ANN, did, "customer_paid", resolved=D(2024, 3, 20))
    a = last_audit(ledger)
    assert (a["action"], a["table_name"], a["row_id"]) == ("resolve_dispute", "disputes", str(did))
    assert a["before"]["outcome"] is None and a["before"]["resolved_date"] is None
    assert a["after"]["outcome"] == "customer_paid" and a["after"]["resolved_date"] == "2024-03-20"
    with pytest.raises(UserError, match="already resolved on 2024-03-20"):
        workflow.resolve_dispute(ledger, ANN, did, "rejected", resolved=D(2024, 3, 21))


def test_writeoff_proposal_and_decision(ledger):
    with pytest.raises(UserError, match=r"amount: USD 400.01 is more than"):
        workflow.propose_writeoff(ledger, ANN, "I1", 40_001, "bankrupt", today=TODAY)
    with pytest.raises(UserError, match="reason: must not be empty"):
        workflow.propose_writeoff(ledger, ANN, "I1", 1_000, "", today=TODAY)
    pid = workflow.propose_writeoff(ledger, ANN, "I1", 40_000, "customer bankrupt", today=TODAY)
    before = counts(ledger)
    with pytest.raises(PermissionDenied):
        workflow.decide_writeoff(ledger, ANN, pid, True, decided=TODAY)
    with pytest.raises(PermissionDenied):
        workflow.decide_writeoff(ledger, FIN, pid, True, decided=TODAY)
    assert counts(ledger) == before
    adj_id = workflow.decide_writeoff(ledger, MGR, pid, True, decided=D(2024, 3, 4))
    with ledger.connect() as c:
        adj = c.execute(sa.select(schema.adjustments).where(schema.adjustments.c.id == adj_id)).one()
        prop = c.execute(sa.select(schema.writeoff_proposals)).one()
        assert open_amount_cents(c, invoice_id="I1", as_of=D(2024, 3, 4)) == 0
        assert open_amount_cents(c, invoice_id="I1", as_of=D(2024, 3, 3)) == 40_000
    assert (adj.invoice_id, adj.adj_date, adj.amount_cents, adj.kind, adj.created_by) == (
        "I1", D(2024, 3, 4), -40_000, "write_off", "meg")
    assert (prop.status, prop.decided_by) == ("approved", "meg")
    after = counts(ledger)
    assert after["audit_log"] == before["audit_log"] + 2 and after["version"] == before["version"] + 1
    a = last_audit(ledger)
    assert a["action"] == "approve_writeoff"
    assert a["before"]["status"] == "proposed" and a["after"]["status"] == "approved"
    with pytest.raises(UserError, match="already approved"):
        workflow.decide_writeoff(ledger, MGR2, pid, False)
    # four eyes: a manager cannot approve their own proposal, but another manager can reject it
    pid2 = workflow.propose_writeoff(ledger, MGR, "I2", 1_000, "rounding", today=TODAY)
    with pytest.raises(PermissionDenied, match="another manager"):
        workflow.decide_writeoff(ledger, MGR, pid2, True, decided=TODAY)
    assert workflow.decide_writeoff(ledger, MGR2, pid2, False, decided=TODAY) is None
    with ledger.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.adjustments)).scalar() == 1


def test_audit_trail_filters(ledger):
    workflow.log_activity(ledger, ANN, "K1", "call")
    workflow.log_activity(ledger, BOB, "K2", "email")
    workflow.propose_writeoff(ledger, BOB, "J1", 500, "small balance", today=TODAY)
    k2 = workflow.audit_trail(ledger, customer_id="K2")
    assert k2["action"].tolist() == ["propose_writeoff", "log_activity"]
    assert workflow.audit_trail(ledger, actor="ann")["action"].tolist() == ["log_activity"]
    assert workflow.audit_trail(ledger, customer_id="K1", actor="bob").empty
    assert list(k2.columns) == ["id", "logged_at", "actor", "action", "table_name", "row_id", "before", "after"]


def test_audit_log_is_append_only_in_the_database(ledger):
    workflow.log_activity(ledger, ANN, "K1", "call")  # installs the guard
    if ledger.dialect.name == "duckdb":
        assert workflow.protect_audit_log(ledger) is False  # no triggers in DuckDB
        return
    assert workflow.protect_audit_log(ledger) is True  # idempotent
    for stmt in (schema.audit_log.update().values(actor="mallory"), schema.audit_log.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with ledger.begin() as c:
                c.execute(stmt)
    if ledger.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with ledger.begin() as c:
                c.execute(sa.text("TRUNCATE audit_log"))
    trail = workflow.audit_trail(ledger)
    assert trail["actor"].tolist() == ["ann"]


def test_nul_in_typed_text_is_refused_plainly(ledger):
    """A NUL typed into a note never reaches the database (PostgreSQL refuses it with an engine error)."""
    with pytest.raises(UserError, match="note: contains a NUL character"):
        workflow.log_activity(ledger, ANN, "K1", "note", note="bad\x00text")
