"""Money is posted exactly once: every check-then-write raced by two users at the same instant.

Each test seeds fresh documents per round, releases two threads (sharing one engine, as the
dashboard's users do) at a barrier, and asserts after every round that nothing was posted twice or
beyond its amount, and that the loser got a plain sentence, never an engine error. The process test
does the same with separate processes, each with its own engine, on the same database.

Rounds per action: ``AR_RACE_ROUNDS`` (default 8). Runs on DuckDB, SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
import threading
import time
from queue import Empty

import pytest
import sqlalchemy as sa

from analytics import cash_app, db, schema, workflow
from analytics.auth import User
from analytics.errors import UserError

ROUNDS = int(os.environ.get("AR_RACE_ROUNDS", "8"))
TODAY = dt.date.today()
OLD = TODAY - dt.timedelta(days=40)
FIN1, FIN2 = User("fin1", "finance"), User("fin2", "finance")
MGR1, MGR2, MGR3 = User("mgr1", "manager"), User("mgr2", "manager"), User("mgr3", "manager")
#: Words that mean an engine error leaked to the user.
ENGINE_WORDS = ("conflict", "transactionexception", "integrityerror", "psycopg", "sqlite3", "duckdb", "traceback",
                "serializ", "deadlock", "locked", "sqlalchemy")


def _seed(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(schema.collectors.insert().values(id="C1", name="Collector One"))


def _customer(engine: sa.Engine, cid: str) -> None:
    with engine.begin() as conn:
        conn.execute(schema.customers.insert().values(id=cid, name=f"Customer {cid}", currency="USD",
                                                      collector_id="C1"))


def _invoice(engine: sa.Engine, iid: str, cid: str, cents: int = 100_000) -> None:
    with engine.begin() as conn:
        conn.execute(schema.invoices.insert().values(
            id=iid, customer_id=cid, doc_type="invoice", invoice_date=OLD, due_date=OLD + dt.timedelta(days=30),
            amount_cents=cents, currency="USD"))


def _receipt(engine: sa.Engine, rid: str, cid: str | None, cents: int = 100_000, remittance: str | None = None):
    with engine.begin() as conn:
        conn.execute(schema.receipts.insert().values(
            id=rid, customer_id=cid, receipt_date=OLD + dt.timedelta(days=5), amount_cents=cents, currency="USD",
            method="wire", remittance_ref=remittance))


def _race(*calls) -> list[tuple[bool, object]]:
    """Run the calls in threads released at the same instant; ``(ok, result or exception)`` each."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[bool, object]] = [(False, None)] * len(calls)

    def run(k: int, fn) -> None:
        barrier.wait()
        try:
            results[k] = (True, fn())
        except Exception as exc:  # noqa: BLE001 - the test inspects what the user would see
            results[k] = (False, exc)

    threads = [threading.Thread(target=run, args=(k, fn)) for k, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _one_winner(results, *, plain: str) -> None:
    """Exactly one call succeeded; every other one raised a UserError saying ``plain`` in plain words."""
    wins = [r for ok, r in results if ok]
    losses = [r for ok, r in results if not ok]
    assert len(wins) == 1, f"{len(wins)} of {len(results)} succeeded: {results}"
    for exc in losses:
        assert isinstance(exc, UserError), f"loser got {type(exc).__name__}: {exc}"
        text = str(exc)
        assert plain in text, text
        assert not any(w in text.lower() for w in ENGINE_WORDS), text


def _scalar(engine: sa.Engine, stmt) -> int:
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def _applied_to_receipt(engine, rid: str) -> int:
    ap = schema.applications
    return _scalar(engine, sa.select(sa.func.sum(ap.c.amount_cents)).where(ap.c.receipt_id == rid))


def _applied_to_item(engine, iid: str) -> int:
    ap = schema.applications
    return _scalar(engine, sa.select(sa.func.sum(ap.c.amount_cents)).where(ap.c.invoice_id == iid))


@pytest.fixture
def ledger(engine):
    _seed(engine)
    return engine


def test_apply_one_receipt_twice(ledger):
    """Two users apply the same 1,000.00 receipt to two different invoices at once: one wins."""
    for k in range(ROUNDS):
        cid = f"A{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I1", cid)
        _invoice(ledger, f"{cid}-I2", cid)
        _receipt(ledger, f"{cid}-R", cid)
        results = _race(lambda: cash_app.apply(ledger, FIN1, f"{cid}-R", {f"{cid}-I1": 100_000}),
                        lambda: cash_app.apply(ledger, FIN2, f"{cid}-R", {f"{cid}-I2": 100_000}))
        _one_winner(results, plain=f"more than receipt {cid}-R's unapplied USD 0.00 now")
        assert _applied_to_receipt(ledger, f"{cid}-R") == 100_000


def test_apply_two_receipts_to_one_item(ledger):
    """Two receipts applied in full to the same 1,000.00 invoice at once: the item is paid once."""
    for k in range(ROUNDS):
        cid = f"B{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        _receipt(ledger, f"{cid}-R1", cid)
        _receipt(ledger, f"{cid}-R2", cid)
        results = _race(lambda: cash_app.apply(ledger, FIN1, f"{cid}-R1", {f"{cid}-I": 100_000}),
                        lambda: cash_app.apply(ledger, FIN2, f"{cid}-R2", {f"{cid}-I": 100_000}))
        _one_winner(results, plain=f"more than invoice {cid}-I's open USD 0.00 now")
        assert _applied_to_item(ledger, f"{cid}-I") == 100_000


def test_unapply_twice(ledger):
    for k in range(ROUNDS):
        cid = f"U{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        _receipt(ledger, f"{cid}-R", cid)
        cash_app.apply(ledger, FIN1, f"{cid}-R", {f"{cid}-I": 100_000})
        results = _race(lambda: cash_app.unapply(ledger, FIN1, f"{cid}-R", f"{cid}-I"),
                        lambda: cash_app.unapply(ledger, FIN2, f"{cid}-R", f"{cid}-I"))
        _one_winner(results, plain="has nothing applied")
        assert _applied_to_receipt(ledger, f"{cid}-R") == 0


def _match_proposal(engine, rid: str, iid: str, cents: int = 100_000) -> int:
    with engine.begin() as conn:
        return int(conn.execute(schema.match_proposals.insert().values(
            receipt_id=rid, invoice_id=iid, amount_cents=cents, confidence=0.9, rule="reference",
            status="proposed", created_at=dt.datetime(2026, 1, 1))).inserted_primary_key[0])


def test_accept_one_proposal_twice(ledger):
    for k in range(ROUNDS):
        cid = f"P{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        _receipt(ledger, f"{cid}-R", cid)
        pid = _match_proposal(ledger, f"{cid}-R", f"{cid}-I")
        results = _race(lambda: cash_app.accept_proposal(ledger, FIN1, pid),
                        lambda: cash_app.accept_proposal(ledger, FIN2, pid))
        _one_winner(results, plain=f"proposal {pid} was already accepted by fin")
        assert _applied_to_receipt(ledger, f"{cid}-R") == 100_000


def test_accept_and_reject_at_once(ledger):
    for k in range(ROUNDS):
        cid = f"Q{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        _receipt(ledger, f"{cid}-R", cid)
        pid = _match_proposal(ledger, f"{cid}-R", f"{cid}-I")
        results = _race(lambda: cash_app.accept_proposal(ledger, FIN1, pid),
                        lambda: cash_app.reject_proposal(ledger, FIN2, pid))
        _one_winner(results, plain=f"proposal {pid} was already")
        mp = schema.match_proposals
        status = _scalar(ledger, sa.select(sa.func.count()).where(mp.c.id == pid, mp.c.status == "accepted"))
        assert _applied_to_receipt(ledger, f"{cid}-R") == 100_000 * status


def test_approve_writeoff_twice(ledger):
    adj = schema.adjustments
    for k in range(ROUNDS):
        cid = f"W{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        pid = workflow.propose_writeoff(ledger, MGR1, f"{cid}-I", 100_000, "bankrupt", today=TODAY)
        results = _race(lambda: workflow.decide_writeoff(ledger, MGR2, pid, True),
                        lambda: workflow.decide_writeoff(ledger, MGR3, pid, True))
        _one_winner(results, plain=f"write-off proposal {pid} was already approved by mgr")
        assert _scalar(ledger, sa.select(sa.func.count()).where(adj.c.invoice_id == f"{cid}-I")) == 1


def test_propose_writeoffs_beyond_the_item(ledger):
    w = schema.writeoff_proposals
    for k in range(ROUNDS):
        cid = f"X{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        results = _race(lambda: workflow.propose_writeoff(ledger, MGR1, f"{cid}-I", 60_000, "a", today=TODAY),
                        lambda: workflow.propose_writeoff(ledger, MGR2, f"{cid}-I", 60_000, "b", today=TODAY))
        _one_winner(results, plain="already proposed for write-off")
        assert _scalar(ledger, sa.select(sa.func.sum(w.c.amount_cents)).where(w.c.invoice_id == f"{cid}-I")) == 60_000


def test_disputes_beyond_the_item(ledger):
    d = schema.disputes
    for k in range(ROUNDS):
        cid = f"D{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        results = _race(lambda: workflow.open_dispute(ledger, MGR1, f"{cid}-I", "pricing", 60_000),
                        lambda: workflow.open_dispute(ledger, MGR2, f"{cid}-I", "pricing", 60_000))
        _one_winner(results, plain="already in dispute")
        assert _scalar(ledger, sa.select(sa.func.sum(d.c.amount_cents)).where(d.c.invoice_id == f"{cid}-I")) == 60_000


def test_promises_beyond_the_balance(ledger):
    p = schema.promises
    for k in range(ROUNDS):
        cid = f"R{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        due = TODAY + dt.timedelta(days=7)
        results = _race(lambda: workflow.record_promise(ledger, MGR1, cid, due, 60_000),
                        lambda: workflow.record_promise(ledger, MGR2, cid, due, 60_000))
        _one_winner(results, plain="already promised")
        assert _scalar(ledger, sa.select(sa.func.sum(p.c.amount_cents)).where(p.c.customer_id == cid)) == 60_000


def test_resolve_dispute_twice(ledger):
    for k in range(ROUNDS):
        cid = f"S{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        did = workflow.open_dispute(ledger, MGR1, f"{cid}-I", "pricing", 10_000)
        results = _race(lambda: workflow.resolve_dispute(ledger, MGR1, did, "credit_issued"),
                        lambda: workflow.resolve_dispute(ledger, MGR2, did, "rejected"))
        _one_winner(results, plain="was already resolved")


def test_matching_runs_at_once(ledger):
    """Two automatic matching runs at the same instant: each receipt's cash is applied once."""
    mp = schema.match_proposals
    for k in range(ROUNDS):
        cid = f"M{k}"
        _customer(ledger, cid)
        _invoice(ledger, f"{cid}-I", cid)
        _receipt(ledger, f"{cid}-R", cid, remittance=f"payment for {cid}-I")
        results = _race(lambda: cash_app.run_matching(ledger, FIN1, auto_threshold=0.01, as_of=TODAY),
                        lambda: cash_app.run_matching(ledger, FIN2, auto_threshold=0.01, as_of=TODAY))
        assert all(ok for ok, _ in results), results
        assert _applied_to_receipt(ledger, f"{cid}-R") == 100_000
        assert _scalar(ledger, sa.select(sa.func.count()).where(mp.c.receipt_id == f"{cid}-R")) == 1


# ------------------------------------------------------------------------------------------------
# Several processes, each with its own engine
# ------------------------------------------------------------------------------------------------
PROCESSES = int(os.environ.get("AR_RACE_PROCESSES", "4"))


def _process_worker(url: str, index: int, rounds: int, barrier, queue) -> None:
    engine = db.connect(url)
    user = User(f"fin{index}", "finance")
    for k in range(rounds):
        barrier.wait(60)
        try:
            cash_app.apply(engine, user, f"MP{k}-R", {f"MP{k}-I{index}": 100_000})
            queue.put((k, index, "ok"))
        except UserError as exc:
            queue.put((k, index, "user:" + str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            queue.put((k, index, f"error:{type(exc).__name__}: {exc}"))
    engine.dispose()


def test_processes_apply_one_receipt(ledger, monkeypatch):
    """PROCESSES processes apply the same receipt to their own invoice at once, ROUNDS rounds: one wins each."""
    # Streamlit's AppTest (earlier tests) leaves dashboard/app.py as __main__; spawn would re-run it in each child.
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    monkeypatch.delattr(main, "__file__", raising=False)
    url = ledger.url.render_as_string(hide_password=False)
    rounds = max(3, ROUNDS // 2)
    for k in range(rounds):
        cid = f"MP{k}"
        _customer(ledger, cid)
        for i in range(PROCESSES):
            _invoice(ledger, f"{cid}-I{i}", cid)
        _receipt(ledger, f"{cid}-R", cid)
    ledger.dispose()  # DuckDB: let the workers open the file
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(url, i, rounds, barrier, queue)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes, deadline = [], time.monotonic() + 240
    while len(outcomes) < PROCESSES * rounds and time.monotonic() < deadline:
        try:
            outcomes.append(queue.get(timeout=1))
        except Empty:
            if not any(p.is_alive() for p in procs):
                break
    for p in procs:
        p.join(10)
    assert len(outcomes) == PROCESSES * rounds, \
        f"workers answered {len(outcomes)} of {PROCESSES * rounds} (exit codes {[p.exitcode for p in procs]})"
    errors = [o for o in outcomes if o[2].startswith("error:")]
    assert not errors, errors
    for k in range(rounds):
        mine = [o for o in outcomes if o[0] == k]
        assert sum(o[2] == "ok" for o in mine) == 1, mine
        for o in mine:
            if o[2] != "ok":
                assert not any(w in o[2].lower() for w in ENGINE_WORDS), o
        assert _applied_to_receipt(ledger, f"MP{k}-R") == 100_000


# ------------------------------------------------------------------------------------------------
# The roll-forward refuses impossible states (written straight into the database, past the checks)
# ------------------------------------------------------------------------------------------------
def _bypass_invariants(conn: sa.Connection) -> None:
    """Write as a script with full rights would: past the database's own money triggers (0005)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # superuser: triggers off
    elif conn.dialect.name == "sqlite":  # no switch: drop them, as an older copy of the file would lack them
        for name in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                         "AND sql LIKE '%money_invariant%'")).scalars().all():
            conn.execute(sa.text(f'DROP TRIGGER "{name}"'))


def test_rollforward_names_impossible_states(ledger):
    from analytics.errors import LedgerIntegrityError

    _customer(ledger, "Z1")
    for iid in ("Z-I1", "Z-I2", "Z-I3"):
        _invoice(ledger, iid, "Z1")
    _receipt(ledger, "Z-R1", "Z1")
    day = OLD + dt.timedelta(days=6)
    with ledger.begin() as conn:  # past the product's checks, as a bad script or import would
        _bypass_invariants(conn)
        conn.execute(schema.applications.insert(), [
            dict(receipt_id="Z-R1", invoice_id="Z-I1", amount_cents=100_000, applied_date=day, source="manual"),
            dict(receipt_id="Z-R1", invoice_id="Z-I2", amount_cents=100_000, applied_date=day, source="manual")])
        conn.execute(schema.adjustments.insert().values(
            invoice_id="Z-I3", adj_date=day, amount_cents=-150_000, kind="write_off", reason="x", created_by="x"))
    with ledger.connect() as conn:
        problems = cash_app.ledger_integrity(conn)
        assert sorted(problems["kind"]) == ["over_applied_receipt", "write_off_beyond_item"]
        with pytest.raises(LedgerIntegrityError) as err:
            cash_app.rollforward(conn, OLD.replace(day=1), TODAY.replace(day=1))
    text = str(err.value)
    assert "receipt Z-R1 has USD 2,000.00 applied of its USD 1,000.00 (unapplied cash USD -1,000.00)" in text
    assert "invoice Z-I3 is written off for USD 1,500.00 of its USD 1,000.00" in text


def test_rollforward_cli_exits_1_naming_documents(ledger, capsys):
    from analytics.cli import main

    _customer(ledger, "Y1")
    _invoice(ledger, "Y-I1", "Y1")
    _receipt(ledger, "Y-R1", "Y1", cents=50_000)
    with ledger.begin() as conn:
        _bypass_invariants(conn)
        conn.execute(schema.applications.insert().values(
            receipt_id="Y-R1", invoice_id="Y-I1", amount_cents=60_000, applied_date=OLD + dt.timedelta(days=6),
            source="manual"))
    url = ledger.url.render_as_string(hide_password=False)
    ledger.dispose()
    code = main(["rollforward", "--db", url, "--from", f"{OLD:%Y-%m}", "--to", f"{TODAY:%Y-%m}"])
    assert code == 1
    assert "receipt Y-R1 has USD 600.00 applied of its USD 500.00" in capsys.readouterr().err


def test_same_file_loaded_twice_at_once(ledger, ibm_csv):
    """Two people load the same export at the same instant: its rows are in the ledger once."""
    from analytics import loaders

    head = b"".join(ibm_csv.read_bytes().splitlines(keepends=True)[:61])  # header + 60 invoices
    results = _race(lambda: loaders.load(ledger, "ibm", head, file_name="a.csv"),
                    lambda: loaders.load(ledger, "ibm", head, file_name="a.csv"))
    assert all(ok for ok, _ in results), results
    with ledger.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 60
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.import_batches)).scalar() == 1


def test_database_refuses_over_application(ledger):
    """PostgreSQL and SQLite refuse, by trigger, what no posting function produces (migration 0005);
    DuckDB has no triggers: there ledger_integrity (run by the roll-forward) names it."""
    _customer(ledger, "T1")
    _invoice(ledger, "T-I1", "T1")
    _invoice(ledger, "T-I2", "T1")
    _receipt(ledger, "T-R1", "T1")
    day = OLD + dt.timedelta(days=6)
    app = dict(receipt_id="T-R1", amount_cents=60_000, applied_date=day, source="manual")
    writes = {
        "receipt": [dict(app, invoice_id="T-I1"), dict(app, invoice_id="T-I2")],  # 1,200.00 of a 1,000.00 receipt
        "item": [dict(app, invoice_id="T-I1", amount_cents=40_000)] * 3,          # 1,200.00 on a 1,000.00 item
    }
    for what, rows in writes.items():
        if ledger.dialect.name == "duckdb":
            continue
        with pytest.raises(sa.exc.DBAPIError, match="money_invariant"):
            with ledger.begin() as conn:
                conn.execute(schema.applications.insert(), rows)
    if ledger.dialect.name != "duckdb":
        with pytest.raises(sa.exc.DBAPIError, match="money_invariant: item settled beyond its amount"):
            with ledger.begin() as conn:
                conn.execute(schema.adjustments.insert().values(
                    invoice_id="T-I2", adj_date=day, amount_cents=-100_001, kind="write_off", reason="x"))
    assert _applied_to_receipt(ledger, "T-R1") == 0  # every refused statement rolled back whole
