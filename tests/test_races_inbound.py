"""Two users at the same instant on the inbound write paths, on DuckDB, SQLite and PostgreSQL.

The same bank statement, remittance advice, exchange-rate file or instalment schedule sent twice at once
(two finance users, or a double click on two tabs): the rows land once, the summary says so, and the
second user is either told it changed nothing or given a plain message, never an engine error. The
settlement summary stays equal to a full recomputation after each.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from analytics import fx, instalments, ledger, schema
from analytics.auth import User
from analytics.bank.loading import load_statement
from analytics.bank.remittance import apply_advice
from analytics.errors import UserError
from tests.test_bank import ADVICE, FILES, _ledger as bank_ledger, _short_receipt
from tests.test_instalments import SCHEDULE, build as instalment_ledger
from tests.test_races import ENGINE_WORDS, _race

FIN1, FIN2 = User("fin1", "finance"), User("fin2", "finance")
RATES = Path(__file__).parent / "fixtures" / "fx" / "eurofxref-sample.csv"


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())


def _plain(results) -> None:
    """Every call succeeded or failed with a UserError in plain words."""
    for ok, value in results:
        if not ok:
            assert isinstance(value, UserError), f"{type(value).__name__}: {value}"
            assert not any(w in str(value).lower() for w in ENGINE_WORDS), str(value)


def _summary_right(engine) -> None:
    with engine.connect() as conn:
        assert ledger.summary_differences(conn).empty


def test_same_bank_statement_loaded_twice_at_once(engine):
    bank_ledger(engine)
    results = _race(lambda: load_statement(engine, FILES["camt053"]), lambda: load_statement(engine, FILES["camt053"]))
    _plain(results)
    loads = [v for ok, v in results if ok]
    assert loads, results
    assert sum(x.lines_new for x in loads) == 5  # each line once, whoever loaded it
    assert _count(engine, schema.bank_lines) == 5
    with engine.connect() as conn:
        refs = [r[0] for r in conn.execute(sa.select(schema.receipts.c.bank_reference)
                                           .where(schema.receipts.c.bank_reference.is_not(None)))]
    assert len(refs) == len(set(refs)) == 3
    _summary_right(engine)


def test_same_remittance_advice_applied_twice_at_once(engine):
    bank_ledger(engine)
    _short_receipt(engine)
    results = _race(lambda: apply_advice(engine, FIN1, "BR1103001", ADVICE.encode(), file_name="a.csv"),
                    lambda: apply_advice(engine, FIN2, "BR1103001", ADVICE.encode(), file_name="a.csv"))
    wins = [v for ok, v in results if ok]
    assert len(wins) == 1, results
    _plain(results)
    apps = schema.applications
    with engine.connect() as conn:
        applied = conn.execute(sa.select(sa.func.sum(apps.c.amount_cents)).where(apps.c.receipt_id == "R-SHORT")).scalar()
    assert int(applied) == 120_000
    assert _count(engine, schema.adjustments) == 1
    _summary_right(engine)


def test_same_rates_file_loaded_twice_at_once(engine):
    results = _race(lambda: fx.load_rates(engine, RATES), lambda: fx.load_rates(engine, RATES))
    _plain(results)
    loads = [v for ok, v in results if ok]
    assert loads and sum(x.added for x in loads) == 9, results
    assert _count(engine, schema.exchange_rates) == 9


def test_same_instalment_schedule_loaded_twice_at_once(engine):
    instalment_ledger(engine)  # loads SCHEDULE once
    with engine.begin() as conn:
        conn.execute(schema.invoice_instalments.delete())
    results = _race(lambda: instalments.load_schedules(engine, SCHEDULE.encode()),
                    lambda: instalments.load_schedules(engine, SCHEDULE.encode()))
    _plain(results)
    assert [v for ok, v in results if ok], results
    assert _count(engine, schema.invoice_instalments) == 6
