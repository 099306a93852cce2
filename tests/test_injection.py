"""SQL injection: every user-supplied string reaches SQL only as a bound parameter.

SQL metacharacter payloads go through each entry point that takes text from a user — sidebar
filters (LedgerFilter values) into KPI queries, customer look-ups, workflow notes/outcomes/reasons,
loader column-mapping names and cell values, user names at sign-in and sign-up — on DuckDB, SQLite
and PostgreSQL. The tables are unchanged (checksums) apart from the intended rows, and the text
round-trips exactly.
"""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from analytics import accounts, auth, kpis, loaders, schema, workflow
from analytics.auth import User
from analytics.errors import UserError
from analytics.ledger import LedgerFilter
from tests.checksums import table_checksums

PAYLOADS = (
    "'; DROP TABLE invoices; --",
    "\" OR 1=1 --",
    "' OR '1'='1",
    "\\'; DELETE FROM customers; --\\",
    "’; DROP TABLE users; —",          # unicode quotes and dash
    "Robert'); DROP TABLE activities;--",
    "%' UNION SELECT password_hash FROM users --",
    "$$; DROP TABLE audit_log; $$",
    "1; UPDATE ledger_meta SET value='999'",
)
TODAY = dt.date.today()


def _seed(engine):
    with engine.begin() as conn:
        conn.execute(schema.collectors.insert(), [{"id": "C1", "name": "One"}])
        conn.execute(schema.customers.insert(), [{"id": "K1", "name": "Acme", "currency": "USD",
                                                  "collector_id": "C1", "region": "EU", "business_unit": "BU1"}])
        conn.execute(schema.invoices.insert(), [{"id": "I1", "customer_id": "K1", "doc_type": "invoice",
                                                 "invoice_date": TODAY - dt.timedelta(days=40),
                                                 "due_date": TODAY - dt.timedelta(days=10),
                                                 "amount_cents": 100_000, "currency": "USD"}])


def _unchanged(before, after, except_=()):
    assert {k: v for k, v in after.items() if k not in except_} == \
           {k: v for k, v in before.items() if k not in except_}


def test_filters_and_lookups_bind_their_values(engine):
    _seed(engine)
    before = table_checksums(engine)
    with engine.connect() as conn:
        for p in PAYLOADS:
            for flt in (LedgerFilter(customers=(p,)), LedgerFilter(collectors=(p, "C1")),
                        LedgerFilter(regions=(p,)), LedgerFilter(business_units=(p,)), LedgerFilter(currencies=(p,))):
                frame = kpis.aging(conn, TODAY, flt)
                total = int(frame["open_cents"].sum())
                assert total == (100_000 if flt.collectors else 0), (p, flt)
            assert accounts.customer_choices(conn, LedgerFilter(customers=(p,))).empty
            assert accounts.customer_profile(conn, p) is None
            assert accounts.customer_items(conn, p, TODAY).empty
    _unchanged(before, table_checksums(engine))


def test_workflow_text_round_trips_and_touches_only_its_rows(engine):
    _seed(engine)
    user = User("c1", "collector", "C1")
    before = table_checksums(engine)
    ids = []
    for p in PAYLOADS:
        ids.append(workflow.log_activity(engine, user, "K1", "note", outcome=p[:64], note=p))
    dispute = workflow.open_dispute(engine, user, "I1", PAYLOADS[0][:32], 100, note=PAYLOADS[1])
    proposal = workflow.propose_writeoff(engine, user, "I1", 100, PAYLOADS[2])
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(schema.activities.c.id, schema.activities.c.note)).all())
        outcomes = dict(conn.execute(sa.select(schema.activities.c.id, schema.activities.c.outcome)).all())
        assert conn.execute(sa.select(schema.disputes.c.reason_code).where(schema.disputes.c.id == dispute)) \
            .scalar() == PAYLOADS[0][:32]
        assert conn.execute(sa.select(schema.writeoff_proposals.c.reason)
                            .where(schema.writeoff_proposals.c.id == proposal)).scalar() == PAYLOADS[2]
    assert [rows[i] for i in ids] == list(PAYLOADS)
    assert [outcomes[i] for i in ids] == [p[:64] for p in PAYLOADS]
    trail = workflow.audit_trail(engine, customer_id="K1")
    assert len(trail) == len(PAYLOADS) + 2
    # Payloads as look-up keys: refused as unknown, nothing written.
    mid = table_checksums(engine)
    for p in PAYLOADS:
        with pytest.raises(UserError):
            workflow.log_activity(engine, User("m", "manager"), p, "call")
        with pytest.raises(UserError):
            workflow.record_promise(engine, User("m", "manager"), "K1", TODAY, 1, invoice_id=p, today=TODAY)
        assert workflow.audit_trail(engine, customer_id=p).empty
        assert workflow.audit_trail(engine, actor=p).empty
    _unchanged(mid, table_checksums(engine))
    _unchanged(before, mid, except_=("activities", "disputes", "writeoff_proposals", "audit_log", "ledger_meta"))


def test_usernames_are_parameters(engine):
    _seed(engine)
    auth.add_user(engine, "alice", "a-long-password", "manager")
    before = table_checksums(engine)
    for p in PAYLOADS:
        assert auth.authenticate(engine, p, "a-long-password") is None
        assert auth.authenticate(engine, "alice", p) is None
        assert auth.get_user(engine, p) is None
        with pytest.raises(UserError):
            auth.add_user(engine, p, "another-long-password", "manager")
    # Failed sign-ins are audited (the payload stored as plain text); nothing else changed.
    _unchanged(before, table_checksums(engine), except_=("audit_log",))
    actions = set(workflow.audit_trail(engine)["action"]) - {"add_user"}
    assert actions <= {"signin_failed", "signin_refused"}


def test_mapping_column_names_and_cells_are_parameters(engine):
    """Payloads as column headers (the mapping names them) and as cell values load as plain text."""
    import csv
    import io

    before = table_checksums(engine)
    headers = list(PAYLOADS[:4])
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(headers + ["Name", "Ref"])
    for i, p in enumerate(PAYLOADS):
        w.writerow([f"K{i}", f"D{i}", "2024-01-05", "10.00", p, p])
    mapping = {"columns": {"customer_id": headers[0], "invoice_id": headers[1], "invoice_date": headers[2],
                           "amount": headers[3], "customer_name": "Name", "reference": "Ref"},
               "default_terms_days": 30, "default_currency": "EUR"}
    report = loaders.load(engine, "csv", buf.getvalue().encode(), mapping=mapping, file_name=PAYLOADS[0])
    assert report.inserted["invoices"] == len(PAYLOADS)
    with engine.connect() as conn:
        refs = dict(conn.execute(sa.select(schema.invoices.c.id, schema.invoices.c.reference)).all())
        names = dict(conn.execute(sa.select(schema.customers.c.id, schema.customers.c.name)).all())
        batch_name = conn.execute(sa.select(schema.import_batches.c.file_name)).scalar()
    assert [refs[f"D{i}"] for i in range(len(PAYLOADS))] == [p.strip() for p in PAYLOADS]
    assert [names[f"K{i}"] for i in range(len(PAYLOADS))] == [p.strip() for p in PAYLOADS]
    assert batch_name == PAYLOADS[0]
    _unchanged(before, table_checksums(engine),
               except_=("customers", "invoices", "import_batches", "ledger_meta"))
