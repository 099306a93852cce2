"""Dunning runs on the hand-made ledger of tests/test_dunning.py (as of 2024-06-30).

K1: A1 750.00 at 151 days (-> collection agency, the only item at 121+), A2 300.00 at 60 days,
    A5 80.00 at 136 days IN DISPUTE (never listed), CM a credit, A3 not due.
K2: B1 99.99 at 11 days -> reminder.
K4: C1 20.00 at 40 days: below the call minimum (50.00) -> second notice (minimum 0.00 at 16+ days).
K5: D1 5.00 at 200 days: below the account minimum (10.00) -> no letter.
"""
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from analytics import cli, dunning_runs, schema, workflow
from analytics.auth import PermissionDenied, User
from analytics.errors import UserError
from tests.test_dunning import AS_OF, build

D = dt.date
MANAGER = User("mgr", "manager")


@pytest.fixture
def ledger(engine):
    build(engine)
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [{"id": "K4", "name": "Nu", "collector_id": "C1"},
                                              {"id": "K5", "name": "Xi", "collector_id": "C1"}])
        c.execute(schema.invoices.insert(), [
            dict(id="C1", customer_id="K4", invoice_date=D(2024, 4, 1), due_date=D(2024, 5, 21), amount_cents=2_000),
            dict(id="D1", customer_id="K5", invoice_date=D(2023, 11, 1), due_date=D(2023, 12, 13), amount_cents=500)])
    return engine


def _count(engine, table):
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_run_sends_exactly_the_expected_letters_once(ledger, tmp_path):
    audit_before = len(workflow.audit_trail(ledger))
    plan = dunning_runs.run_dunning(ledger, MANAGER, AS_OF, dry_run=True)
    assert _count(ledger, schema.dunning_notices) == 0 and _count(ledger, schema.dunning_runs) == 0
    expected = {("K1", "collection agency", 6, 75_000, "A1"), ("K2", "reminder", 1, 9_999, "B1"),
                ("K4", "second notice", 2, 2_000, "C1")}
    got = {(r.customer_id, r.step, r.level, r.amount_cents, r.invoice_ids) for r in plan.itertuples()}
    assert got == expected and set(plan["action"]) == {"send"}  # K5 below the account minimum: absent

    tmp_path = tmp_path / "letters"
    done = dunning_runs.run_dunning(ledger, MANAGER, AS_OF, out_dir=tmp_path)
    assert {(r.customer_id, r.step, r.level, r.amount_cents, r.invoice_ids) for r in done.itertuples()} == expected
    assert done["notice_id"].notna().all()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["2024-06-30_K1_USD_collection_agency.html", "2024-06-30_K2_USD_reminder.html",
                     "2024-06-30_K4_USD_second_notice.html"]
    assert "750.00" in (tmp_path / files[0]).read_text() and "A5" not in (tmp_path / files[0]).read_text()
    with ledger.connect() as c:
        items = {(r.invoice_id, r.level_before, r.level) for r in c.execute(sa.select(schema.dunning_notice_items))}
        acts = c.execute(sa.select(schema.activities.c.customer_id, schema.activities.c.type,
                                   schema.activities.c.collector_id)).all()
    assert items == {("A1", 0, 6), ("B1", 0, 1), ("C1", 0, 2)}
    assert sorted(acts) == [("K1", "letter", "C1"), ("K2", "letter", "C2"), ("K4", "letter", "C1")]
    assert len(workflow.audit_trail(ledger)) == audit_before + 4  # three notices and the run
    hist = dunning_runs.history(ledger)
    assert set(hist["status"]) == {"produced"} and set(hist["channel"]) == {"file"}

    # The same day again: nothing twice. A week later: K1's A2 is still below the agency level and A1 already
    # had its agency letter, so nothing rises -> still nothing.
    again = dunning_runs.run_dunning(ledger, MANAGER, AS_OF)
    assert (again["action"] == "skip").all() and _count(ledger, schema.dunning_notices) == 3
    later = dunning_runs.run_dunning(ledger, MANAGER, D(2024, 7, 7), dry_run=True).set_index("customer_id")
    assert later.loc["K1", "action"] == "skip" and "already had" in later.loc["K1", "reason"]
    # K2's B1 is 18 days late on 07-07: it rises to second notice -> a new letter.
    assert later.loc["K2", "action"] == "send" and later.loc["K2", "step"] == "second notice"


def test_blocked_item_is_not_dunned(ledger):
    b1 = dunning_runs.block(ledger, MANAGER, "K2", "payment plan agreed", invoice_id="B1")
    dunning_runs.block(ledger, MANAGER, "K4", "legal case")
    plan = dunning_runs.run_dunning(ledger, MANAGER, AS_OF, dry_run=True)
    assert list(plan["customer_id"]) == ["K1"]
    with pytest.raises(UserError, match="not an item of customer"):
        dunning_runs.block(ledger, MANAGER, "K2", "x", invoice_id="A1")
    with pytest.raises(PermissionDenied):
        dunning_runs.block(ledger, User("ann", "collector", "C1"), "K2", "not mine")
    dunning_runs.release_block(ledger, MANAGER, b1)
    assert sorted(dunning_runs.run_dunning(ledger, MANAGER, AS_OF, dry_run=True)["customer_id"]) == ["K1", "K2"]
    with pytest.raises(UserError, match="not an active dunning block"):
        dunning_runs.release_block(ledger, MANAGER, b1)
    assert {"dunning_block", "dunning_release"} <= set(workflow.audit_trail(ledger)["action"])


def test_collector_runs_only_their_portfolio(ledger):
    plan = dunning_runs.run_dunning(ledger, User("ann", "collector", "C1"), AS_OF, dry_run=True)
    assert sorted(plan["customer_id"]) == ["K1", "K4"]


def test_two_runs_at_the_same_instant_send_once(ledger):
    results, errors = [], []

    def go():
        try:
            results.append(dunning_runs.run_dunning(ledger, MANAGER, AS_OF))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _count(ledger, schema.dunning_notices) == 3
    assert sorted(int((r["action"] == "send").sum()) for r in results) == [0, 3]


def test_cli_dry_run_and_run(ledger, capsys):
    url = ledger.url.render_as_string(hide_password=False)
    if ledger.dialect.name != "sqlite":
        pytest.skip("the CLI opens its own connection; checked on SQLite")
    assert cli.main(["dunning", "run", "--as-of", "2024-06-30", "--dry-run", "--db", url]) == 0
    assert "would send 3 letter(s)" in capsys.readouterr().out
    assert _count(ledger, schema.dunning_notices) == 0
    assert cli.main(["dunning", "run", "--as-of", "2024-06-30", "--json", "--db", url]) == 0
    assert '"letters": 3' in capsys.readouterr().out
    assert cli.main(["dunning", "procedure"]) == 0
    assert "collection agency" in capsys.readouterr().out
